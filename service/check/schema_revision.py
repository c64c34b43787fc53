"""The schema's Alembic revision against the newest this version of the service knows."""

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from service.check.findings import Finding
from service.db.backends import Backend
from service.migrations import Revisions, alembic_config, current_revision, head_revision


def schema_revision(connection: Connection, backend: Backend) -> Finding:
    migrate_on_start = backend.settings.migrate_on_start
    current = current_revision(connection)
    head = head_revision()
    if current is None:
        if sa.inspect(connection).has_table("items"):
            return Finding(
                "problem",
                "an items table exists without an Alembic revision: not made by these migrations",
                "point DATABASE_URL at another database; if the table matches a revision, "
                "`alembic stamp <revision>` adopts it",
            )
        return schema_not_at_head("empty: no tables yet", migrate_on_start)
    if current == head:
        return Finding("ok", f"at the newest revision, {head}")
    revisions = Revisions.load()
    if current not in revisions.known:
        problem = revisions.problem(connection, current)
        if problem is None:
            return Finding(
                "ok",
                f"at revision {current}, newer than this version's {head}: a newer version "
                "migrated it, and this one runs on it",
            )
        return Finding(
            "problem",
            f"at revision {current}, which this version of the service cannot serve "
            f"(its newest is {head}): a newer version migrated it",
            "deploy that newer version, or downgrade the schema with it first "
            f"(`alembic downgrade {head}` from its checkout)",
        )
    script = ScriptDirectory.from_config(alembic_config())
    behind = len(list(script.iterate_revisions(head, current)))
    return schema_not_at_head(
        f"behind: at revision {current}, {behind} behind the newest, {head}", migrate_on_start
    )


def schema_not_at_head(found: str, migrate_on_start: bool) -> Finding:
    if migrate_on_start:
        return Finding(
            "warning",
            f"{found} (the service migrates it when it starts)",
            "run `alembic upgrade head`, or start the service",
        )
    return Finding(
        "problem",
        f"{found}, and MIGRATE_ON_START is off: /health/ready and every request answer 503",
        "run `alembic upgrade head` before starting the service",
    )
