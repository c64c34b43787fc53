"""Alembic, driven from the service: the revisions this release knows, the
schema's revision, whether this release can serve it, and the upgrade to the newest.

A release serves the schema of its own newest revision, and a newer one
whose revisions all keep its code working: a newer release migrates first,
and the one before keeps serving until it is replaced. Each revision may
declare `serves_code_since`, the oldest revision whose code runs on the
schema it makes; one that declares nothing keeps the code its parent's
schema served (it only adds). `alembic/env.py` records the answer for each
revision it reaches in `schema_compatibility`, where a release that does not
know the revision can read it.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection, Engine

from alembic import command

logger = logging.getLogger(__name__)

# The Alembic scripts live beside the package: an editable install or the image's /app.
ALEMBIC_DIR = Path(__file__).resolve().parent.parent / "alembic"

COMPATIBILITY = sa.Table(
    "schema_compatibility",
    sa.MetaData(),
    sa.Column("revision", sa.String(32), primary_key=True),
    sa.Column("serves_code_since", sa.String(32), nullable=False),
)


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(ALEMBIC_DIR))
    return config


def head_revision() -> str | None:
    return Revisions.load().head


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


@dataclass(frozen=True)
class Revisions:
    """The revisions this release knows."""

    head: str | None
    known: frozenset[str]

    @classmethod
    def load(cls, config: Config | None = None) -> "Revisions":
        script = ScriptDirectory.from_config(config or alembic_config())
        known = frozenset(each.revision for each in script.walk_revisions())
        return cls(script.get_current_head(), known)

    def problem(self, connection: Connection, revision: str | None) -> str | None:
        """Why this release cannot serve the schema at `revision`; None if it can."""
        if revision == self.head:
            return None
        if revision is None or revision in self.known:
            found = "has no revision" if revision is None else f"is at revision {revision}"
            return (
                f"Database schema {found}, expected {self.head}: "
                "run `alembic upgrade head` or start with MIGRATE_ON_START=true"
            )
        since = serves_code_since(connection, revision)
        if since in self.known:
            return None
        needs = "" if since is None else f", which needs the code of revision {since} or newer"
        return (
            f"Database schema is at revision {revision}{needs}; this release's newest is "
            f"{self.head}: deploy the release that migrated it"
        )


def serves_code_since(connection: Connection, revision: str) -> str | None:
    """The oldest revision whose code serves the schema at `revision`, as
    recorded by the release that migrated it; None if none was."""
    if not sa.inspect(connection).has_table(COMPATIBILITY.name):
        return None
    return connection.execute(
        sa.select(COMPATIBILITY.c.serves_code_since).where(COMPATIBILITY.c.revision == revision)
    ).scalar()


def declared_serves_code_since(script: ScriptDirectory, revision: str) -> str:
    """What the revisions say of `revision`'s schema: the `serves_code_since`
    of the nearest of it and its ancestors that declares one, else the first."""
    oldest = revision
    for each in script.iterate_revisions(revision, "base"):
        declared: str | None = getattr(each.module, "serves_code_since", None)
        if declared is not None:
            return declared
        oldest = each.revision
    return oldest


def upgrade_to_head(engine: Engine) -> None:
    """Bring the schema to the newest revision; processes starting together
    migrate once. A schema a newer release migrated is left as it is, if this
    release serves it."""
    revisions = Revisions.load()
    with engine.connect() as connection:
        revision = current_revision(connection)
        ahead = revision is not None and revision not in revisions.known
        problem = revisions.problem(connection, revision) if ahead else None
    if ahead:
        if problem is not None:
            raise SchemaAhead(problem)
        logger.info(
            "The schema is at revision %s, newer than this release's %s, and serves it: "
            "not migrating",
            revision,
            revisions.head,
        )
        return
    config = alembic_config()
    # env.py takes the lock on its connection to this engine.
    config.attributes["connection"] = engine
    try:
        command.upgrade(config, "head")
    except CommandError as error:
        # Another process moved the schema past this release meanwhile.
        raise SchemaAhead(str(error)) from None


class SchemaAhead(Exception):
    """The schema is at a revision newer than this release can serve."""
