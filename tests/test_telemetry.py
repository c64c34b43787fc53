"""What operators see: X-Request-ID on every answer, access and log lines that name
it (LOG_FORMAT=json), and GET /metrics (METRICS=true) with exact counts, one
worker or several; on every backend."""

import asyncio
import json
import os
import re
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from conftest import BACKEND, settings_for
from servers import answer_on, running_service
from service.app import create_app
from service.db.backends import ErrorKind
from service.db.observer import Observer, RetryReason
from service.db.runtime import Database
from service.db.urls import parse_database_url
from service.telemetry.metrics import DURATION_BUCKETS, observe_all

ROUTES = {
    "/items/", "/items/{item_id}", "/orders/", "/orders/{order_id}", "/health",
    "/health/ready", "/metrics", "unmatched",
}  # fmt: skip
ITEM = {"name": "Widget", "price": 9.99}
GENERATED = re.compile(r"[0-9a-f]{32}")
TOKEN = "telemetry-token-" + "7" * 32
PASSWORD = "never-logged-password-51"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(base: str) -> Samples:
    response = httpx.get(f"{base}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return parsed(response.text)


def parsed(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def requests(samples: Samples) -> dict[tuple[str, str, int], int]:
    """Requests counted by method, route and status."""
    counts = {}
    for (name, labels), value in samples.items():
        if name == "http_server_request_duration_seconds_count":
            label = dict(labels)
            key = (
                label["http_request_method"],
                label["http_route"],
                int(label["http_response_status_code"]),
            )
            counts[key] = int(value)
    return counts


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def story(base: str) -> None:
    """A known sequence of requests: what `STORY` counts."""
    ids = [httpx.post(f"{base}/items/", json=ITEM).json()["id"] for _ in range(3)]
    for item_id in ids[:2]:
        assert httpx.get(f"{base}/items/{item_id}").status_code == 200
    assert httpx.get(f"{base}/items/{ids[-1] + 1000}").status_code == 404
    assert httpx.get(f"{base}/items/not-a-number").status_code == 422
    assert httpx.delete(f"{base}/items/{ids[0]}").status_code == 204
    assert httpx.get(f"{base}/nowhere/{ids[1]}").status_code == 404
    assert httpx.put(f"{base}/health").status_code == 405


STORY = {
    ("POST", "/items/", 201): 3,
    ("GET", "/items/{item_id}", 200): 2,
    ("GET", "/items/{item_id}", 404): 1,
    ("GET", "/items/{item_id}", 422): 1,
    ("DELETE", "/items/{item_id}", 204): 1,
    ("GET", "unmatched", 404): 1,
    ("PUT", "/health", 405): 1,
}


def without_health_checks(counts: dict[tuple[str, str, int], int]) -> dict:
    # The test's own polls until the service answers.
    return {key: n for key, n in counts.items() if key != ("GET", "/health", 200)}


def test_counts_after_a_known_sequence_are_exact(tmp_path: Path, empty_database: str) -> None:
    with running_service(tmp_path, DATABASE_URL=empty_database, METRICS="true") as (base, _):
        story(base)
        samples = scrape(base)
        assert without_health_checks(requests(samples)) == STORY
        # The scrape itself is in flight; it is counted once it is done.
        assert value(samples, "http_server_active_requests", http_request_method="GET") == 1
        assert value(samples, "http_server_active_requests", http_request_method="POST") == 0
        used = "db_client_connection_count"
        assert value(samples, used, db_client_connection_state="used") == 0
        assert value(samples, used, db_client_connection_state="idle") >= 1
        assert value(samples, "db_client_connection_timeouts_total") == 0
        if BACKEND == "sqlite":
            # Every write went through the writer thread: three creates and a delete.
            assert value(samples, "items_service_commit_group_writes_sum") == 4
        again = requests(scrape(base))
        assert again[("GET", "/metrics", 200)] == 1
    routes = {dict(labels).get("http_route") for _, labels in samples}
    assert routes - {None} <= ROUTES


def test_duration_buckets_resolve_below_a_millisecond(tmp_path: Path, empty_database: str) -> None:
    with running_service(tmp_path, DATABASE_URL=empty_database, METRICS="true") as (base, _):
        samples = scrape(base)
    buckets = {
        float(dict(labels)["le"])
        for name, labels in samples
        if name == "http_server_request_duration_seconds_bucket"
    }
    assert {0.0005, 0.001, 0.0025} <= buckets


def test_metrics_are_off_unless_asked_for(client: TestClient, database_url: str) -> None:
    assert client.get("/metrics").status_code == 404
    settings = settings_for(database_url, metrics=True, migrate_on_start=False)
    with TestClient(create_app(settings)) as metered:
        assert metered.get("/metrics").status_code == 200
        assert "/metrics" not in metered.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize("given", ["abc", "a.B_c-9", "x" * 128])
def test_a_sane_request_id_is_echoed(client: TestClient, given: str) -> None:
    response = client.get("/items/", headers={"X-Request-ID": given})
    assert response.headers["x-request-id"] == given


@pytest.mark.parametrize("given", [None, "", "x" * 129, "has space", "a/b", "new\tline", "é"])
def test_a_missing_or_insane_request_id_is_replaced(client: TestClient, given: str | None) -> None:
    headers = {} if given is None else {"X-Request-ID": given.encode("utf-8")}
    response = client.get("/items/", headers=headers)
    assert GENERATED.fullmatch(response.headers["x-request-id"])


@pytest.fixture
def breaking(database_url: str, client: TestClient) -> Iterator[TestClient]:
    """The app with a route that raises, as a bug would."""
    app = create_app(settings_for(database_url, metrics=True, migrate_on_start=False))
    assert isinstance(app, FastAPI)

    async def broken() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/broken", broken)
    with TestClient(app, raise_server_exceptions=False) as breaking:
        yield breaking


def test_methods_no_one_knows_are_counted_as_one(database_url: str, client: TestClient) -> None:
    settings = settings_for(database_url, metrics=True, migrate_on_start=False)
    with TestClient(create_app(settings)) as metered:
        for method in ("BREW", "WHEN", "GET"):
            metered.request(method, "/items/")
        counts = requests(parsed(metered.get("/metrics").text))
    assert counts == {("_OTHER", "/items/", 405): 2, ("GET", "/items/", 200): 1}


def test_a_500_carries_its_request_id_and_is_counted(breaking: TestClient) -> None:
    response = breaking.get("/broken", headers={"X-Request-ID": "bug-42"})
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal Server Error"}
    assert response.headers["x-request-id"] == "bug-42"
    assert 'http_route="/broken"' in breaking.get("/metrics").text


@pytest.fixture
def unique_names(database_url: str) -> Iterator[None]:
    """A unique index on items.name that the service knows nothing of: a
    duplicate name is then a database error no resource answers, a 500."""
    engine = sa.create_engine(database_url)
    items = sa.Table("items", sa.MetaData(), sa.Column("name", sa.String(255)))
    index = sa.Index("ux_items_name_telemetry", items.c.name, unique=True)
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM orders"))
        connection.execute(sa.text("DELETE FROM items"))
        index.create(connection)
    try:
        yield
    finally:
        with engine.begin() as connection:
            index.drop(connection)
        engine.dispose()


def test_json_log_lines_name_their_request_and_never_a_secret(
    tmp_path: Path, database_url: str, unique_names: None
) -> None:
    url = database_url
    if BACKEND == "postgresql":
        # The server trusts local connections: any password gets in, and must not be logged.
        url = sa.make_url(url).set(password=PASSWORD).render_as_string(hide_password=False)
    variables = {"LOG_FORMAT": "json", "API_TOKENS": TOKEN, "MIGRATE_ON_START": "false"}
    variables |= {"DB_ECHO": "true"}
    with running_service(tmp_path, DATABASE_URL=url, **variables) as (base, output):
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert httpx.post(f"{base}/items/", json=ITEM, headers=auth).status_code == 201
        wrong = {"Authorization": f"Bearer {TOKEN}-wrong"}
        assert httpx.post(f"{base}/items/", json=ITEM, headers=wrong).status_code == 401
        listing = {"X-Request-ID": "r-list"}
        listed = httpx.get(f"{base}/items/", params={"limit": 5}, headers=listing)
        assert listed.status_code == 200
        failed = httpx.post(f"{base}/items/", json=ITEM, headers=auth | {"X-Request-ID": "r-500"})
    assert failed.status_code == 500
    assert failed.headers["x-request-id"] == "r-500"
    lines = [json.loads(line) for line in output[0].splitlines() if line.strip()]
    for line in lines:
        assert {"time", "level", "message", "request_id"} <= line.keys()
    assert any(line["message"].startswith("INSERT INTO items") for line in lines)
    # The SQL a request's read ran, on whichever thread, is logged with its id.
    of_the_list = [line for line in lines if line["request_id"] == "r-list"]
    assert any(line["message"].startswith("SELECT") for line in of_the_list), of_the_list
    of_the_500 = [
        line
        for line in lines
        if line["request_id"] == "r-500" and line["logger"].startswith("service.")
    ]
    assert [line["level"] for line in of_the_500] == ["ERROR", "INFO"]
    error, access = of_the_500
    assert error["message"] == "Unexpected database error on POST /items/"
    assert "Traceback" in error["exception"]
    assert access | {"time": None, "duration_ms": None} == {
        "time": None,
        "level": "INFO",
        "logger": "service.access",
        "message": access["message"],
        "request_id": "r-500",
        "method": "POST",
        "route": "/items/",
        "status": 500,
        "duration_ms": None,
    }
    assert '"POST /items/ HTTP/1.1" 500' in access["message"]
    assert access["duration_ms"] > 0
    statuses = [line["status"] for line in lines if line.get("logger") == "service.access"]
    assert statuses.count(401) == 1
    for secret in (TOKEN, PASSWORD):
        assert secret not in output[0]


def test_access_lines_of_a_burst_are_each_written_once_and_none_lost_at_exit(
    tmp_path: Path, empty_database: str
) -> None:
    """Access lines logged in one turn of the loop are written together: a
    burst's every line is there once, and the lines after it too."""
    ids = [f"burst-{n}" for n in range(200)]

    async def burst(base: str) -> list[int]:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            answers = await asyncio.gather(
                *(http.get("/items/", headers={"X-Request-ID": given}) for given in ids)
            )
        return [answer.status_code for answer in answers]

    with running_service(tmp_path, DATABASE_URL=empty_database, LOG_FORMAT="json") as (
        base,
        output,
    ):
        assert asyncio.run(burst(base)) == [200] * len(ids)
    lines = [json.loads(line) for line in output[0].splitlines() if line.strip()]
    logged = [line["request_id"] for line in lines if line["logger"] == "service.access"]
    assert sorted(given for given in logged if given.startswith("burst-")) == sorted(ids)
    # uvicorn's last line, written as the process stops.
    assert lines[-1]["message"].startswith("Finished server process")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_burst_is_counted_request_by_request(
    tmp_path: Path, empty_database: str, workers: str
) -> None:
    """Durations recorded meanwhile are written down together: each request
    of a burst lands in the count, in one bucket and in the sum, once,
    whichever worker answered it."""
    burst_size = 200
    labels = {"http_request_method": "GET", "http_route": "/items/"}
    labels |= {"http_response_status_code": "200"}
    name = "http_server_request_duration_seconds"

    def counted(samples: Samples) -> Samples | None:
        return samples if value(samples, f"{name}_count", **labels) >= burst_size else None

    async def burst(base: str) -> list[int]:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            answers = await asyncio.gather(*(http.get("/items/") for _ in range(burst_size)))
        return [answer.status_code for answer in answers]

    variables = {"DATABASE_URL": empty_database, "METRICS": "true", "WEB_CONCURRENCY": workers}
    with running_service(tmp_path, **variables) as (base, _):
        if workers == "2":
            until(lambda: two_workers(int(base.rsplit(":", 1)[1])))
        started = time.monotonic()
        assert asyncio.run(burst(base)) == [200] * burst_size
        took = time.monotonic() - started
        # Every request of the burst, whichever worker answers the scrape.
        samples = until(lambda: counted(scrape(base)), seconds=5)
    assert value(samples, f"{name}_count", **labels) == burst_size
    assert value(samples, f"{name}_bucket", **labels, le="+Inf") == burst_size
    # Each bucket counts the requests up to its bound: never fewer than the one below.
    counts = sorted(
        (float(dict(key)["le"]), count)
        for (sample, key), count in samples.items()
        if sample == f"{name}_bucket" and labels.items() <= dict(key).items()
    )
    assert [count for _, count in counts] == sorted(count for _, count in counts)
    # No request took longer than the whole burst, nor less than nothing.
    assert 0 < value(samples, f"{name}_sum", **labels) <= burst_size * took


def test_a_scrape_right_after_an_answer_counts_it_whichever_worker_answers_either(
    tmp_path: Path, empty_database: str
) -> None:
    """Each worker writes down what it recorded a moment later, with what it
    records meanwhile; a scrape waits for the other workers' writes, so that
    an answer a client has is counted, however soon it scrapes."""
    variables = {"DATABASE_URL": empty_database, "METRICS": "true", "WEB_CONCURRENCY": "2"}
    post = (
        b"POST /items/ HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        b'Content-Length: 30\r\n\r\n{"name": "Widget", "price": 1}'
    )
    with running_service(tmp_path, **variables) as (base, _):
        port = int(base.rsplit(":", 1)[1])
        workers = until(lambda: two_workers(port))
        pairs = set()
        for created in range(1, 21):
            # Two connections, each answered by either worker; the scrape is
            # asked for the moment the POST's answer is in.
            with (
                socket.create_connection(("127.0.0.1", port)) as creating,
                socket.create_connection(("127.0.0.1", port)) as scraping,
            ):
                assert answer_on(creating, post).startswith(b"HTTP/1.1 201 ")
                answer = answer_on(scraping, b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
                assert answer.startswith(b"HTTP/1.1 200 ")
                samples = parsed(answer.partition(b"\r\n\r\n")[2].decode())
                assert requests(samples)[("POST", "/items/", 201)] == created
                # Nor is it still in flight, in whichever worker.
                active = "http_server_active_requests"
                assert value(samples, active, http_request_method="POST") == 0
                pairs.add(
                    (serving_pid(creating, port, workers), serving_pid(scraping, port, workers))
                )
    # Some scrapes were answered by the worker that had not answered the POST.
    assert any(poster != scraper for poster, scraper in pairs)


def test_durations_written_down_together_fall_in_the_buckets_observe_puts_them_in() -> None:
    # Amounts on each bound, just above it, and past the last: each lands
    # where prometheus-client's own `observe` puts it, in the same sum.
    amounts = [bound for bound in DURATION_BUCKETS]
    amounts += [bound * 1.001 for bound in DURATION_BUCKETS] + [0.0, 60.0]
    one_by_one, together = CollectorRegistry(), CollectorRegistry()
    observed = Histogram("d", "d", buckets=DURATION_BUCKETS, registry=one_by_one)
    written_down = Histogram("d", "d", buckets=DURATION_BUCKETS, registry=together)
    for amount in amounts:
        observed.observe(amount)
    observe_all(written_down, amounts)
    expected, got = (
        {key: count for key, count in parsed(generate_latest(registry).decode()).items()
         if key[0] in ("d_bucket", "d_count")}
        for registry in (one_by_one, together)
    )  # fmt: skip
    assert got == expected
    assert written_down._sum.get() == pytest.approx(observed._sum.get())  # noqa: SLF001


def worker_pids(port: int) -> set[int]:
    """uvicorn's worker processes serving `port` (started by multiprocessing's spawn)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit():
                continue
            command = (entry / "cmdline").read_bytes()
            environment = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"spawn_main" in command and f"PORT={port}".encode() in environment:
            pids.add(int(entry.name))
    return pids


def two_workers(port: int, without: int | None = None) -> set[int] | None:
    pids = worker_pids(port)
    return pids if len(pids) == 2 and without not in pids else None


def serving_pid(client: socket.socket, port: int, pids: set[int]) -> int:
    """Which of `pids` holds the server's end of the connection `client` made to `port`."""
    client_port = client.getsockname()[1]
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = (int(address.split(":")[1], 16) for address in fields[1:3])
        if (local, remote) == (port, client_port):
            inode = fields[9]
    for pid in pids:
        for descriptor in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(descriptor) == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    raise AssertionError(f"no worker holds the connection from port {client_port}")


def half_sent_post(port: int) -> socket.socket:
    """A POST whose body never ends: a request in flight for as long as the connection lasts."""
    client = socket.create_connection(("127.0.0.1", port))
    client.sendall(
        b"POST /items/ HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{"
    )
    return client


def closed_by_server(client: socket.socket) -> bool:
    client.settimeout(0.2)
    try:
        return client.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def until(check, seconds: float = 30):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not (result := check()):
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.1)
    return result


def test_two_workers_one_killed_and_replaced_counts_stay_right(
    tmp_path: Path, empty_database: str
) -> None:
    variables = {"DATABASE_URL": empty_database, "METRICS": "true", "WEB_CONCURRENCY": "2"}
    variables |= {"LOG_FORMAT": "json"}
    with running_service(tmp_path, **variables) as (base, output):
        port = int(base.rsplit(":", 1)[1])
        workers = until(lambda: two_workers(port))
        for _ in range(20):  # a connection each: both workers serve some
            assert httpx.post(f"{base}/items/", json=ITEM).status_code == 201
        in_flight = [half_sent_post(port) for _ in range(6)]
        active = "http_server_active_requests"
        until(lambda: value(scrape(base), active, http_request_method="POST") == 6)
        holders = [serving_pid(client, port, workers) for client in in_flight]
        killed = holders[0]
        os.kill(killed, signal.SIGKILL)
        until(lambda: two_workers(port, without=killed))
        until(lambda: all(httpx.get(f"{base}/health").status_code == 200 for _ in range(10)))
        survivors = [c for c, pid in zip(in_flight, holders, strict=True) if pid != killed]
        assert all(closed_by_server(c) for c in in_flight if c not in survivors)
        for _ in range(10):
            assert httpx.post(f"{base}/items/", json=ITEM).status_code == 201
        # The killed worker's requests in flight are gone with it (each worker
        # writes its gauges down every second).
        until(lambda: value(scrape(base), active, http_request_method="POST") == len(survivors))
        # Once written down, in whichever worker.
        until(lambda: requests(scrape(base))[("POST", "/items/", 201)] >= 30, seconds=5)
        for _ in range(3):  # whichever worker answers
            samples = scrape(base)
            assert requests(samples)[("POST", "/items/", 201)] == 30
            assert value(samples, active, http_request_method="POST") == len(survivors)
        for client in in_flight:
            client.close()
    # The supervisor's lines and each worker's, the killed one's replacement included.
    lines = [json.loads(line) for line in output[0].splitlines()]
    started = [line for line in lines if line["message"].startswith("Started server process")]
    assert len(started) == 3


def test_a_pool_timeout_is_counted_and_answered_503(database_url: str, client: TestClient) -> None:
    settings = settings_for(
        database_url, metrics=True, migrate_on_start=False, db_pool_size=1, db_pool_timeout=0.2
    )
    with TestClient(create_app(settings)) as metered:
        engine = metered.app.state.database.engine  # type: ignore[attr-defined]
        held = [engine.connect() for _ in range(engine.pool.size())]
        try:
            response = metered.get("/items/")
        finally:
            for connection in held:
                connection.close()
        samples = parsed(metered.get("/metrics").text)
    assert (response.status_code, response.headers["retry-after"]) == (503, "5")
    assert value(samples, "db_client_connection_timeouts_total") == 1
    assert value(samples, "db_client_connection_wait_time_seconds_count") == 1
    assert value(samples, "db_client_connection_wait_time_seconds_sum") >= 0.2
    unavailable = "items_service_unavailable_responses_total"
    assert value(samples, unavailable, error_type="pool_timeout") == 1
    assert value(samples, unavailable, error_type="database_unavailable") == 0


def test_retries_are_reported_by_reason(database_url: str) -> None:
    class Recorder(Observer):
        def __init__(self) -> None:
            self.reasons: list[RetryReason] = []

        def retried(self, reason: RetryReason) -> None:
            self.reasons.append(reason)

    recorder = Recorder()
    database = Database(parse_database_url(database_url), settings_for(database_url), recorder)
    not_ready = Exception("the server cannot serve")
    failures = [
        sa.exc.OperationalError("UPDATE", {}, Exception("lost a conflict")),
        sa.exc.OperationalError("UPDATE", {}, not_ready, connection_invalidated=True),
        sa.exc.OperationalError("UPDATE", {}, Exception("gone"), connection_invalidated=True),
    ]

    def flaky(engine: sa.Engine) -> str:
        if failures:
            raise failures.pop(0)
        return "done"

    # Each backend has its own errors that mean these; here they are given.
    database.error_kind = lambda error: ErrorKind.RETRYABLE  # type: ignore[method-assign]
    database.backend.server_cannot_serve = lambda error: error is not_ready  # type: ignore[method-assign]
    try:
        assert asyncio.run(database.run(flaky)) == "done"
    finally:
        database.close()
    assert recorder.reasons == [
        RetryReason.CONFLICT,
        RetryReason.FAILOVER,
        RetryReason.CONNECTION_LOST,
    ]
