"""Values the service promises to keep exactly, stored and read back through its own
column types, in a temporary table."""

import warnings
from datetime import UTC, datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from service.check.findings import Finding, error_message, is_read_only_error, scratch_name
from service.db.backends import Backend
from service.db.model import TEXT_OPTIONS
from service.db.types import ExactString, UTCDateTime

EMOJI_NAME = "Pizza \N{SLICE OF PIZZA}, clef \N{MUSICAL SYMBOL G CLEF}"
TOP_PRICE = Decimal("999999999.99")
WITH_MICROSECONDS = datetime(2026, 1, 31, 23, 59, 59, 999999, tzinfo=UTC)
SKUS = ("ABC", "ABC ", "abc")


def round_trip_table() -> sa.Table:
    return sa.Table(
        scratch_name(),
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(255)),
        sa.Column("price", sa.Numeric(12, 2)),
        sa.Column("at", UTCDateTime()),
        sa.Column("sku", ExactString(64), unique=True),
        prefixes=["TEMPORARY"],
        **TEXT_OPTIONS,
    )


def round_trip(connection: Connection, backend: Backend) -> Finding:
    table = round_trip_table()
    try:
        table.create(connection)
    except sa.exc.DBAPIError as error:
        if is_read_only_error(error):
            return Finding("warning", "not run: the server is read-only")
        return Finding(
            "warning",
            f"not run: cannot create a temporary table: {error_message(error)}",
            "allow temporary tables (PostgreSQL: GRANT TEMPORARY ON DATABASE; MySQL/MariaDB: "
            "GRANT CREATE TEMPORARY TABLES); only this check uses them",
        )
    try:
        with warnings.catch_warnings():
            # SQLite has no decimal type: SQLAlchemy converts through float, exact
            # for prices (at most 11 significant digits), and says so.
            warnings.filterwarnings("ignore", "Dialect sqlite", sa.exc.SAWarning)
            return values_kept(connection, table)
    finally:
        # After a failed statement PostgreSQL refuses every other one until the
        # transaction ends (which drops the table there, hence IF EXISTS).
        connection.rollback()
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS {table.name}")


def values_kept(connection: Connection, table: sa.Table) -> Finding:
    sent = [
        {"id": n, "name": EMOJI_NAME, "price": TOP_PRICE, "at": WITH_MICROSECONDS, "sku": sku}
        for n, sku in enumerate(SKUS)
    ]
    for row in sent:
        try:
            connection.execute(table.insert(), row)
        except sa.exc.DBAPIError as error:
            refused = (
                f"sku {row['sku']!r} beside {SKUS[0]!r} under a unique index"
                if isinstance(error, sa.exc.IntegrityError)
                else "emoji, 999999999.99 and microseconds"
            )
            return Finding(
                "problem",
                f"could not store {refused}: {error_message(error)}",
                "create the database with UTF-8 text (MySQL: utf8mb4) and use the service's "
                "migrations",
            )
    stored = connection.execute(sa.select(table).order_by(table.c.id)).mappings().all()
    changed = [
        f"{column} {value!r} came back as {got[column]!r}"
        for row, got in zip(sent, stored, strict=True)
        for column, value in row.items()
        if got[column] != value
    ]
    if changed:
        return Finding(
            "problem",
            "values changed: " + "; ".join(dict.fromkeys(changed)),
            "create the database with UTF-8 text (MySQL: utf8mb4) and use the service's migrations",
        )
    return Finding(
        "ok",
        "emoji, 999999999.99 as NUMERIC(12,2), microseconds, and skus 'ABC', 'ABC ', 'abc' "
        "as three values under a unique index: all kept exactly",
    )
