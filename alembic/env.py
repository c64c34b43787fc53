"""Alembic environment: the URL comes through the same code the service uses.

Revisions run on a live database while the previous release serves it: each
in a transaction of its own, committed before the next begins, whose
statements wait for a lock no longer than the backend's lock timeout; a
revision that gave up is tried again, a few times, after a pause. A lock of
the backend's, on a connection of its own, keeps other processes from
migrating meanwhile.
"""

import logging
import random
import time
from logging.config import fileConfig
from typing import Any

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from alembic import context
from service.db.backends import Backend, backend_for
from service.db.backends.galera import LOCK_TABLE
from service.db.engine import create_engine
from service.db.online import MIGRATION_BACKEND
from service.db.urls import DatabaseURLError, parse_database_url
from service.migrations import COMPATIBILITY, declared_serves_code_since
from service.models import metadata
from service.settings import Settings, SettingsError, load_settings

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)
logger = logging.getLogger("alembic.env")

target_metadata = metadata

# Indexes and tables that exist on one backend only (made by their revision),
# the Galera migration lock's table (made by the lock) and what env.py keeps:
# not in the models, so left out when models and schema are compared.
BACKEND_ONLY_INDEXES = {"ix_items_name_folded_trgm", "ix_items_name_folded_grams"}
UNMODELLED_TABLES = {LOCK_TABLE, COMPATIBILITY.name} | {
    f"item_name_fts{suffix}"
    for suffix in ("", "_terms", "_data", "_idx", "_config", "_docsize", "_content")
}
# A revision that gave up waiting for a lock is tried again after a pause
# that grows up to this long, this many times at most: a few minutes in all.
REVISION_TRIES = 40
LONGEST_PAUSE_SECONDS = 5.0


def include_object(
    item: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    if type_ == "table":
        return name not in UNMODELLED_TABLES
    return not (type_ == "index" and name in BACKEND_ONLY_INDEXES)


def record_compatibility(*, ctx: Any, heads: set[str], **_: Any) -> None:
    """Record, in the revision's own transaction, the oldest revision whose
    code serves the schema now: a release that does not know the revision
    reads it there (`service.migrations`)."""
    script = ScriptDirectory.from_config(config)
    connection: Connection = ctx.connection
    for head in heads:
        since = declared_serves_code_since(script, head)
        connection.execute(sa.delete(COMPATIBILITY).where(COMPATIBILITY.c.revision == head))
        connection.execute(sa.insert(COMPATIBILITY).values(revision=head, serves_code_since=since))


def run_migrations(connection: Connection, backend: Backend) -> None:
    # Batch mode: SQLite cannot ALTER most things, so tables are copied there;
    # the other backends get plain ALTER statements.
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        include_object=include_object,
        transaction_per_migration=True,
        on_version_apply=record_compatibility,
    )
    for attempt in range(1, REVISION_TRIES + 1):
        try:
            context.run_migrations()
            return
        except DBAPIError as error:
            if attempt == REVISION_TRIES or not backend.lock_timed_out(error):
                raise
            pause = min(LONGEST_PAUSE_SECONDS, 0.1 * 2**attempt) * random.uniform(0.5, 1)
            logger.warning(
                "A revision waited too long for a lock (a long transaction holds it?); "
                "trying again in %.1f s (%d of %d)",
                pause,
                attempt,
                REVISION_TRIES,
            )
            time.sleep(pause)


def engine_from_settings(settings: Settings) -> Engine:
    try:
        return create_engine(parse_database_url(settings.database_url.get_secret_value()), settings)
    except DatabaseURLError as error:
        raise SystemExit(f"error: {error}") from None


def write_sql(settings: Settings) -> None:
    """`alembic upgrade --sql`: the SQL, written out, that the migration runs,
    each revision's transaction begun as online (the lock timeout), so that
    a linter reads what the server will."""
    engine = engine_from_settings(settings)
    backend = backend_for(engine.url, settings)
    context.configure(
        url=engine.url,
        target_metadata=target_metadata,
        literal_binds=True,
        transaction_per_migration=True,
    )
    impl = context.get_context().impl
    emit_begin = impl.emit_begin

    def begin_as_online() -> None:
        emit_begin()
        for statement in backend.migration_transaction_statements:
            impl.static_output(f"{statement}{impl.command_terminator}")

    impl.emit_begin = begin_as_online  # type: ignore[method-assign]
    context.run_migrations()


def main() -> None:
    try:
        settings = load_settings()
    except SettingsError as error:
        raise SystemExit(f"error: {error}") from None
    if context.is_offline_mode():
        write_sql(settings)
        return
    # The service and the tests hand over their own engine (pytest-alembic calls it "connection").
    given: Engine | None = config.attributes.get("connection")
    engine = given or engine_from_settings(settings)
    backend = backend_for(engine.url, settings)
    try:
        with engine.connect() as connection, backend.migration_lock(engine):
            connection = backend.start_migrating(connection)
            connection.info[MIGRATION_BACKEND] = backend
            sa.event.listen(connection, "begin", backend.begin_migration_transaction)
            with connection.begin():
                COMPATIBILITY.create(connection, checkfirst=True)
            run_migrations(connection, backend)
    finally:
        if given is None:
            engine.dispose()


main()
