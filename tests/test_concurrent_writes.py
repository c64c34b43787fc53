"""Writes that arrive together, while another connection holds the items
table's write lock: when it lets go, each write succeeds or fails on its own,
and every write acknowledged is stored.

On a SQLite file the waiting writes are committed as one group, one
transaction (service.group_commit): a write that fails there must not take
the others with it. Network databases run them side by side, each committed
by itself; the answers must be the same.
"""

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager

import sqlalchemy as sa
from fastapi.testclient import TestClient

from conftest import BACKEND, on_every_server, sqlite_write_lock_held
from service.db.urls import parse_database_url


@contextmanager
def write_lock_held(database_url: str) -> Iterator[None]:
    """Another connection holds a lock that keeps out writes to items, not reads
    (on a Galera cluster, one on each node: a table lock holds on its node only)."""
    if BACKEND == "sqlite":
        with sqlite_write_lock_held(database_url.removeprefix("sqlite:///")):
            yield
        return
    with ExitStack() as stack:
        for url in on_every_server(database_url):
            engine = sa.create_engine(parse_database_url(url), poolclass=sa.pool.NullPool)
            stack.callback(engine.dispose)
            connection = stack.enter_context(engine.connect())
            if BACKEND == "postgresql":
                connection.exec_driver_sql("LOCK TABLE items IN EXCLUSIVE MODE")
                stack.callback(connection.rollback)
            else:
                connection.exec_driver_sql("LOCK TABLES items READ")
                stack.callback(connection.exec_driver_sql, "UNLOCK TABLES")
        yield


def test_writes_waiting_together_succeed_or_fail_each_on_its_own(
    client: TestClient, database_url: str
) -> None:
    taken = client.post("/items/", json={"name": "Taken", "price": 1, "sku": "TAKEN"}).json()
    changed = client.post("/items/", json={"name": "Changed", "price": 2}).json()
    deleted = client.post("/items/", json={"name": "Deleted", "price": 3}).json()
    writes = [
        ("POST", "/items/", {"name": "New 1", "price": 4, "sku": "NEW-1"}, None),
        ("POST", "/items/", {"name": "Clash", "price": 5, "sku": "TAKEN"}, 409),
        ("POST", "/items/", {"name": "New 2", "price": 6}, 201),
        ("PATCH", f"/items/{changed['id']}", {"sku": "TAKEN"}, 409),
        ("PATCH", f"/items/{changed['id']}", {"price": 7.5}, 200),
        ("DELETE", f"/items/{deleted['id']}", None, 204),
        ("POST", "/items/", {"name": "New 3", "price": 8, "sku": "NEW-1"}, None),
        ("PATCH", "/items/2147483647", {"price": 9}, 404),
    ]
    with ThreadPoolExecutor(len(writes) + 1) as pool:
        with write_lock_held(database_url):
            first = pool.submit(client.post, "/items/", json={"name": "First", "price": 10})
            time.sleep(0.5)  # on SQLite the writer thread now waits for the lock with it
            answers = [
                pool.submit(client.request, method, path, json=body)
                for method, path, body, _status in writes
            ]
            time.sleep(1)
            assert not first.done() and not any(answer.done() for answer in answers)
        responses = [answer.result(timeout=30) for answer in answers]
    assert first.result(timeout=30).status_code == 201

    for (method, path, _body, status), response in zip(writes, responses, strict=True):
        if status is not None:
            assert response.status_code == status, (method, path, response.text)
    # NEW-1 twice: whichever came second is refused, not both, not neither.
    assert sorted([responses[0].status_code, responses[6].status_code]) == [201, 409]

    created = [response.json() for response in responses if response.status_code == 201]
    stored = client.get("/items/").json()
    assert sorted(item["name"] for item in stored) == sorted(
        ["Taken", "Changed", "First", *(item["name"] for item in created)]
    )
    for item in created:
        assert client.get(f"/items/{item['id']}").json() == item
    assert client.get(f"/items/{changed['id']}").json() == responses[4].json()
    assert responses[4].json()["price"] == 7.5 and responses[4].json()["sku"] is None
    assert client.get(f"/items/{deleted['id']}").status_code == 404
    assert client.get(f"/items/{taken['id']}").json() == taken
