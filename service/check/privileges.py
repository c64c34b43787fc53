"""What migrations and the service do to a table, tried for real by the privilege checks."""

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from service.check.findings import Finding
from service.db.backends import Backend


def migration_steps(name: str, schema: str | None = None) -> list[tuple[str, str]]:
    """What migrations and the service do to a table, one statement each."""
    table = name if schema is None else f"{schema}.{name}"
    return [
        ("CREATE TABLE", f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, sku VARCHAR(64))"),
        ("CREATE INDEX", f"CREATE INDEX ix_{name} ON {table} (sku)"),
        ("ALTER TABLE", f"ALTER TABLE {table} ADD COLUMN note VARCHAR(10)"),
        ("INSERT", f"INSERT INTO {table} (id, sku) VALUES (1, 'a')"),
        ("UPDATE", f"UPDATE {table} SET note = 'b' WHERE id = 1"),
        ("SELECT", f"SELECT note FROM {table}"),
        ("DELETE", f"DELETE FROM {table} WHERE id = 1"),
        ("DROP TABLE", f"DROP TABLE {table}"),
    ]


def first_failing_step(
    connection: Connection, steps: list[tuple[str, str]]
) -> tuple[str, sa.exc.DBAPIError] | None:
    for label, statement in steps:
        try:
            connection.exec_driver_sql(statement)
        except sa.exc.DBAPIError as error:
            return label, error
    return None


def for_migrations(finding: Finding, backend: Backend) -> Finding:
    """A problem only migrations meet: a warning when the service does not migrate."""
    if finding.status != "problem" or backend.settings.migrate_on_start:
        return finding
    return Finding(
        "warning",
        f"{finding.found} (MIGRATE_ON_START is off: only the account that migrates needs this)",
        "run this check with the URL of the account that runs `alembic upgrade head`",
    )
