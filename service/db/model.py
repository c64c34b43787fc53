"""The declarative base every resource's models share."""

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase

# Constraint and index names fixed here come out the same on every backend:
# migrations can name what they drop, and errors name the constraint they broke.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Every table: 4-byte characters, and comparisons that see case and accents;
# under both names SQLAlchemy gives MySQL's dialect (mysql://, mariadb://).
TEXT_OPTIONS: dict[str, Any] = {
    f"{dialect}_{option}": value
    for dialect in ("mysql", "mariadb")
    for option, value in (("charset", "utf8mb4"), ("collate", "utf8mb4_bin"))
}
# Every table with an id of its own: ids never reused after a delete, as on
# PostgreSQL and MySQL.
TABLE_OPTIONS = TEXT_OPTIONS | {"sqlite_autoincrement": True}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
