"""Substring search answered from an index, where the backend has none of its own.

`LIKE '%text%'` can use no B-tree index: each such search reads the whole
table. PostgreSQL has pg_trgm for it, for texts of three characters or more;
for shorter ones, a GIN index of each text's characters and pairs of
characters (`ShortTextIndexed`). MySQL/MariaDB get a table of trigrams
instead (`TrigramIndex`), and SQLite FTS5's (`FullTextIndex`), both kept by
the database itself, by triggers their revisions make, in the same statement
as the rows they index: for every position of the searched column, the three characters
starting there (padded at the end). A row holding the text holds every
trigram of it, so a search walks the rows of the text's rarest trigram, in
key order, keeps those that hold its next rarest too (a lookup in the same
index), and checks each with the exact `LIKE`: the same rows, in the same
order, as a scan, read from a few index entries instead of the table (FTS5
walks the rows of all of them itself). Text of one or two characters is a
prefix of trigrams: the rows of a short text are those whose trigrams start
with it; a short text found in many rows is left to the scan, which meets
matches soon, in key order.
"""

import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal

from service.db.backends import SearchIndex
from service.db.search_plans import SCAN, FullTextMatch, Plan, TrigramRange, TrigramWalk

# Pads the trigrams at the end of a text, so that every position starts one.
# Any character does: a padded trigram can only add rows the exact check drops.
PAD = "\x01"
# A short text in more rows than this is common: the scan meets its rows soon.
COMMON = 1000
# A long text's trigrams are counted up to this: the rows of one past it cost a
# lookup each of the second trigram, which keeps the walk short; counting
# further cost more than it saved where the text is common.
TRIGRAM_COUNTED_UP_TO = 100
# How many of a long text's trigrams are counted to find the rarest.
TRIGRAMS_COUNTED = 8
# Counts choose how a search reads its rows, never which rows it finds: one
# kept this long spares the database a statement each time the same text is
# searched again, and one grown stale makes a search slower for as long at
# worst. Past COUNTS_KEPT of them, all are forgotten.
COUNTS_KEPT_SECONDS = 10.0
COUNTS_KEPT = 10_000


def trigrams(text: str) -> set[str]:
    """Every trigram a text holds, one starting at each of its positions (the
    triggers of revisions 0010 to 0012 write the same in SQL)."""
    return {text[start : start + 3].ljust(3, PAD) for start in range(len(text))}


class TrigramIndex:
    """The table of `(trigram, key)` rows that indexes a column (the one its
    triggers read).

    Its only index is its primary key, in the order searches read it. The
    database keeps it, by triggers (revisions 0010 and 0011): a write of the
    row is one statement, and a write made outside the service is indexed
    too. A row's trigrams are found again from its old text, so that a write
    touches only the trigrams it adds or removes; the table has no foreign
    key, which would cost every write a lookup more.
    """

    def __init__(self, table: sa.Table, *, key: str) -> None:
        self.table = table
        self.key = table.c[key]
        self.trigram = table.c.trigram
        # Built once, like the repository's statements.
        self._count_range = _capped_count(
            sa.and_(self.trigram >= sa.bindparam("low"), self.trigram < sa.bindparam("high")),
            COMMON,
        )
        # Counted lately, by database: a trigram, or a short text's range.
        self._counted = _CountsByDatabase()
        # Up to TRIGRAMS_COUNTED counts in one statement, each row (n, count).
        self._counts = [
            sa.union_all(
                *(
                    _capped_count(self.trigram == sa.bindparam(f"t{n}"), TRIGRAM_COUNTED_UP_TO, n)
                    for n in range(count)
                )
            )
            for count in range(1, TRIGRAMS_COUNTED + 1)
        ]

    def plan(self, connection: Connection, text: str) -> Plan:
        if not text:  # every row holds it
            return SCAN
        if len(text) >= 3:
            return self._rarest(connection, text)
        high = _after_every_extension_of(text)
        if high is None:
            return SCAN
        counts = self._counted.of(connection.engine)
        counted = counts.get(("range", text))
        if counted is None:
            _, counted = connection.execute(self._count_range, {"low": text, "high": high}).one()
            counts.keep(("range", text), counted)
        return SCAN if counted >= COMMON else TrigramRange(self, text, high)

    def _rarest(self, connection: Connection, text: str) -> Plan:
        """The plan through the text's rarest trigram and its next rarest."""
        counted = _spread_trigrams(text)
        if len(counted) == 1:
            return TrigramWalk(self, counted[0])
        kept = self._counted.of(connection.engine)
        earlier = [kept.get(trigram) for trigram in counted]
        missing = [n for n, count in enumerate(earlier) if count is None]
        fetched: dict[int, int] = {}
        if missing:
            statement = self._counts[len(missing) - 1]
            parameters = {f"t{number}": counted[n] for number, n in enumerate(missing)}
            for number, count in connection.execute(statement, parameters):
                fetched[missing[number]] = count
                kept.keep(counted[missing[number]], count)
        # In the text's order, which breaks ties below.
        counts = {n: fetched[n] if count is None else count for n, count in enumerate(earlier)}
        rarest = min(counts, key=counts.__getitem__)
        also = min(
            (n for n in counts if n != rarest),
            key=lambda n: (counts[n], -abs(n - rarest)),
        )
        return TrigramWalk(self, counted[rarest], counted[also])


class FullTextIndex:
    """The FTS5 table (SQLite, revision 0012) that indexes `column`. A text of
    three characters or more is looked up as its trigrams (up to
    TRIGRAMS_COUNTED of them), all held by each row found; a short one as the
    trigrams that start with it, from the table's vocabulary, any held by each
    row found, unless they are in COMMON rows or more, when the scan meets its
    rows sooner. FTS5 gives the rows in key order, each then checked with the
    exact `LIKE`: the same rows, in the same order, as the scan.
    """

    def __init__(self, index: str, *, column: str) -> None:
        # Not in the models' metadata: a revision makes it, on SQLite only.
        metadata = sa.MetaData()
        self.table = sa.Table(
            index, metadata, sa.Column("rowid", sa.Integer), sa.Column(column, sa.Text)
        )
        self.key = self.table.c.rowid
        # A table of detail=none is matched as a whole, not by column.
        self.matched: sa.ColumnElement[Any] = sa.literal_column(index)
        terms = sa.Table(
            f"{index}_terms", metadata, sa.Column("term", sa.Text), sa.Column("doc", sa.Integer)
        )
        self._terms = sa.select(terms.c.term, terms.c.doc).where(
            terms.c.term >= sa.bindparam("low"), terms.c.term < sa.bindparam("high")
        )
        # Short texts found common lately, by database.
        self._common = _CountsByDatabase()

    def plan(self, connection: Connection, text: str) -> Plan:
        if not text:  # every row holds it
            return SCAN
        if len(text) >= 3:
            return FullTextMatch(self, " AND ".join(map(_quoted, _spread_trigrams(text))))
        high = _after_every_extension_of(text)
        common = self._common.of(connection.engine)
        if high is None or common.get(text) is not None:
            return SCAN
        terms: list[str] = []
        rows = 0  # at most this many: a row may hold several of the terms
        result = connection.execute(self._terms, {"low": text, "high": high})
        try:
            for term, count in result:
                terms.append(term)
                rows += count
                if rows >= COMMON:
                    common.keep(text, rows)
                    return SCAN
        finally:
            result.close()
        # Without terms, no row holds the text: nor the padded text, then.
        return FullTextMatch(self, " OR ".join(map(_quoted, terms or [text.ljust(3, PAD)])))


SubstringIndex = TrigramIndex | FullTextIndex


@dataclass(frozen=True)
class SubstringSearch:
    """A list's filter `field`: the rows whose `column` holds the text asked
    for, both folded by `fold` (the column holds its row's text folded so), as
    `LIKE '%text%'` with `%`, `_` and `\\` literal. What answers it from an
    index is the server's own where it has one (PostgreSQL: pg_trgm, and for
    one or two characters the GIN index of `short_text_grams`), else
    `full_text` (SQLite) or `trigram_table` (MySQL/MariaDB), as the backend's
    capabilities say (`SearchIndex`)."""

    field: str
    column: sa.ColumnElement[str]
    fold: Callable[[str], str]
    short_text_grams: str
    trigram_table: TrigramIndex
    full_text: FullTextIndex

    def condition(self) -> sa.ColumnElement[bool]:
        """The exact match, and where the server has the index for it, the
        condition on a short text that lets the planner use it."""
        folded: sa.BindParameter[str] = sa.bindparam(f"{self.field}_folded")
        return sa.and_(
            self.column.like(sa.bindparam(self.field), escape="/"),
            ShortTextIndexed(self.column, folded, self.short_text_grams),
        )

    def parameters(self, text: str) -> tuple[str, dict[str, str]]:
        """The text folded, and what the condition binds for it."""
        folded = self.fold(text)
        escaped = folded.replace("/", "//").replace("%", "/%").replace("_", "/_")
        return folded, {self.field: f"%{escaped}%", f"{self.field}_folded": folded}

    def index(self, kind: SearchIndex) -> SubstringIndex | None:
        """The resource's index to read, None where the server has its own."""
        match kind:
            case SearchIndex.SERVER:
                return None
            case SearchIndex.FULL_TEXT:
                return self.full_text
            case SearchIndex.TRIGRAM_TABLE:
                return self.trigram_table


def _spread_trigrams(text: str) -> list[str]:
    """Up to TRIGRAMS_COUNTED of the trigrams inside `text` (three characters
    or more), spread over it, in the order they occur: of trigrams alike in
    count, those far apart in the text are the least likely to occur together
    elsewhere, and its rarest is most likely among them."""
    inside = list(dict.fromkeys(text[start : start + 3] for start in range(len(text) - 2)))
    return inside[:: max(1, len(inside) // TRIGRAMS_COUNTED)][:TRIGRAMS_COUNTED]


def _quoted(trigram: str) -> str:
    """A trigram as an FTS5 string, which the trigram tokenizer reads as one token."""
    return '"' + trigram.replace('"', '""') + '"'


class _CountsByDatabase:
    """`_Counts` for each database (engine) a process reaches, forgotten with it."""

    def __init__(self) -> None:
        self._counts: weakref.WeakKeyDictionary[Engine, _Counts] = weakref.WeakKeyDictionary()

    def of(self, engine: Engine) -> "_Counts":
        counts = self._counts.get(engine)
        if counts is None:
            counts = self._counts.setdefault(engine, _Counts())
        return counts


class _Counts:
    """Counts of one database, each forgotten COUNTS_KEPT_SECONDS after it was
    made. Shared by the threads that read: a lost race costs a count again."""

    def __init__(self) -> None:
        self._counts: dict[object, tuple[int, float]] = {}

    def get(self, key: object) -> int | None:
        kept = self._counts.get(key)
        if kept is None or kept[1] < time.monotonic():
            return None
        return kept[0]

    def keep(self, key: object, count: int) -> None:
        if len(self._counts) >= COUNTS_KEPT:
            self._counts.clear()
        self._counts[key] = (count, time.monotonic() + COUNTS_KEPT_SECONDS)


def _capped_count(condition: sa.ColumnElement[bool], cap: int, number: int = 0) -> sa.Select[Any]:
    """`(number, the rows that meet condition)`, counted up to `cap`: past
    that, all alike."""
    rows = sa.select(sa.literal(1)).where(condition).limit(cap).subquery()
    number_column: sa.ColumnElement[Any] = sa.literal_column(str(number))
    return sa.select(number_column, sa.func.count()).select_from(rows)


def _after_every_extension_of(text: str) -> str | None:
    """The least text above every text that starts with `text`, in code point
    order (which is UTF-8's byte order, the order SQLite's and MySQL's binary
    comparisons use); None if there is none."""
    last = ord(text[-1]) + 1
    if 0xD800 <= last <= 0xDFFF:  # surrogates are no characters
        last = 0xE000
    return None if last > 0x10FFFF else text[:-1] + chr(last)


class ShortTextIndexed(FunctionElement[bool]):
    """`ShortTextIndexed(column, text)`: on PostgreSQL, where `text` has one or
    two characters, that `column` holds it by the index of its characters and
    pairs of characters (`grams_function(column) @> ARRAY[text]`), a condition
    the planner can answer from that index; pg_trgm has no trigram to look up
    for such a text. Any other text, and on other backends: true. Only narrows
    what the exact match beside it checks.

    The text reaches the server as a literal (psycopg2 binds on the client), so
    the planner folds the length test away and sees the indexed expression."""

    type = sa.Boolean()
    name = "short_text_indexed"
    inherit_cache = True
    # The function's name is part of the statement, so of its cache key.
    _traverse_internals = [
        *FunctionElement._traverse_internals,
        ("grams_function", InternalTraversal.dp_string),
    ]

    def __init__(self, column: sa.ColumnElement[str], text: sa.BindParameter[str], grams: str):
        super().__init__(column, text)
        self.grams_function = grams


@compiles(ShortTextIndexed)
def _anywhere(element: ShortTextIndexed, compiler: SQLCompiler, **kw: Any) -> str:
    # Without a boolean type, SQLAlchemy compares a boolean condition with 1.
    return "true" if compiler.dialect.supports_native_boolean else "1"


@compiles(ShortTextIndexed, "postgresql")
def _on_postgresql(element: ShortTextIndexed, compiler: SQLCompiler, **kw: Any) -> str:
    column, text = (compiler.process(clause, **kw) for clause in element.clauses)
    return (
        f"(char_length({text}) NOT IN (1, 2)"
        f" OR {element.grams_function}({column}) @> ARRAY[{text}]::text[])"
    )
