"""The tables a copy moves, their columns in a canonical form, and digests of id ranges.

Every server reads a column in the same canonical form (`Form`): integers as
`int`, decimals as text with all their places (`19.90`), timestamps as the
UTC text `YYYY-MM-DD HH:MM:SS.ffffff`, text as `str`, NULL as `None`. A row
is a tuple of those, so a row read from any backend compares equal to the
same row read from any other.

A row is also written as one line of PostgreSQL's COPY text format
(`line_of`), which is what a digest hashes: a server that makes the lines
itself (`Server.line`) sends PostgreSQL the text it reads, and one that
hashes them itself (`Server.range_digests`) sends none.
"""

import enum
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from service.db.types import ExactString, UTCDateTime
from service.models import SERVED_TABLES, metadata

# Rows are copied, and compared, by ranges of this many ids: each range is
# written in one transaction, so a copy that was killed resumes after the
# last range it committed.
RANGE_IDS = 10_000

Value = int | str | None
Row = tuple[Value, ...]


class Form(enum.Enum):
    """How a column's values are read, the same from every server."""

    INTEGER = "integer"
    DECIMAL = "decimal"
    TIMESTAMP = "timestamp"
    TEXT = "text"


@dataclass(frozen=True)
class Column:
    name: str
    form: Form
    # Decimal places, for a DECIMAL.
    scale: int = 0
    # Stored as bytes on MySQL/MariaDB (`ExactString`).
    as_bytes: bool = False


@dataclass(frozen=True)
class Table:
    name: str
    key: str
    columns: tuple[Column, ...]

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]


def column_of(column: sa.Column[object]) -> Column:
    column_type = column.type
    if isinstance(column_type, UTCDateTime):
        return Column(column.name, Form.TIMESTAMP)
    if isinstance(column_type, sa.Integer):
        return Column(column.name, Form.INTEGER)
    if isinstance(column_type, sa.Numeric) and not isinstance(column_type, sa.Float):
        return Column(column.name, Form.DECIMAL, scale=column_type.scale or 0)
    if isinstance(column_type, ExactString):
        return Column(column.name, Form.TEXT, as_bytes=True)
    if isinstance(column_type, sa.String):
        return Column(column.name, Form.TEXT)
    raise TypeError(f"{column.table.name}.{column.name}: no canonical form for {column_type!r}")


def copied_tables() -> list[Table]:
    """The tables the service itself writes, parents before children (foreign-key
    order). What derives from them (search tables and indexes) is not copied:
    the target's own triggers and indexes build it from the rows."""
    tables = []
    for table in metadata.sorted_tables:
        if table.name not in SERVED_TABLES:
            continue
        (key,) = table.primary_key.columns
        # The key first: rows are grouped into id ranges by their first value.
        columns = [key, *(column for column in table.columns if column is not key)]
        tables.append(Table(table.name, key.name, tuple(map(column_of, columns))))
    return tables


def range_of(key: int) -> int:
    """The number of the id range that holds `key`."""
    return key // RANGE_IDS


def range_text(number: int) -> str:
    return f"ids {number * RANGE_IDS}-{(number + 1) * RANGE_IDS - 1}"


@dataclass(frozen=True)
class Digest:
    """A range's rows: how many, and the SHA-256 of their lines (`line_of`), in key
    order, as UTF-8: a hash each server can compute itself."""

    rows: int
    hash: str

    @classmethod
    def of(cls, rows: int, lines: bytes) -> "Digest":
        return cls(rows, hashlib.sha256(lines).hexdigest())


# COPY's text format: a backslash, tab, newline or carriage return in a text is
# escaped, so that a line says where each value ends and NULL (`\N`) is no text.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _escaped(text: str) -> str:
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        return text.translate(_COPY_ESCAPES)
    return text


def line_of(table: Table) -> Callable[[Row], str]:
    """What writes a canonical row as a line of COPY's text format."""
    # Integers become text; decimals and timestamps are text already, never escaped.
    shown = [
        _escaped if column.form is Form.TEXT else str if column.form is Form.INTEGER else None
        for column in table.columns
    ]

    def line(row: Row) -> str:
        fields = [
            "\\N" if value is None else value if show is None else show(value)  # type: ignore[arg-type]
            for value, show in zip(row, shown, strict=True)
        ]
        return "\t".join(fields) + "\n"  # type: ignore[arg-type]

    return line


@dataclass(frozen=True)
class Lines:
    """An id range's rows as lines of COPY's text format (`line_of`), in key order, UTF-8."""

    number: int
    rows: int
    text: bytes

    def digest(self) -> Digest:
        return Digest.of(self.rows, self.text)


def lines_by_range(keyed: Iterable[tuple[int, str]]) -> Iterable[Lines]:
    """Rows' `(key, line)` in key order, grouped by id range."""
    current: int | None = None
    lines: list[str] = []
    for key, line in keyed:
        number = range_of(key)
        if number != current:
            if lines:
                yield Lines(current, len(lines), "".join(lines).encode())  # type: ignore[arg-type]
            current, lines = number, []
        lines.append(line)
    if lines:
        yield Lines(current, len(lines), "".join(lines).encode())  # type: ignore[arg-type]


def by_range(rows: Iterable[Row]) -> Iterable[tuple[int, list[Row]]]:
    """Rows in key order (the key first), grouped by id range."""
    current: int | None = None
    batch: list[Row] = []
    for row in rows:
        number = range_of(row[0])  # type: ignore[arg-type]
        if number != current:
            if batch:
                yield current, batch  # type: ignore[misc]
            current, batch = number, []
        batch.append(row)
    if batch:
        yield current, batch  # type: ignore[misc]
