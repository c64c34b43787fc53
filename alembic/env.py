"""Alembic environment: the URL comes through the same code the service uses."""

from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from service.database import (
    DatabaseURLError,
    create_engine,
    migration_lock,
    parse_database_url,
)
from service.models import Base
from service.settings import Settings

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def run_migrations(connection: Connection) -> None:
    # Batch mode: SQLite cannot ALTER most things, so tables are copied there;
    # the other backends get plain ALTER statements.
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        # The service (or a test) brings its own connection, already locked.
        run_migrations(connection)
        return
    settings = Settings()
    try:
        url = parse_database_url(settings.database_url.get_secret_value())
        if context.is_offline_mode():
            context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
            with context.begin_transaction():
                context.run_migrations()
            return
        engine = create_engine(url, settings)
    except DatabaseURLError as error:
        raise SystemExit(f"error: {error}") from None
    try:
        with engine.connect() as connection, migration_lock(connection):
            run_migrations(connection)
            connection.commit()
    finally:
        engine.dispose()


main()
