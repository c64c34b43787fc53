"""Column types that mean the same on SQLite, PostgreSQL and MySQL/MariaDB."""

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect

_MYSQL = ("mysql", "mariadb")


class UTCDateTime(sa.TypeDecorator[datetime]):
    """An aware UTC datetime, stored as a naive UTC timestamp with microseconds.

    No two backends store a time zone alike, and MySQL's DATETIME drops the
    fraction unless it is declared with `fsp=6`.
    """

    impl = sa.DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name in _MYSQL:
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(sa.DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def utc_text(value: datetime) -> str:
    """A UTC time as responses show it: `2026-01-31T12:00:00.000000Z`, six fractional digits."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds") + "Z"


class UTCText(sa.TypeDecorator[str]):
    """Reads a `UTCDateTime` column straight as `utc_text`, for responses.

    One conversion per value as rows are fetched, instead of an aware datetime
    that the JSON encoder would call back into Python to format.
    """

    impl = sa.DateTime
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> str | None:
        return None if value is None else utc_text(value)


class ExactString(sa.TypeDecorator[str]):
    """A string compared exactly: case, accents and trailing spaces all count.

    MySQL and MariaDB collations ignore trailing spaces in comparisons and
    unique indexes (PAD SPACE), `utf8mb4_bin` included, and the NO PAD
    collations differ between the two servers; so there the text is stored as
    UTF-8 in a VARBINARY of four bytes per character.
    """

    impl = sa.String
    cache_ok = True

    def __init__(self, length: int) -> None:
        super().__init__(length)
        self.length = length

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name in _MYSQL:
            return dialect.type_descriptor(mysql.VARBINARY(4 * self.length))
        return dialect.type_descriptor(sa.String(self.length))

    def process_bind_param(self, value: str | None, dialect: Dialect) -> Any:
        if value is not None and dialect.name in _MYSQL:
            return value.encode("utf-8")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        if isinstance(value, bytes):
            return value.decode("utf-8")
        return None if value is None else str(value)
