"""Many clients against a real process with a small pool: they queue, nothing fails."""

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2 as httpx

from servers import running_service

POOL = {"DB_POOL_SIZE": "2", "DB_MAX_OVERFLOW": "1"}
CLIENTS = 24  # eight times the pool's 3 connections
ROUNDS = 10  # each round is one create and one read
DEADLINE_SECONDS = 60

Items = dict[int, dict[str, object]]


def client_session(base: str, client_number: int) -> tuple[Counter[int], Items]:
    """Create and read back items; the statuses seen and every item acknowledged."""
    statuses: Counter[int] = Counter()
    acknowledged: Items = {}
    with httpx.Client(base_url=base, timeout=30) as client:
        for round_number in range(ROUNDS):
            sent = {
                "name": f"Client {client_number} item {round_number} 🍕",
                "price": round(client_number + round_number / 100, 2),
                "sku": f"load-{client_number}-{round_number}",
            }
            created = client.post("/items/", json=sent)
            statuses[created.status_code] += 1
            if created.status_code != 201:
                continue
            item = created.json()
            acknowledged[item["id"]] = item
            read = client.get(f"/items/{item['id']}")
            statuses[read.status_code] += 1
            if read.status_code == 200:
                assert read.json() == item
    return statuses, acknowledged


def test_many_clients_queue_for_a_small_pool(tmp_path: Path, empty_database: str) -> None:
    with running_service(tmp_path, DATABASE_URL=empty_database, **POOL) as (base, _):
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            results = list(pool.map(lambda n: client_session(base, n), range(CLIENTS)))
        elapsed = time.monotonic() - started
        statuses: Counter[int] = Counter()
        acknowledged: Items = {}
        for seen, items in results:
            statuses.update(seen)
            acknowledged |= items
        requests = sum(statuses.values())
        errors = sum(count for status, count in statuses.items() if status >= 500)
        print(
            f"\nload: {CLIENTS} concurrent clients, {requests} requests, "
            f"{errors} errors (5xx), {elapsed:.2f} s, statuses {dict(statuses)}"
        )
        assert errors == 0, statuses
        assert statuses == {201: CLIENTS * ROUNDS, 200: CLIENTS * ROUNDS}
        assert elapsed < DEADLINE_SECONDS

        stored = httpx.get(f"{base}/items/", params={"limit": 1000}).json()
        assert {item["id"]: item for item in stored} == acknowledged


def test_abandoned_requests_leave_the_service_answering(
    tmp_path: Path, empty_database: str
) -> None:
    with running_service(tmp_path, DATABASE_URL=empty_database, **POOL) as (base, _):
        first = httpx.post(f"{base}/items/", json={"name": "First", "price": 1}).json()

        def abandon(number: int) -> None:
            try:
                if number % 3 == 0:
                    httpx.post(
                        f"{base}/items/", json={"name": f"gone {number}", "price": 1}, timeout=0.01
                    )
                else:
                    path = "/items/" if number % 3 == 1 else f"/items/{first['id']}"
                    httpx.get(f"{base}{path}", timeout=0.01)
            except httpx.TimeoutException:
                pass

        # Far more requests in flight than the pool (3) and the server's worker threads (40).
        with ThreadPoolExecutor(max_workers=80) as pool:
            list(pool.map(abandon, range(160)))

        with httpx.Client(base_url=base, timeout=5) as client:
            deadline = time.monotonic() + 5
            while client.get("/health/ready").status_code != 200:
                assert time.monotonic() < deadline, "not ready again within 5 s"
                time.sleep(0.1)
            created = client.post("/items/", json={"name": "After", "price": 2.5})
            assert created.status_code == 201
            assert client.get(created.headers["location"]).json() == created.json()
