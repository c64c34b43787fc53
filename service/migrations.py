"""Alembic, driven from the service: the schema's newest revision and the upgrade to it."""

from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from alembic import command

# The Alembic scripts live beside the package: an editable install or the image's /app.
ALEMBIC_DIR = Path(__file__).resolve().parent.parent / "alembic"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(ALEMBIC_DIR))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade_to_head(engine: Engine) -> None:
    """Bring the schema to the newest revision; processes starting together migrate once."""
    config = alembic_config()
    # env.py takes the lock on its connection to this engine.
    config.attributes["connection"] = engine
    command.upgrade(config, "head")
