"""The writer thread of a SQLite file (service.group_commit), on a SQLite file
of its own whatever the backend under test: writes waiting together commit
together, and when SQLite ends the group's transaction itself (as it does on
a full disk or an I/O error) none of the group is stored or acknowledged.
"""

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.engine import Connection

from conftest import settings_for, sqlite_write_lock_held
from service.db.engine import create_engine
from service.db.group_commit import GroupCommitWriter
from service.db.urls import parse_database_url


def insert(connection: Connection, name: str) -> str:
    connection.exec_driver_sql("INSERT INTO writes (name) VALUES (?)", (name,))
    return name


def fail_ending_the_transaction(connection: Connection) -> None:
    connection.exec_driver_sql("INSERT INTO writes (name) VALUES ('rolled back')")
    connection.exec_driver_sql("ROLLBACK")  # what SQLite does on SQLITE_FULL or SQLITE_IOERR
    raise sqlite3.OperationalError("database or disk is full")


def stored(path: Path) -> list[str]:
    with sqlite3.connect(path) as connection:
        return [name for (name,) in connection.execute("SELECT name FROM writes ORDER BY rowid")]


def run_as_one_group(path: Path, *writes: tuple) -> list[object]:
    """Run `writes` on a writer thread as one group: they queue while another
    connection holds the write lock and a first write waits for it alone."""
    url = f"sqlite:///{path}"
    engine = create_engine(parse_database_url(url), settings_for(url), autocommit=True)

    async def main() -> list[object]:
        writer = GroupCommitWriter(engine)
        with sqlite_write_lock_held(path):
            first = asyncio.ensure_future(writer.write(insert, "first"))
            await asyncio.sleep(0.3)  # the writer thread now waits for the lock with it
            group = [asyncio.ensure_future(writer.write(*write)) for write in writes]
            await asyncio.sleep(0.3)
            assert not first.done() and not any(write.done() for write in group)
        results = await asyncio.gather(first, *group, return_exceptions=True)
        writer.close()
        return results

    try:
        return asyncio.run(main())
    finally:
        engine.dispose()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    path = tmp_path / "writes.db"
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("CREATE TABLE writes (name TEXT UNIQUE)")
    return path


def test_writes_waiting_together_are_all_committed(path: Path) -> None:
    results = run_as_one_group(path, (insert, "a"), (insert, "b"), (insert, "c"))
    assert results == ["first", "a", "b", "c"]
    assert stored(path) == ["first", "a", "b", "c"]


def test_a_write_that_fails_alone_leaves_the_rest_of_its_group(path: Path) -> None:
    results = run_as_one_group(path, (insert, "a"), (insert, "first"), (insert, "c"))
    assert results[:2] == ["first", "a"] and results[3] == "c"
    assert isinstance(results[2], Exception) and "UNIQUE" in str(results[2])
    assert stored(path) == ["first", "a", "c"]


def test_when_sqlite_ends_the_transaction_the_whole_group_fails(path: Path) -> None:
    results = run_as_one_group(path, (insert, "a"), (fail_ending_the_transaction,), (insert, "b"))
    assert results[0] == "first"
    assert all(isinstance(result, Exception) for result in results[1:])
    # Nothing of the group was stored, and nothing after the failure ran on
    # its own, outside a transaction.
    assert stored(path) == ["first"]
