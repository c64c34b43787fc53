"""SQLite: a file, or `sqlite://`, one database in memory."""

import fcntl
import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import StaticPool

from service.db.backends.base import (
    Backend,
    Broken,
    BrokenConstraint,
    Capabilities,
    ErrorKind,
    Kind,
    SearchIndex,
)

# How long a write waits for another process's writer before it fails.
BUSY_TIMEOUT_SECONDS = 15

# Primary result codes (the low byte of the extended code) of a server that
# cannot serve now: busy or locked, out of memory or disk, I/O, a file it cannot open.
_UNAVAILABLE_CODES = {
    sqlite3.SQLITE_BUSY,
    sqlite3.SQLITE_LOCKED,
    sqlite3.SQLITE_NOMEM,
    sqlite3.SQLITE_READONLY,
    sqlite3.SQLITE_INTERRUPT,
    sqlite3.SQLITE_IOERR,
    sqlite3.SQLITE_CORRUPT,
    sqlite3.SQLITE_FULL,
    sqlite3.SQLITE_CANTOPEN,
    sqlite3.SQLITE_PROTOCOL,
}
# By the message: a foreign key's RESTRICT fails with the code of a trigger
# (SQLITE_CONSTRAINT_TRIGGER), not SQLITE_CONSTRAINT_FOREIGNKEY.
_BROKEN = {
    "UNIQUE constraint failed": Broken.UNIQUE,
    "CHECK constraint failed": Broken.CHECK,
    "FOREIGN KEY constraint failed": Broken.FOREIGN_KEY,
    "NOT NULL constraint failed": Broken.NOT_NULL,
}


class SQLite(Backend):
    """What SQLite's errors mean, and how processes take turns to migrate."""

    kind = Kind.SQLITE
    # A writer waiting for the lock (the busy timeout) tries again every
    # 100 ms once it has waited a while; a pause as long lets it in between
    # a migration's batches.
    pause_after_batch_seconds = 0.1
    # The driver begins a transaction before a row is written, never before
    # DDL: begun here, the transaction holds a whole revision (a table copied
    # in batch mode too). Immediate: it takes the write lock now, and never
    # has to give up its reads to get it halfway.
    migration_transaction_statements = ("BEGIN IMMEDIATE",)

    def error_kind(self, error: DBAPIError) -> ErrorKind:
        code = getattr(error.orig, "sqlite_errorcode", None)
        if code is None:
            return ErrorKind.BUG
        if code & 0xFF == sqlite3.SQLITE_CONSTRAINT:
            return ErrorKind.CONSTRAINT
        if code & 0xFF in _UNAVAILABLE_CODES:
            return ErrorKind.UNAVAILABLE
        if str(error.orig).startswith(("no such table", "no such column")):
            return ErrorKind.SCHEMA
        return ErrorKind.BUG

    def broken_constraint(self, error: DBAPIError) -> BrokenConstraint | None:
        # "UNIQUE constraint failed: items.sku", "CHECK constraint failed: ck_items_x",
        # "FOREIGN KEY constraint failed" (which one, SQLite does not say).
        failed, _, named = str(error.orig).partition(": ")
        broken = _BROKEN.get(failed)
        if broken is None:
            return None
        if broken is Broken.CHECK:
            return BrokenConstraint(broken, name=named or None)
        columns = tuple(column.rpartition(".")[2] for column in named.split(", ") if column)
        return BrokenConstraint(broken, columns=columns)

    def lock_timed_out(self, error: DBAPIError) -> bool:
        code = getattr(error.orig, "sqlite_errorcode", None)
        return code is not None and code & 0xFF == sqlite3.SQLITE_BUSY


class SQLiteFile(SQLite):
    # SQLite works inside this process, and its driver lets go of the GIL for
    # every row it steps through and takes it back: with many threads they
    # queue for it row by row. Two served lists of 100 best (bench/results.md).
    default_pool_size = 2

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            worker_threads=self.worker_threads(),
            update_returning=True,
            # One connection writes at a time: a second writer would sleep on the
            # busy timeout. On a thread of their own, writes wait in order, and
            # those waiting together commit with one sync of the log.
            one_writer_thread=True,
            # The driver hands the GIL to and fro for every row it steps through:
            # on the loop there is no one to hand it to. In WAL mode a reader never
            # waits for a writer. Lists stay on threads: a long list on the loop
            # would hold up every other request.
            short_reads_on_loop=True,
            search_index=SearchIndex.FULL_TEXT,
        )

    def engine_options(self) -> dict[str, Any]:
        # Two connections more than the worker threads take: one for the reads
        # on the event loop and one for the writer thread, so neither waits.
        return self.pool_options(extra_connections=2) | {
            # Connections move between threads; the busy timeout makes a write
            # wait for another process's writer instead of failing.
            "connect_args": {"check_same_thread": False, "timeout": BUSY_TIMEOUT_SECONDS},
        }

    def startup_problem(self) -> str | None:
        directory = Path(str(self.url.database)).absolute().parent
        if directory.is_dir():
            return None
        missing = "is not a directory" if directory.exists() else "does not exist"
        return (
            f"the SQLite file's directory, {directory}, {missing}: mkdir -p {directory} "
            "(writable by the service's user), or fix the path in DATABASE_URL"
        )

    @contextmanager
    def migration_lock(self, engine: Engine) -> Iterator[None]:
        # A lock on a file beside the database: SQLite's own write lock would
        # keep the service's writes out for the whole migration, which
        # commits as it goes.
        with Path(f"{self.url.database}-migration.lock").open("a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def prepare(self, engine: Engine) -> None:
        # WAL lets readers work while one writer commits. Each write of a group
        # has a savepoint, whose journal of the pages it changes is kept in
        # memory rather than written to a temporary file.
        _on_connect(
            engine,
            "PRAGMA foreign_keys = ON",
            "PRAGMA journal_mode = WAL",
            "PRAGMA temp_store = MEMORY",
        )


class SQLiteMemory(SQLite):
    """`sqlite://`: every connection would be a new, empty database, so all share one."""

    default_pool_size = None
    database_lives_in_engine = True

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            worker_threads=1,
            update_returning=True,
            one_writer_thread=False,
            short_reads_on_loop=False,
            search_index=SearchIndex.FULL_TEXT,
        )

    def engine_options(self) -> dict[str, Any]:
        return {"connect_args": {"check_same_thread": False}, "poolclass": StaticPool}

    def migration_lock(self, engine: Engine) -> AbstractContextManager[None]:
        # The database lives in this engine: no other process can migrate it.
        return nullcontext()

    def prepare(self, engine: Engine) -> None:
        _on_connect(engine, "PRAGMA foreign_keys = ON")


def _on_connect(engine: Engine, *statements: str) -> None:
    @sa.event.listens_for(engine, "connect")
    def run(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        for statement in statements:
            cursor.execute(statement)
        cursor.close()
