"""Alembic environment: the URL comes through the same code the service uses."""

from logging.config import fileConfig

from sqlalchemy.engine import Connection, Engine

from alembic import context
from service.db.backends import backend_for
from service.db.backends.galera import LOCK_TABLE
from service.db.engine import create_engine
from service.db.search import full_text_tables
from service.db.urls import DatabaseURLError, parse_database_url
from service.items.models import NAME_FULL_TEXT
from service.models import metadata
from service.settings import Settings

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = metadata


# Indexes and tables that exist on one backend only (made by their revision),
# and the Galera migration lock's table (made by the lock): not in the models,
# so left out when models and schema are compared.
BACKEND_ONLY_INDEXES = {"ix_items_name_folded_trgm", "ix_items_name_folded_grams"}
UNMODELLED_TABLES = {LOCK_TABLE} | full_text_tables(NAME_FULL_TEXT)


def include_object(
    item: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    if type_ == "table":
        return name not in UNMODELLED_TABLES
    return not (type_ == "index" and name in BACKEND_ONLY_INDEXES)


def run_migrations(connection: Connection) -> None:
    # Batch mode: SQLite cannot ALTER most things, so tables are copied there;
    # the other backends get plain ALTER statements.
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


def engine_from_settings() -> Engine:
    settings = Settings()
    try:
        return create_engine(parse_database_url(settings.database_url.get_secret_value()), settings)
    except DatabaseURLError as error:
        raise SystemExit(f"error: {error}") from None


def main() -> None:
    if context.is_offline_mode():
        engine = engine_from_settings()
        context.configure(url=engine.url, target_metadata=target_metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    # The service and the tests hand over their own engine (pytest-alembic calls it "connection").
    given: Engine | None = config.attributes.get("connection")
    engine = given or engine_from_settings()
    try:
        lock = backend_for(engine.url, Settings()).migration_lock
        with engine.connect() as connection, lock(connection):
            run_migrations(connection)
            connection.commit()
    finally:
        if given is None:
            engine.dispose()


main()
