"""The loop the service runs on takes a burst of new connections at once, and
requests that waited past MAX_QUEUE_SECONDS are refused before any of their work."""

import asyncio
import json
import socket
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx2 as httpx
import pytest

from servers import answer_on, running_service
from service import serving

BURST = 200


def test_every_pending_connection_is_taken_in_one_turn_of_the_loop() -> None:
    # uvloop alone takes one pending connection per turn: under load, each
    # turn long, a burst's last connections waited seconds to be read.
    loop = serving.new_event_loop()
    made: list[asyncio.BaseTransport] = []

    class Counted(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            made.append(transport)

    async def burst() -> int:
        server = await loop.create_server(Counted, "127.0.0.1", 0, backlog=BURST * 2)
        port = server.sockets[0].getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(BURST)]
        for _ in range(3):  # the accepts, the transports, their connection_made
            await asyncio.sleep(0)
        taken = len(made)
        for client in clients:
            client.close()
        for transport in made:
            transport.close()
        server.close()
        await server.wait_closed()
        return taken

    try:
        assert loop.run_until_complete(burst()) == BURST
    finally:
        loop.close()


def answers_to_a_burst(base: str, requests: list[bytes]) -> list[tuple[int, dict[str, str], str]]:
    """Open a connection per request, then send every request at once: the
    status, headers and body of each answer."""
    host, port = base.removeprefix("http://").split(":")
    clients = [socket.create_connection((host, int(port)), timeout=60) for _ in requests]
    for client, request in zip(clients, requests, strict=True):
        client.sendall(request)
    answers = []
    for client in clients:
        received = b""
        while chunk := client.recv(65536):
            received += chunk
        client.close()
        head, _, body = received.decode().partition("\r\n\r\n")
        status_line, *header_lines = head.split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in header_lines)
        answers.append((int(status_line.split()[1]), headers, body))
    return answers


def request(method: str, path: str, body: str = "") -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body.encode())}\r\n\r\n{body}"
    ).encode()


@pytest.mark.parametrize("bound", [None, "0.01"])
def test_requests_that_waited_past_the_bound_are_refused_and_nothing_of_them_is_done(
    tmp_path: Path, empty_database: str, bound: str | None
) -> None:
    # A small pool: the burst waits for its threads, whatever else holds the
    # server's connections.
    variables = {"DB_POOL_SIZE": "4", "METRICS": "true"}
    variables |= {"MAX_QUEUE_SECONDS": bound} if bound else {}
    creates = [request("POST", "/items/", json.dumps({"name": f"Burst {n}", "price": 1}))
               for n in range(BURST // 2)]  # fmt: skip
    lists = [request("GET", "/items/?limit=100") for _ in range(BURST // 2)]
    with running_service(tmp_path, DATABASE_URL=empty_database, **variables) as (base, _):
        answers = answers_to_a_burst(
            base, [r for pair in zip(creates, lists, strict=True) for r in pair]
        )
        statuses = Counter(status for status, _, _ in answers)
        refused = [(headers, body) for status, headers, body in answers if status == 503]
        if bound is None:
            assert statuses == {201: BURST // 2, 200: BURST // 2}
        else:
            assert set(statuses) <= {200, 201, 503} and statuses[503] > 0, statuses
            for headers, body in refused:
                assert headers["retry-after"] == "1"
                assert json.loads(body) == {"detail": "The service is busy: retry after a second"}
        # Counted by cause.
        scraped = httpx.get(f"{base}/metrics").text
        overloaded = 'items_service_unavailable_responses_total{error_type="overloaded"} '
        counted = [line for line in scraped.splitlines() if line.startswith(overloaded)]
        assert sum(float(line.split()[-1]) for line in counted) == statuses[503]
        # Every create acknowledged is there, and only those: a refused one did nothing.
        listed = served(lambda: httpx.get(f"{base}/items/", params={"limit": 1000}))
        assert len(listed.json()) == statuses[201]
        # Alone, a request waits for nothing: served (on a busy machine, after a
        # refusal or two when the service's process was not scheduled in time).
        served(lambda: httpx.post(f"{base}/items/", json={"name": "calm", "price": 1}))


def served(send: Callable[[], httpx.Response]) -> httpx.Response:
    """The answer to `send()`, sent again while it is a 503 (at most ten times)."""
    for _ in range(10):
        response = send()
        if response.status_code != 503:
            assert response.status_code in (200, 201), response.text
            return response
        time.sleep(0.2)
    raise AssertionError(f"refused ten times: {response.text}")


# struct tcp_info (linux/tcp.h): tcpi_data_segs_in, the segments holding data
# that a connection has received.
TCP_INFO_DATA_SEGMENTS_IN = 152


def data_segments_received(client: socket.socket) -> int:
    info = client.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return int.from_bytes(info[TCP_INFO_DATA_SEGMENTS_IN : TCP_INFO_DATA_SEGMENTS_IN + 4], "little")


def test_each_answer_reaches_the_client_in_one_segment(tmp_path: Path, empty_database: str) -> None:
    # uvicorn writes an answer's head and body apart: two system calls, and
    # two TCP segments the client is woken for.
    kept_alive = (
        "HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}"
    )
    created = json.dumps({"name": "One segment", "price": "1.50"})
    requests = {
        "create": f"POST /items/ {kept_alive.format(len(created), created)}",
        "read": f"GET /items/1 {kept_alive.format(0, '')}",
        "not found": f"GET /items/999 {kept_alive.format(0, '')}",
        "refused": f"POST /items/ {kept_alive.format(2, '{}')}",
        "health": f"GET /health {kept_alive.format(0, '')}",
    }
    with running_service(tmp_path, DATABASE_URL=empty_database, METRICS="true") as (base, _):
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as client:
            for what, raw in requests.items():
                before = data_segments_received(client)
                answer = answer_on(client, raw.encode())
                assert data_segments_received(client) - before == 1, (what, answer[:200])
            assert answer.startswith(b"HTTP/1.1 200 ")


def test_a_held_write_leaves_when_the_loops_turn_ends_in_order_and_before_a_close() -> None:
    loop = serving.new_event_loop()

    async def writes() -> None:
        ours, theirs = socket.socketpair()
        theirs.setblocking(False)
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
        held = serving.HeldWrites(transport)  # type: ignore[arg-type]
        held.write(b"head ")
        assert _pending(theirs) == b""
        await asyncio.sleep(0)  # the turn ends
        await asyncio.sleep(0.05)
        assert _pending(theirs) == b"head "
        held.write(b"one ")
        held.write(b"two ")
        held.write(b"three ")
        await asyncio.sleep(0.05)
        assert _pending(theirs) == b"one two three "
        held.write(b"last")
        held.close()
        await asyncio.sleep(0.05)
        assert _pending(theirs) == b"last"
        assert transport.is_closing()
        theirs.close()

    try:
        loop.run_until_complete(writes())
    finally:
        loop.close()


def _pending(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except BlockingIOError:
        return b""
