"""A database that goes away and comes back: 503 quickly, recovery without a
restart, nothing acknowledged lost. Runs a private server it can stop."""

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from conftest import BACKEND, on_every_server, settings_for, temporary_database
from private_servers import PrivateMariaDB, PrivatePostgres, private_server
from servers import running_service
from service.app import create_app
from service.db.backends.base import PING_AFTER_IDLE_SECONDS

# SQLite is a file in the process: there is no server to stop.
pytestmark = pytest.mark.backends("postgresql", "mysql")

CONNECT_TIMEOUT = 2


@pytest.fixture
def server() -> Iterator[PrivatePostgres | PrivateMariaDB]:
    server = private_server(BACKEND)
    try:
        server.start()
        yield server
    finally:
        server.remove()


def items_database(server: PrivatePostgres | PrivateMariaDB) -> str:
    admin = sa.create_engine(server.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql("CREATE DATABASE items")
    admin.dispose()
    return sa.engine.make_url(server.url).set(database="items").render_as_string()


def test_outage_is_503_and_the_service_recovers_by_itself(
    tmp_path: Path, server: PrivatePostgres | PrivateMariaDB
) -> None:
    url = items_database(server)
    with running_service(tmp_path, DATABASE_URL=url, DB_CONNECT_TIMEOUT=str(CONNECT_TIMEOUT)) as (
        base,
        _,
    ):
        acknowledged = []
        for n in range(5):
            response = httpx.post(f"{base}/items/", json={"name": f"kept {n}", "price": n + 0.5})
            assert response.status_code == 201
            acknowledged.append(response.json())

        server.stop()
        during = []
        for method, path, body in [
            ("GET", "/items/", None),
            ("GET", f"/items/{acknowledged[0]['id']}", None),
            ("POST", "/items/", {"name": "lost?", "price": 1}),
            ("PATCH", f"/items/{acknowledged[1]['id']}", {"price": 2}),
            ("DELETE", f"/items/{acknowledged[2]['id']}", None),
            ("GET", "/health/ready", None),
        ] * 2:
            started = time.monotonic()
            response = httpx.request(method, f"{base}{path}", json=body, timeout=30)
            elapsed = time.monotonic() - started
            during.append(f"{method} {path} {response.status_code} {elapsed:.2f}s")
            assert response.status_code == 503, response.text
            assert response.json() == {"detail": "Database unavailable"}
            assert int(response.headers["retry-after"]) > 0
            assert elapsed < CONNECT_TIMEOUT + 1
        assert httpx.get(f"{base}/health").status_code == 200

        server.start()
        restarted = time.monotonic()
        while (response := httpx.get(f"{base}/items/", timeout=30)).status_code != 200:
            assert time.monotonic() - restarted < 20, response.text
            time.sleep(0.1)
        recovery = time.monotonic() - restarted

        assert response.json() == acknowledged
        assert httpx.post(f"{base}/items/", json={"name": "after", "price": 1}).status_code == 201
        print(f"\n{BACKEND} outage: " + "; ".join(during))
        print(f"{BACKEND} recovered {recovery:.2f}s after the server was back")


def test_a_host_that_never_answers_is_503_within_the_connect_timeout() -> None:
    # The kernel completes the TCP handshake for a listening socket nobody
    # accepts from, so only the driver's connect timeout can end the wait.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        scheme, user = ("postgresql", "postgres") if BACKEND == "postgresql" else ("mysql", "root")
        url = f"{scheme}://{user}@127.0.0.1:{port}/items"
        settings = settings_for(url, db_connect_timeout=CONNECT_TIMEOUT)
        with TestClient(create_app(settings)) as client:
            started = time.monotonic()
            response = client.get("/items/")
            elapsed = time.monotonic() - started
    assert (response.status_code, response.json()) == (503, {"detail": "Database unavailable"})
    assert elapsed < CONNECT_TIMEOUT + 1.5, elapsed


def end_sessions_on(database_url: str) -> int:
    """End every server session connected to the database of `database_url`, as a
    restart would (on a Galera cluster, on every node)."""
    return sum(_end_sessions(url) for url in on_every_server(database_url))


def _end_sessions(url: str) -> int:
    name = sa.engine.make_url(url).database
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            if BACKEND == "postgresql":
                return len(
                    connection.exec_driver_sql(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = %(name)s AND pid <> pg_backend_pid()",
                        {"name": name},
                    ).all()
                )
            ids = connection.exec_driver_sql(
                "SELECT id FROM information_schema.processlist "
                "WHERE db = %s AND id <> CONNECTION_ID()",
                (name,),
            ).scalars()
            killed = 0
            for session in ids:
                connection.exec_driver_sql(f"KILL {int(session)}")
                killed += 1
            return killed
    finally:
        admin.dispose()


def test_a_connection_the_server_ended_is_replaced_before_a_request_uses_it(
    tmp_path: Path,
) -> None:
    # A pooled connection idle for longer than PING_AFTER_IDLE_SECONDS is
    # pinged before use, so the request gets a fresh one instead of a 503.
    with (
        temporary_database(tmp_path, "ended") as url,
        running_service(tmp_path, DATABASE_URL=url) as (base, _),
    ):
        created = httpx.post(f"{base}/items/", json={"name": "kept", "price": 1.5})
        assert created.status_code == 201
        assert end_sessions_on(url) >= 1
        time.sleep(PING_AFTER_IDLE_SECONDS + 0.5)
        for _ in range(3):
            response = httpx.get(f"{base}/items/")
            assert response.status_code == 200, response.text
            assert response.json() == [created.json()]
