"""SQLite files: reads of one item run on the event loop, and writes on a thread
of their own, so reads answer while a write waits for the write lock
(the SQLite backend's capabilities `short_reads_on_loop`, `one_writer_thread`).

Only SQLite does this: network databases keep their reads on worker threads,
where waiting for the network cannot stall the event loop, and take
concurrent writers.
"""

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import settings_for, sqlite_write_lock_held
from service.app import create_app

pytestmark = pytest.mark.backends("sqlite")


@contextmanager
def service_with_a_create_waiting_for_the_lock(
    database_url: str,
) -> Iterator[tuple[TestClient, ThreadPoolExecutor, dict[str, Any]]]:
    """The service, one item stored, and a create waiting for the write lock,
    which another connection holds until the block ends; then the create must
    go through (nothing acknowledged is lost)."""
    settings = settings_for(database_url, db_pool_size=1, migrate_on_start=False)
    path = database_url.removeprefix("sqlite:///")
    with TestClient(create_app(settings)) as client, ThreadPoolExecutor(3) as requests:
        item = client.post("/items/", json={"name": "Before the lock", "price": 1}).json()
        with sqlite_write_lock_held(path):
            created = requests.submit(client.post, "/items/", json={"name": "Waits", "price": 2})
            time.sleep(1)  # the create now waits for the lock on the writer thread
            assert not created.done()
            yield client, requests, item
            assert not created.done()
        response = created.result(timeout=20)
        assert response.status_code == 201, response.text
        assert client.get(f"/items/{response.json()['id']}").json() == response.json()


def test_a_read_answers_while_a_write_waits_for_the_write_lock(database_url: str) -> None:
    with service_with_a_create_waiting_for_the_lock(database_url) as (client, requests, item):
        read = requests.submit(client.get, f"/items/{item['id']}")
        assert read.result(timeout=5).json() == item


def test_a_list_answers_while_a_write_waits_for_the_write_lock(database_url: str) -> None:
    with service_with_a_create_waiting_for_the_lock(database_url) as (client, requests, item):
        # The database is shared with other tests: list from this test's item on.
        page = {"after_id": item["id"] - 1}
        listed = requests.submit(client.get, "/items/", params=page)
        assert listed.result(timeout=5).json() == [item]
