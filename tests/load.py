"""Clients sending mixed reads and writes to a running service, every answer recorded:
the load under which the cluster tests take a server away."""

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx2 as httpx


class Load:
    """Clients sending mixed reads and writes to the service, each request's answer recorded."""

    def __init__(self, base: str, clients: int) -> None:
        self.base = base
        self.clients = clients
        self.stop = threading.Event()
        self.lock = threading.Lock()
        # (started, seconds taken, method, status, Retry-After)
        self.requests: list[tuple[float, float, str, int, str | None]] = []
        self.created: dict[int, dict[str, Any]] = {}  # acknowledged creates
        self.prices_sent: dict[int, set[float]] = {}  # by item, acknowledged or not

    @contextmanager
    def running(self) -> Iterator[None]:
        """The clients send requests until the block ends, however it ends: a
        block that raises (a cluster that never recovers) stops them too,
        rather than leaving the test waiting for them forever."""
        with ThreadPoolExecutor(self.clients) as pool:
            clients = [pool.submit(self.run, number) for number in range(self.clients)]
            try:
                yield
            finally:
                self.stop.set()
            for client in clients:
                client.result()

    def run(self, number: int) -> None:
        with httpx.Client(base_url=self.base, timeout=30) as http:
            while not self.stop.is_set():
                with self.lock:
                    known = list(self.created)
                operation = random.choice(["create", "create", "patch", "read", "list"])
                if operation == "create" or not known:
                    self.send(http, "POST", "/items/", {"name": f"client {number}", "price": 1})
                elif operation == "patch":
                    item_id, price = random.choice(known), random.randint(0, 9999)
                    with self.lock:
                        self.prices_sent[item_id].add(price)
                    self.send(http, "PATCH", f"/items/{item_id}", {"price": price})
                elif operation == "read":
                    self.send(http, "GET", f"/items/{random.choice(known)}", None)
                else:
                    self.send(http, "GET", "/items/?limit=20", None)

    def send(self, http: httpx.Client, method: str, path: str, body: Any) -> None:
        started = time.monotonic()
        try:
            response = http.request(method, path, json=body)
        except httpx.TransportError:
            status, retry_after, created = 0, None, None
        else:
            status, retry_after = response.status_code, response.headers.get("retry-after")
            created = response.json() if status == 201 else None
        with self.lock:
            self.requests.append((started, time.monotonic() - started, method, status, retry_after))
            if created is not None:
                self.created[created["id"]] = created
                self.prices_sent[created["id"]] = {created["price"]}

    def failures(self) -> list[tuple[float, float, str, int, str | None]]:
        return [request for request in self.requests if request[3] not in (200, 201)]

    def slowest(self) -> float:
        return max(taken for _, taken, *_ in self.requests)

    def statuses(self, since: float, until: float) -> Counter[int]:
        return Counter(
            status for started, _, _, status, _ in self.requests if since <= started < until
        )
