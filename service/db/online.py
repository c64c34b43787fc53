"""How a revision changes a live database while the previous release serves it.

`alembic/env.py` runs each revision in a transaction of its own, whose
statements wait briefly for their locks (the backend's lock timeout) before
the revision is tried again, so that requests queued behind a waiting DDL
statement wait no longer than that. A revision's own SQL is written in it;
these are the mechanics revisions share (docs/upgrades.md):

- `server()`: which kind of server the revision faces;
- `backfill` and `until_none_left`: statements run over the rows already
  stored a batch at a time, each batch committed before the next begins;
- `statements_commit_alone`: a block whose statements each commit alone;
- `create_index`, `drop_index`, `create_trigger`: DDL that lets writes go on
  and is kept when made already, so that a revision can run again;
- `briefly`: a DDL statement that needs its table to itself for a moment;
- `lint_exception`: a statement that breaks a rule of the migration linter
  on purpose, and why.
"""

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Protocol, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from alembic import op
from service.db.backends import Backend, Kind, kind_of
from service.db.backends.base import STATEMENTS_COMMIT_ALONE

logger = logging.getLogger("alembic.runtime.migration")

# Where `alembic/env.py` puts the migration's backend, in its connection's `info`.
MIGRATION_BACKEND = "migration_backend"
# Keys a backfill's batch covers: small enough that a batch commits in well
# under a second on every backend, so that a write waiting for it waits no longer.
BATCH_KEYS = 1000
# The highest key of a 32-bit id: what a backfill covers when written out as SQL (`--sql`).
LAST_KEY = 2**31 - 1
# A batch that gave up waiting for a lock is tried again, this many times at most.
BATCH_TRIES = 30


class Batch(Protocol):
    """Writes the rows whose key is above `low` and at most `high`."""

    def __call__(self, connection: Connection, low: int, high: int) -> object: ...


def server() -> Kind:
    """The kind of server the running revision faces."""
    return kind_of(op.get_context().dialect)


def backfill(
    batch: str | Batch,
    *,
    table: str = "items",
    key: str = "id",
    after: int = 0,
    up_to: int | None = None,
) -> None:
    """Run `batch` over the rows of `table` whose `key` is above `after` and
    at most `up_to` (the highest stored now, by default): BATCH_KEYS keys at
    a time, each batch in a transaction of its own. `batch` is a statement
    bound to `low` and `high` that writes the rows whose key is above `low`
    and at most `high`, or a function of a connection, `low` and `high` that
    does. The revision's transaction commits first: what it made (the trigger
    that keeps rows written from now on) is in place before the first batch.
    """
    context = op.get_context()
    if context.as_sql:
        if isinstance(batch, str):
            op.execute(sa.text(batch).bindparams(low=after, high=LAST_KEY))
        else:
            context.impl.static_output(
                f"-- {getattr(batch, '__name__', 'a backfill')}: online only"
            )
        return
    run = _statement_batch(batch) if isinstance(batch, str) else batch
    with _batches() as in_a_batch:
        if up_to is None:
            highest = sa.text(f"SELECT max({key}) FROM {table}")
            up_to = cast(int | None, in_a_batch(lambda c: c.execute(highest).scalar()))
        last = up_to or 0
        for low in range(after, last, BATCH_KEYS):
            in_a_batch(partial(run, low=low, high=min(low + BATCH_KEYS, last)))


def until_none_left(statement: str) -> None:
    """Run `statement`, which changes some rows (a batch's worth), in
    transactions of its own one after the other, until it changes none."""
    if op.get_context().as_sql:
        op.execute(statement)
        return
    changed = sa.text(statement)
    with _batches() as in_a_batch:
        while in_a_batch(lambda c: c.execute(changed).rowcount):
            pass


@contextmanager
def _batches() -> Iterator[Callable[[Callable[[Connection], object]], object]]:
    """What runs one batch, `run(connection)`, in a transaction of its own on
    a connection of the migration's engine, after the revision's transaction
    has committed; what `run` returns."""
    migrating = op.get_bind()
    backend: Backend = migrating.info[MIGRATION_BACKEND]
    if backend.database_lives_in_engine:
        # sqlite://: the database lives in this one connection, which no one
        # else writes to, and a second connection would be this one again.
        yield lambda run: run(migrating)
        return
    with statements_commit_alone(), migrating.engine.connect() as connection:
        yield partial(_batch, backend.start_migrating(connection), backend)


def _statement_batch(batch: str) -> Batch:
    statement = sa.text(batch)

    def run(connection: Connection, low: int, high: int) -> object:
        return connection.execute(statement, {"low": low, "high": high})

    return run


def _batch(connection: Connection, backend: Backend, run: Callable[[Connection], object]) -> object:
    """Run one batch in a transaction of its own; what `run` returns."""
    attempt = 1
    while True:
        try:
            with connection.begin():
                backend.begin_migration_transaction(connection)
                done = run(connection)
            time.sleep(backend.pause_after_batch_seconds)
            return done
        except DBAPIError as error:
            if attempt == BATCH_TRIES or not backend.lock_timed_out(error):
                raise
        logger.info("A batch waited too long for a lock; trying it again")
        time.sleep(random.uniform(0.05, 0.25) * attempt)
        attempt += 1


@contextmanager
def statements_commit_alone() -> Iterator[Connection]:
    """The revision's connection, on which each statement commits alone, in
    the block; the revision's transaction commits first, and a new one begins
    after the block (Alembic's `autocommit_block`)."""
    context = op.get_context()
    migrating = op.get_bind()
    if context.as_sql:
        with context.autocommit_block():
            yield migrating
        return
    # Set before the block begins its transaction, and gone before the
    # revision's next one begins, so that `begin_migration_transaction` knows each.
    migrating.info[STATEMENTS_COMMIT_ALONE] = True
    with context.autocommit_block():
        try:
            yield op.get_bind()
        finally:
            migrating.info.pop(STATEMENTS_COMMIT_ALONE, None)


def create_index(name: str, table: str, definition: str) -> None:
    """`CREATE INDEX name ON table definition`, built while writes go on:
    concurrently on PostgreSQL, in place without a lock on MySQL/MariaDB
    (SQLite's one writer waits for the build). An index already made is
    kept, so that the revision can run again."""
    match server():
        case Kind.POSTGRESQL:
            _create_index_concurrently(
                name, f"CREATE INDEX CONCURRENTLY {name} ON {table} {definition}"
            )
        case Kind.MYSQL:
            if not index_exists(table, name):
                op.execute(
                    f"CREATE INDEX {name} ON {table} {definition} ALGORITHM=INPLACE LOCK=NONE"
                )
        case Kind.SQLITE:
            op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} {definition}")


def lint_exception(rules: str, why: str) -> None:
    """Tell the migration linter (squawk, over `alembic upgrade head --sql`)
    that the next statement breaks `rules`, and why. Nothing, online."""
    context = op.get_context()
    if context.as_sql:
        # Right above the statement: squawk reads an ignore for the next line.
        context.output_buffer.write(f"-- {why}\n-- squawk-ignore {rules}\n")


def create_trigger(name: str, create: str) -> None:
    """Run `create`, which makes the trigger `name`, unless it exists already
    (MySQL before 8.0.29 knows no CREATE TRIGGER IF NOT EXISTS), waiting
    briefly for its table (`briefly`)."""
    if not trigger_exists(name):
        briefly(create)


def briefly(statement: str) -> None:
    """Run `statement`, a DDL statement that needs its table to itself for a
    moment (a trigger made or dropped), so that it waits for the table, and
    requests queued behind it wait, as briefly as the server allows: on
    MariaDB (not Galera) 0.5 s, where the lock timeout takes whole seconds."""
    if op.get_context().as_sql:
        op.execute(statement)
        return
    migrating = op.get_bind()
    backend: Backend = migrating.info[MIGRATION_BACKEND]
    op.execute(backend.waiting_briefly(migrating, statement))


def trigger_exists(name: str) -> bool:
    """Whether the trigger `name` exists (never, written out as SQL)."""
    if op.get_context().as_sql:
        return False
    match server():
        case Kind.SQLITE:
            query = "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name = :name"
        case Kind.MYSQL:
            query = (
                "SELECT count(*) FROM information_schema.TRIGGERS "
                "WHERE TRIGGER_SCHEMA = DATABASE() AND TRIGGER_NAME = :name"
            )
        case Kind.POSTGRESQL:
            query = "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal AND tgname = :name"
    return bool(op.get_bind().execute(sa.text(query), {"name": name}).scalar())


def index_exists(table: str, name: str) -> bool:
    """Whether `table` has the index `name` (never, written out as SQL)."""
    if op.get_context().as_sql:
        return False
    return any(index["name"] == name for index in sa.inspect(op.get_bind()).get_indexes(table))


def foreign_key_exists(table: str, name: str) -> bool:
    """Whether `table` has the foreign key `name` (never, written out as SQL)."""
    if op.get_context().as_sql:
        return False
    keys = sa.inspect(op.get_bind()).get_foreign_keys(table)
    return any(key["name"] == name for key in keys)


def _create_index_concurrently(name: str, create: str) -> None:
    """PostgreSQL's `create`, a `CREATE INDEX CONCURRENTLY`. A build that
    failed or was killed leaves its index INVALID: such an index is dropped
    and built again, and a valid one is kept."""
    with statements_commit_alone() as connection:
        if op.get_context().as_sql:
            op.execute(create)
            return
        valid = connection.execute(
            sa.text(
                "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE c.relname = :name AND pg_table_is_visible(c.oid)"
            ),
            {"name": name},
        ).scalar()
        if valid:
            return
        if valid is not None:
            op.execute(f"DROP INDEX CONCURRENTLY {name}")
        try:
            op.execute(create)
        except DBAPIError:
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            raise


def drop_index(name: str, table: str) -> None:
    """Drop an index, concurrently on PostgreSQL (writes go on)."""
    if server() is Kind.POSTGRESQL:
        with statements_commit_alone():
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
        return
    op.drop_index(name, table_name=table)
