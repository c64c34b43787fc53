"""Column types that mean the same on SQLite, PostgreSQL and MySQL/MariaDB."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from service.db.backends import Kind, kind_of

# Each read form below is compiled for both of SQLAlchemy's names of MySQL's
# dialect, `mysql` and `mariadb`; `tests/test_configuration.py` compares them.


class UTCDateTime(sa.TypeDecorator[datetime]):
    """An aware UTC datetime, stored as a naive UTC timestamp with microseconds.

    No two backends store a time zone alike, and MySQL's DATETIME drops the
    fraction unless it is declared with `fsp=6`.
    """

    impl = sa.DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if kind_of(dialect) is Kind.MYSQL:
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
    """Reads a `UTCDateTime` column as the text `utc_text` gives.

    SQLite and MySQL format it as rows are read, cheaply, and Python does
    nothing per value. PostgreSQL's `to_char` costs the server several
    microseconds a value, and the server is the part that does not scale
    out: it sends the time as it always does, as text, and Python puts it
    in the form shown (`_utc_text_from_postgresql`). Select it only in the
    outermost query over the rows returned, so that rows an OFFSET skips are
    never formatted.
    """

    impl = sa.String
    cache_ok = True

    def column_expression(self, column: Any) -> Any:
        return _UTCTextOf(column)

    @staticmethod
    def from_driver(dialect: Dialect) -> Callable[[str], str] | None:
        """What turns the value the driver returns into the form shown; None: nothing."""
        return _utc_text_from_postgresql if kind_of(dialect) is Kind.POSTGRESQL else None


def _utc_text_from_postgresql(value: str) -> str:
    """`2026-01-31 12:00:00.12` (PostgreSQL leaves out trailing zeros of the
    fraction, and the point when all six are) as `2026-01-31T12:00:00.120000Z`."""
    if len(value) == 26:
        return value.replace(" ", "T", 1) + "Z"
    whole, _, fraction = value.partition(".")
    return f"{whole[:10]}T{whole[11:]}.{fraction:0<6}Z"


class _UTCTextOf(sa.sql.functions.FunctionElement[str]):
    type = sa.String()
    inherit_cache = True


@compiles(_UTCTextOf, "postgresql")
def _utc_text_postgresql(element: _UTCTextOf, compiler: SQLCompiler, **kw: Any) -> str:
    return _as_sent_postgresql(compiler.process(element.clauses, **kw))


def _as_sent_postgresql(column: str) -> str:
    # The text PostgreSQL sends for the value anyway (psycopg2 sets DateStyle
    # ISO), typed as text so that the driver builds no object from it.
    return f"CAST({column} AS TEXT)"


@compiles(_UTCTextOf, "mysql")
@compiles(_UTCTextOf, "mariadb")
def _utc_text_mysql(element: _UTCTextOf, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    text_format = "%Y-%m-%dT%H:%i:%s.%fZ"
    if compiler.dialect.paramstyle in ("format", "pyformat"):
        text_format = text_format.replace("%", "%%")
    return f"DATE_FORMAT({column}, '{text_format}')"


@compiles(_UTCTextOf, "sqlite")
def _utc_text_sqlite(element: _UTCTextOf, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLAlchemy stores a SQLite DATETIME as text, `YYYY-MM-DD HH:MM:SS.ffffff`,
    # always with six fractional digits; every write goes through UTCDateTime.
    column = compiler.process(element.clauses, **kw)
    return f"(replace({column}, ' ', 'T') || 'Z')"


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
        if kind_of(dialect) is Kind.MYSQL:
            return dialect.type_descriptor(mysql.VARBINARY(4 * self.length))
        return dialect.type_descriptor(sa.String(self.length))

    def process_bind_param(self, value: str | None, dialect: Dialect) -> Any:
        if value is not None and kind_of(dialect) is Kind.MYSQL:
            return value.encode("utf-8")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        if isinstance(value, bytes):
            return value.decode("utf-8")
        return None if value is None else str(value)


class ExactText(sa.TypeDecorator[str]):
    """Reads an `ExactString` column as text, converted by the database.

    On MySQL/MariaDB the bytes are converted by the server; elsewhere the
    column is text already. Either way, fetching rows calls no Python per value.
    """

    impl = sa.String
    cache_ok = True

    def column_expression(self, column: Any) -> Any:
        return _TextOf(column)


class _TextOf(sa.sql.functions.FunctionElement[str]):
    type = sa.String()
    inherit_cache = True


@compiles(_TextOf)
def _text(element: _TextOf, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(_TextOf, "mysql")
@compiles(_TextOf, "mariadb")
def _text_mysql(element: _TextOf, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return f"CONVERT({column} USING utf8mb4)"


class DecimalAsFloat(sa.TypeDecorator[float]):
    """Reads a decimal column as a float.

    The drivers return a decimal as Python's `Decimal`, built per value, for
    SQLAlchemy to turn into a float. SQLite and MySQL convert it as rows are
    read, cheaply, and the driver returns a float. PostgreSQL converts a
    numeric to a double through text, costing the server as much again as
    sending it: it sends the text, and Python reads the float from it.
    Exact for every amount of at most 15 significant digits, as every price
    and order total is.
    """

    impl = sa.Float
    cache_ok = True

    def column_expression(self, column: Any) -> Any:
        return _FloatOf(column)

    @staticmethod
    def from_driver(dialect: Dialect) -> Callable[[str], float] | None:
        """What turns the value the driver returns into the form shown; None: nothing."""
        return float if kind_of(dialect) is Kind.POSTGRESQL else None


class _DriverFloat(sa.TypeDecorator[float]):
    """As the driver returns it: SQLAlchemy converts nothing per value (where
    Python must, `from_driver` says so, and the repository does it)."""

    impl = sa.Float
    cache_ok = True

    def result_processor(self, dialect: Dialect, coltype: object) -> None:
        return None


class _FloatOf(sa.sql.functions.FunctionElement[float]):
    type = _DriverFloat()
    inherit_cache = True


@compiles(_FloatOf, "postgresql")
def _float_postgresql(element: _FloatOf, compiler: SQLCompiler, **kw: Any) -> str:
    return _as_sent_postgresql(compiler.process(element.clauses, **kw))


@compiles(_FloatOf, "mysql")
@compiles(_FloatOf, "mariadb")
def _float_mysql(element: _FloatOf, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS DOUBLE)"


@compiles(_FloatOf, "sqlite")
def _float_sqlite(element: _FloatOf, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS REAL)"


@dataclass(frozen=True)
class ReadForm:
    """How responses show a column: `type` has the database convert it as rows are
    read, `from_driver` says what Python must still do to the value the driver
    returns on a dialect (None: nothing), and `shown` converts a value the
    service holds (one it has just written) to the same form."""

    type: sa.types.TypeEngine[Any]
    shown: Callable[[Any], Any]
    from_driver: Callable[[Dialect], Callable[[Any], Any] | None] = lambda _dialect: None


def read_form(column_type: sa.types.TypeEngine[Any]) -> ReadForm | None:
    """The form responses show a column of this type in; None: as the driver returns it."""
    if isinstance(column_type, UTCDateTime):
        return ReadForm(UTCText(), utc_text, UTCText.from_driver)
    if isinstance(column_type, ExactString):
        return ReadForm(ExactText(), str)
    if isinstance(column_type, sa.Numeric) and not isinstance(column_type, sa.Float):
        return ReadForm(DecimalAsFloat(), float, DecimalAsFloat.from_driver)
    return None
