"""What a check answers, and the small helpers the checks share."""

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from service.db.backends import Backend, mysql_errors, postgresql_errors

Status = Literal["ok", "warning", "problem"]
SEVERITY: dict[Status, int] = {"ok": 0, "warning": 1, "problem": 2}


@dataclass(frozen=True)
class Finding:
    status: Status
    found: str
    fix: str | None = None


@dataclass(frozen=True)
class Result:
    """A finding under the name of the check that made it: one line of the report."""

    name: str
    status: Status
    found: str
    fix: str | None = None


# The database on `connection`, as the service would use it (the Backend carries
# its URL and settings); None where the check does not apply.
Check = Callable[[Connection, Backend], Finding | None]


def combined(findings: Iterable[Finding]) -> Finding:
    """One finding for several: the worst status, every finding, every fix."""
    findings = list(findings)
    worst = max((finding.status for finding in findings), key=SEVERITY.__getitem__)
    fixes = dict.fromkeys(finding.fix for finding in findings if finding.fix)
    return Finding(
        worst, "; ".join(finding.found for finding in findings), "; ".join(fixes) or None
    )


def error_message(error: sa.exc.DBAPIError) -> str:
    """The driver's message, first line only (PostgreSQL adds the statement below it)."""
    original = error.orig
    arguments: tuple[Any, ...] = getattr(original, "args", ())
    # mysqlclient: (code, message).
    if len(arguments) == 2 and isinstance(arguments[0], int):
        text = str(arguments[1])
    else:
        text = str(original)
    lines = text.strip().splitlines()
    return lines[0] if lines else type(original).__name__


def is_read_only_error(error: sa.exc.DBAPIError) -> bool:
    code = getattr(error.orig, "pgcode", None) or getattr(error.orig, "args", (None,))[0]
    return code in (
        postgresql_errors.READ_ONLY_SQL_TRANSACTION,
        mysql_errors.OPTION_PREVENTS_STATEMENT,
        mysql_errors.CANT_EXECUTE_IN_READ_ONLY_TRANSACTION,
    )


def scalar(connection: Connection, sql: str, **parameters: object) -> Any:
    return connection.execute(sa.text(sql), parameters).scalar()


def shown(connection: Connection, statement: str, pattern: str) -> dict[str, str]:
    """MySQL's `SHOW ... LIKE :pattern` as a dict of name to value."""
    rows = connection.execute(sa.text(f"{statement} LIKE :pattern"), {"pattern": pattern})
    return {str(row[0]): str(row[1]) for row in rows}


def quoted(connection: Connection, name: str) -> str:
    return connection.dialect.identifier_preparer.quote(name)


def scratch_name() -> str:
    return f"items_check_{uuid.uuid4().hex[:12]}"
