"""`items-service copy` as users run it: a real process between real databases, the
result read back over HTTP.

The env's backend (its cluster, if the env has one) is copied to each other
backend and back: SQLite files need no server, and the other servers are this
machine's (TEST_POSTGRES_URL, TEST_MYSQL_URL), so the sqlite env copies
between SQLite files only.
"""

import json
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from bench.databases import fresh_database
from conftest import BACKEND, CLUSTER, settings_for, temporary_database
from servers import service_env
from service import migrations
from service.app import create_app
from service.db.engine import create_engine
from service.db.urls import parse_database_url
from service.items.models import fold_case

ROOT = Path(__file__).parent.parent
OTHERS = ["sqlite"] if BACKEND == "sqlite" else ["sqlite", "postgresql", "mysql"]
SEARCHES = ["strasse", "STRASSE", "ß", "🍕", "widget", "w", "ge", "no such name", "%", "a_b"]
LONGEST_NAME = "🍕" + "ß" * 253 + "x"


@contextmanager
def database_on(kind: str, tmp_path: Path, label: str) -> Iterator[str]:
    """A new, empty database of `kind`: on the env's own server or cluster for its
    backend, on this machine's server for another."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / label}.db"
    elif kind == BACKEND:
        with temporary_database(tmp_path, label) as url:
            yield url
    else:
        with fresh_database(kind) as url:
            yield url


def migrated(url: str) -> str:
    engine = create_engine(parse_database_url(url), settings_for(url))
    migrations.upgrade_to_head(engine)
    engine.dispose()
    return url


@contextmanager
def served(url: str, **settings: Any) -> Iterator[TestClient]:
    app = create_app(settings_for(url, migrate_on_start=False, **settings))
    with TestClient(app) as client:
        yield client


def run_copy(*arguments: str, **variables: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", "copy", *arguments],
        env=service_env(**variables),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


def copied(source: str, target: str, *options: str) -> subprocess.CompletedProcess[str]:
    result = run_copy("--from", source, "--to", target, *options)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def fill(url: str) -> tuple[list[int], list[int], tuple[int, int]]:
    """Items and orders at the edges of what the service stores, with gaps in the
    ids and the last ids deleted, over HTTP: the ids of the items and orders kept
    (on Galera, each node hands out ids of its own), and the highest of each
    ever handed out."""
    with served(url) as client:

        def item(name: str, price: object, **fields: object) -> int:
            response = client.post("/items/", json={"name": name, "price": price, **fields})
            assert response.status_code == 201, response.text
            return int(response.json()["id"])

        ids = [
            item("Straße Widget", 999_999_999.99, sku="ABC"),
            item(LONGEST_NAME, 0, sku="ABC ", description="d" * 2000),
            item("Blue widget 🍕", 0.01, sku="abc", description="tab\there\nnewline \\ back"),
            item("gadget a_b 100%", 19.99, description=""),
            item("Große Lampe", 7.1),
            item("to be deleted", 1),
            item("last, deleted", 2),
        ]
        orders = []
        for item_id, quantity in [(ids[0], 10_000), (ids[2], 7), (ids[3], 1), (ids[4], 3)]:
            response = client.post("/orders/", json={"item_id": item_id, "quantity": quantity})
            assert response.status_code == 201, response.text
            orders.append(response.json()["id"])
        deleted = [
            client.delete(f"/orders/{orders[-1]}"),
            client.delete(f"/orders/{orders[1]}"),
            client.delete(f"/items/{ids[5]}"),
            client.delete(f"/items/{ids[6]}"),
        ]
        assert [response.status_code for response in deleted] == [204] * 4
    return ids[:5], [orders[0], orders[2]], (max(ids), max(orders))


def seen(url: str) -> dict[str, Any]:
    """What clients see of a database: every item and order, what each search finds."""
    with served(url) as client:
        view = {
            "items": client.get("/items/", params={"limit": 1000}).json(),
            "orders": client.get("/orders/", params={"limit": 1000}).json(),
        }
        for text in SEARCHES:
            view[f"q={text}"] = [i["id"] for i in client.get("/items/", params={"q": text}).json()]
    return view


def next_ids(url: str) -> tuple[int, int]:
    """The ids a new item and a new order get (they are written)."""
    with served(url) as client:
        item = client.post("/items/", json={"name": "new", "price": 1}).json()["id"]
        order = client.post("/orders/", json={"item_id": item, "quantity": 1}).json()["id"]
    return item, order


@pytest.mark.parametrize("other", OTHERS)
def test_a_copy_and_its_copy_back_serve_the_same_rows_searches_and_next_ids(
    tmp_path: Path, other: str
) -> None:
    with ExitStack() as databases:
        source = migrated(databases.enter_context(database_on(BACKEND, tmp_path, "source")))
        there = databases.enter_context(database_on(other, tmp_path, "there"))
        back = databases.enter_context(database_on(BACKEND, tmp_path, "back"))
        items, _, (last_item, last_order) = fill(source)
        before = seen(source)
        assert before["q=strasse"] == before["q=STRASSE"] == [items[0]]
        assert before["items"][1]["name"] == LONGEST_NAME
        result = copied(source, there)
        assert "copy items: 5 rows" in result.stdout
        assert "verified:" in result.stdout
        copied(there, back)
        assert seen(there) == before
        assert seen(back) == before
        # Ids go on from the source's high-water mark: the deleted last ones are never reused.
        ids = [next_ids(url) for url in (source, there, back)]
        if CLUSTER == "galera":
            # Each node hands out ids of its own (auto_increment_increment): above the mark.
            assert all(item > last_item and order > last_order for item, order in ids), ids
        else:
            assert ids == [(8, 5)] * 3


@pytest.mark.backends("postgresql")
def test_sqlite_to_postgresql_to_mysql_to_sqlite_ends_where_it_began(tmp_path: Path) -> None:
    with ExitStack() as databases:
        start = migrated(databases.enter_context(database_on("sqlite", tmp_path, "start")))
        postgresql = databases.enter_context(database_on("postgresql", tmp_path, "pg"))
        mysql = databases.enter_context(database_on("mysql", tmp_path, "my"))
        end = databases.enter_context(database_on("sqlite", tmp_path, "end"))
        fill(start)
        copied(start, postgresql)
        copied(postgresql, mysql)
        copied(mysql, end)
        assert run_copy("--from", start, "--to", end, "--verify").returncode == 0
        assert seen(end) == seen(start)
        assert next_ids(end) == next_ids(start) == (8, 5)


def schema_of(url: str) -> set[tuple[str, ...]]:
    """PostgreSQL's indexes, constraints and functions of the service's tables, as
    the server writes them out."""
    engine = create_engine(parse_database_url(url), settings_for(url))
    try:
        with engine.connect() as connection:
            indexes = connection.exec_driver_sql(
                "SELECT 'index', indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
            )
            constraints = connection.exec_driver_sql(
                "SELECT 'constraint', conname, contype::text, pg_get_constraintdef(oid) "
                "FROM pg_constraint WHERE connamespace = 'public'::regnamespace"
            )
            functions = connection.exec_driver_sql(
                "SELECT 'function', proname, pg_get_functiondef(oid) FROM pg_proc "
                "WHERE pronamespace = 'public'::regnamespace AND prokind = 'f'"
            )
            return {tuple(row) for result in (indexes, constraints, functions) for row in result}
    finally:
        engine.dispose()


@pytest.mark.backends("postgresql")
def test_what_a_copy_onto_postgresql_builds_in_bulk_is_what_migrations_build(
    tmp_path: Path,
) -> None:
    # The copy drops the target's indexes, unique and foreign keys while the rows
    # go in, and builds them once they are in: the same as Alembic's, and found
    # by `q` as the source finds (the test above).
    with ExitStack() as databases:
        source = migrated(databases.enter_context(database_on("sqlite", tmp_path, "source")))
        fresh = migrated(databases.enter_context(database_on("postgresql", tmp_path, "fresh")))
        target = databases.enter_context(database_on("postgresql", tmp_path, "target"))
        fill(source)
        copied(source, target)
        assert schema_of(target) == schema_of(fresh)
        assert seen(target) == seen(source)


def test_a_difference_is_named_by_table_id_range_and_column(tmp_path: Path) -> None:
    with ExitStack() as databases:
        source = migrated(databases.enter_context(database_on(BACKEND, tmp_path, "source")))
        target = databases.enter_context(database_on(BACKEND, tmp_path, "target"))
        items, orders, _ = fill(source)
        copied(source, target)
        engine = create_engine(parse_database_url(target), settings_for(target))
        with engine.begin() as connection:
            connection.exec_driver_sql(f"UPDATE items SET price = 19.98 WHERE id = {items[3]}")
            connection.exec_driver_sql(f"DELETE FROM orders WHERE id = {orders[0]}")
        engine.dispose()
        result = run_copy("--from", source, "--to", target, "--verify", "--json")
        assert result.returncode == 1
        report = json.loads(result.stdout)
        assert report["status"] == "different"
        assert report["differences"] == [
            "items ids 0-9999: 5 rows on the source, 5 on the target; "
            f"column price differs (first at id {items[3]})",
            "orders ids 0-9999: 2 rows on the source, 1 on the target; "
            f"id {orders[0]} is missing from the target",
        ]


def test_a_target_with_rows_is_refused_and_left_alone(tmp_path: Path) -> None:
    with ExitStack() as databases:
        source = migrated(databases.enter_context(database_on(BACKEND, tmp_path, "source")))
        target = migrated(databases.enter_context(database_on(BACKEND, tmp_path, "target")))
        fill(source)
        with served(target) as client:
            assert client.post("/items/", json={"name": "mine", "price": 1}).status_code == 201
        before = seen(target)
        result = run_copy("--from", source, "--to", target)
        assert result.returncode == 1
        assert "error: the target already holds rows (items)" in result.stderr
        assert seen(target) == before


def test_a_copy_in_progress_from_another_source_is_refused(tmp_path: Path) -> None:
    with ExitStack() as databases:
        first = migrated(databases.enter_context(database_on(BACKEND, tmp_path, "first")))
        second = migrated(databases.enter_context(database_on(BACKEND, tmp_path, "second")))
        target = databases.enter_context(database_on(BACKEND, tmp_path, "target"))
        fill(first)
        copied(first, target)
        engine = create_engine(parse_database_url(target), settings_for(target))
        with engine.begin() as connection:
            # As a copy killed before it verified leaves its target: still marked.
            connection.exec_driver_sql(
                "CREATE TABLE items_service_copy (id INTEGER PRIMARY KEY, "
                "source VARCHAR(1000) NOT NULL, deferred TEXT)"
            )
            connection.exec_driver_sql(
                "INSERT INTO items_service_copy (id, source) VALUES (1, 'sqlite:////elsewhere.db')"
            )
        engine.dispose()
        result = run_copy("--from", second, "--to", target)
        assert result.returncode == 1
        assert "holds a copy of sqlite:////elsewhere.db that has not finished" in result.stderr


def test_a_source_that_is_not_migrated_is_refused(tmp_path: Path) -> None:
    with ExitStack() as databases:
        source = databases.enter_context(database_on(BACKEND, tmp_path, "source"))
        target = databases.enter_context(database_on("sqlite", tmp_path, "target"))
        engine = create_engine(parse_database_url(source), settings_for(source))
        with engine.connect() as connection:  # a SQLite file too exists, then
            connection.exec_driver_sql("SELECT 1")
        engine.dispose()
        result = run_copy("--from", source, "--to", target)
        assert result.returncode == 1
        assert "the source has no schema" in result.stderr
        assert "migrate the source first" in result.stderr


def test_the_password_is_never_shown(tmp_path: Path) -> None:
    password = "s3cret-p@ss"
    target = "postgresql://someone:s3cret-p%40ss@127.0.0.1:1/nowhere"
    source = migrated(f"sqlite:///{tmp_path / 'source.db'}")
    for arguments in (["--to", target], ["--verify", "--to", target, "--json"]):
        result = run_copy(*arguments, DATABASE_URL=source)
        assert result.returncode == 1
        output = result.stdout + result.stderr
        assert password not in output and "s3cret" not in output
        assert "someone:***@127.0.0.1:1/nowhere" in output or "driver is not installed" in output


def test_in_memory_databases_and_missing_files_are_refused(tmp_path: Path) -> None:
    source = migrated(f"sqlite:///{tmp_path / 'source.db'}")
    memory = run_copy("--from", source, "--to", "sqlite://")
    assert memory.returncode == 1
    assert "the target is sqlite://, a database in memory" in memory.stderr
    missing = run_copy("--from", f"sqlite:///{tmp_path / 'none.db'}", "--to", source)
    assert missing.returncode == 1
    assert "does not exist" in missing.stderr
    assert not (tmp_path / "none.db").exists()


def sparse_rows(url: str, count: int) -> None:
    """`count` items and as many orders, each in an id range of its own (ranges
    commit one at a time: many points to be killed at)."""
    engine = create_engine(parse_database_url(url), settings_for(url))
    step = 10_000
    item_columns = ("id", "name", "name_folded", "price", "created_at", "updated_at")
    order_columns = ("id", "item_id", "quantity", "unit_price", "total", "created_at")
    items = sa.table("items", *map(sa.column, item_columns))
    orders = sa.table("orders", *map(sa.column, order_columns))
    stamp = "2026-01-02 03:04:05.678901"
    with engine.begin() as connection:
        connection.execute(
            items.insert(),
            [
                {"id": n * step + 1, "name": f"Item {n}", "name_folded": fold_case(f"Item {n}"),
                 "price": 1.5, "created_at": stamp, "updated_at": stamp}
                for n in range(count)
            ],
        )  # fmt: skip
        connection.execute(
            orders.insert(),
            [
                {"id": n * step + 7, "item_id": n * step + 1, "quantity": 2, "unit_price": 1.5,
                 "total": 3, "created_at": stamp}
                for n in range(count)
            ],
        )  # fmt: skip
    engine.dispose()


def killed(source: str, target: str, when: Callable[[], bool]) -> bool:
    """Start the copy, and kill -9 it as soon as `when()` holds; False if the copy
    had finished by then."""
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "copy", "--from", source, "--to", target],
        env=service_env(),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not when() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    finished = process.poll() is not None
    process.kill()  # nothing if it has ended
    process.wait()
    return not finished


def rows_in(url: str, table: str) -> int:
    engine = create_engine(parse_database_url(url), settings_for(url))
    try:
        for _ in range(10):
            try:
                with engine.connect() as connection:
                    if not sa.inspect(connection).has_table(table):
                        return 0
                    counted = connection.exec_driver_sql(f"SELECT count(*) FROM {table}")
                    return int(counted.scalar() or 0)
            except sa.exc.OperationalError:
                # On Galera, a copy's DDL on another node may abort this read.
                time.sleep(0.1)
        raise AssertionError(f"could not count the rows of {table}")
    finally:
        engine.dispose()


def test_killed_at_any_moment_the_copy_run_again_finishes_it(tmp_path: Path) -> None:
    rows = 300
    with ExitStack() as databases:
        source = migrated(databases.enter_context(database_on(BACKEND, tmp_path, "source")))
        target = databases.enter_context(database_on(BACKEND, tmp_path, "target"))
        sparse_rows(source, rows)
        # Killed once some items are in, once some orders are, once at a random moment
        # (which may come after the copy has finished: then it is verified instead).
        assert killed(source, target, lambda: rows_in(target, "items") > 10)
        assert killed(source, target, lambda: rows_in(target, "orders") > 10)
        began = time.monotonic()
        pause = random.uniform(0.0, 3.0)
        killed(source, target, lambda: time.monotonic() - began > pause)
        in_progress = rows_in(target, "items_service_copy") > 0
        result = copied(source, target, *([] if in_progress else ["--verify"]))
        assert "verified:" in result.stdout
        assert rows_in(target, "items") == rows_in(target, "orders") == rows
        assert rows_in(target, "items_service_copy") == 0
        # The rows were written with their ids (no counter moved): the highest ids, then.
        last = (rows - 1) * 10_000
        item, order = next_ids(target)
        if CLUSTER == "galera":
            # Each node hands out ids of its own (auto_increment_increment): above the mark.
            assert item > last + 1 and order > last + 7, (item, order)
        else:
            assert (item, order) == (last + 2, last + 8)
