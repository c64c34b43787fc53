"""How a search reads its rows: each plan gives a list's query the rows it
reads from, the conditions it adds and the order of the page (`Narrowing`),
so that the repository asks the plan and never which kind it is. Which plan
answers a search is chosen by the index (`service.db.search`)."""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa

if TYPE_CHECKING:
    from service.db.search import FullTextIndex, TrigramIndex


@dataclass(frozen=True)
class Narrowing:
    """What a search plan makes of a list's query: the rows it reads from,
    the conditions it adds to the filters', and the column the page is
    ordered by."""

    source: sa.FromClause
    conditions: tuple[sa.ColumnElement[bool], ...]
    order: sa.ColumnElement[Any]


class Plan(Protocol):
    """How one search reads its rows. The list query of each kind of plan is
    built once (its values are bound parameters): `narrow` shapes it,
    `parameters` gives the values."""

    @property
    def kind(self) -> str: ...

    def parameters(self) -> dict[str, str]: ...

    def narrow(self, table: sa.Table, key: sa.ColumnElement[Any], after: bool) -> Narrowing:
        """The narrowing for `table`, whose key is `key`; `after`: the list
        starts after a key (`after_id`), which the plan's rows can say too."""
        ...


@dataclass(frozen=True)
class Scan:
    """Every row, in key order, each checked with the exact `LIKE`."""

    kind = "scan"

    def parameters(self) -> dict[str, str]:
        return {}

    def narrow(self, table: sa.Table, key: sa.ColumnElement[Any], after: bool) -> Narrowing:
        return Narrowing(table, (), key)


@dataclass(frozen=True)
class TrigramWalk:
    """The rows of one trigram of the table `index`, in key order, and of
    those, the rows that hold a second (`also`) where the text has one: a
    primary-key lookup each, cheaper than reading the row to check it."""

    index: "TrigramIndex"
    trigram: str
    also: str | None = None

    @property
    def kind(self) -> str:
        return "trigram" if self.also is None else "trigrams"

    def parameters(self) -> dict[str, str]:
        return {"trigram": self.trigram} | ({} if self.also is None else {"also": self.also})

    def narrow(self, table: sa.Table, key: sa.ColumnElement[Any], after: bool) -> Narrowing:
        index = self.index
        source: sa.FromClause = index.table
        walked = index.key
        conditions: list[sa.ColumnElement[bool]] = [index.trigram == sa.bindparam("trigram")]
        if self.also is not None:
            # The row is joined through the second, so that it is read after.
            also = index.table.alias("also")
            walked = also.c[index.key.key]
            on = sa.and_(also.c.trigram == sa.bindparam("also"), walked == index.key)
            source = source.join(also, on)
        source = source.join(table, walked == key)
        if after:
            conditions.append(index.key > sa.bindparam("after_id"))
        return Narrowing(source, tuple(conditions), index.key)


@dataclass(frozen=True)
class TrigramRange:
    """The rows that hold any trigram of the table `index` from `low` up to
    `high`: those that start with a short text."""

    index: "TrigramIndex"
    low: str
    high: str
    kind = "prefix"

    def parameters(self) -> dict[str, str]:
        return {"low": self.low, "high": self.high}

    def narrow(self, table: sa.Table, key: sa.ColumnElement[Any], after: bool) -> Narrowing:
        index = self.index
        within = sa.and_(index.trigram >= sa.bindparam("low"), index.trigram < sa.bindparam("high"))
        return Narrowing(table, (key.in_(sa.select(index.key).where(within)),), key)


@dataclass(frozen=True)
class FullTextMatch:
    """The rows an FTS5 query (`match`) of the table `index` finds, in key order."""

    index: "FullTextIndex"
    match: str
    kind = "match"

    def parameters(self) -> dict[str, str]:
        return {"match": self.match}

    def narrow(self, table: sa.Table, key: sa.ColumnElement[Any], after: bool) -> Narrowing:
        index = self.index
        conditions: list[sa.ColumnElement[bool]] = [
            index.matched.op("MATCH")(sa.bindparam("match"))
        ]
        if after:
            conditions.append(index.key > sa.bindparam("after_id"))
        return Narrowing(index.table.join(table, index.key == key), tuple(conditions), index.key)


SCAN = Scan()
