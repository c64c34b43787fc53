"""A PostgreSQL primary lost, its standby promoted: the service follows by itself.

In the `postgres-ha` tox env, on a primary and standby of each test's own
(the suite's pair stays whole). The service is given both hosts in libpq's
form, with `target_session_attrs=read-write`: libpq connects to whichever
accepts writes.
"""

import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import sqlalchemy as sa

from clusters import PostgresPair, _query
from load import Load
from servers import running_service

pytestmark = pytest.mark.cluster("postgres-ha")


def service_variables(pair: PostgresPair) -> dict[str, str]:
    _query(pair.primary_url, "CREATE DATABASE items")
    url = f"postgresql://postgres@{pair.hosts}/items?target_session_attrs=read-write"
    return {"DATABASE_URL": url, "DB_CONNECT_TIMEOUT": "2", "ACCESS_LOG": "false"}


def items_on(server_url: str) -> dict[int, dict[str, Any]]:
    url = sa.make_url(server_url).set(database="items")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            rows = connection.exec_driver_sql(
                "SELECT id, name, CAST(price AS FLOAT) AS price FROM items"
            )
            return {row.id: dict(row._mapping) for row in rows}
    finally:
        engine.dispose()


def test_the_service_follows_a_failover_under_load(tmp_path: Path) -> None:
    with PostgresPair() as pair:
        with running_service(tmp_path, **service_variables(pair)) as (base, output):
            load = Load(base, clients=24)
            with load.running():
                time.sleep(5)
                killed_at = time.monotonic()
                pair.kill_primary()
                time.sleep(1)
                promoted_at = time.monotonic()
                pair.promote_standby()
                time.sleep(10)
            ended = time.monotonic()
        stored = items_on(pair.standby_url)

    failures = load.failures()
    first_write_after = min(
        started + taken
        for started, taken, method, status, _ in load.requests
        if started >= promoted_at and method != "GET" and status in (200, 201)
    )
    print(
        f"\nfailover under load: before the kill {dict(load.statuses(0, killed_at))}; from the "
        f"kill to the promotion {dict(load.statuses(killed_at, promoted_at))}; after it "
        f"{dict(load.statuses(promoted_at, ended))}; first write on the new primary "
        f"{first_write_after - promoted_at:.2f} s after the promotion began; slowest request "
        f"{load.slowest():.2f} s; {len(load.created)} acknowledged creates checked"
    )
    assert {status for *_, status, _ in failures} <= {503}, failures[:5]
    assert all(retry_after for *_, retry_after in failures)
    assert load.statuses(promoted_at, ended)[201] > 100
    for item_id, created in load.created.items():
        assert stored[item_id]["name"] == created["name"], item_id
        assert stored[item_id]["price"] in load.prices_sent[item_id], item_id


def test_writes_on_a_demoted_primary_move_to_the_new_one_never_a_500(tmp_path: Path) -> None:
    with PostgresPair() as pair:
        with (
            running_service(tmp_path, **service_variables(pair)) as (base, _),
            httpx.Client(base_url=base, timeout=30) as http,
        ):
            before = http.post("/items/", json={"name": "before", "price": 1})
            assert before.status_code == 201
            # The old primary turns read-only for every session it has, as a
            # demoted primary does; the service's pooled connections are on it.
            _query(pair.primary_url, "ALTER SYSTEM SET default_transaction_read_only = on")
            _query(pair.primary_url, "SELECT pg_reload_conf()")
            refused = http.post("/items/", json={"name": "nowhere to go", "price": 2})
            pair.promote_standby()
            answers = [
                http.post("/items/", json={"name": f"after {n}", "price": 3}) for n in range(20)
            ]
            assert [a.status_code for a in answers] == [201] * 20, answers[0].text
            listed = http.get("/items/").json()
        stored = items_on(pair.standby_url)
    # With no server taking writes, a write is a 503 that may be retried, never a 500.
    assert refused.status_code == 503 and refused.headers["retry-after"]
    assert [item["id"] for item in listed] == sorted(stored)
    assert {answer.json()["id"] for answer in answers} <= set(stored)
