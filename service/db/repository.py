"""A table as a resource serves it: rows read by key and by page, written, and rendered as JSON.

A resource declares its table, the schema its responses show (a TypedDict:
its keys are the columns read, in order) and the filters its lists take; the
repository builds every statement once and decides how each runs, asking the
backend's capabilities, never its name. Rows travel as plain dicts of the
columns a response shows, read in the form responses show them (`read_form`):
converted by the database where that is cheap for it, else as rows become
dicts, and rendered by pydantic's Rust encoder without validating them again.
No ORM session: these are single Core statements, and a session only adds
work per request.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from pydantic import TypeAdapter
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.exc import DBAPIError

from service.db.backends import Capabilities, ErrorKind
from service.db.errors import ConstraintViolated, RowNotFound, violation
from service.db.runtime import Database
from service.db.search import SubstringIndex, SubstringSearch
from service.db.search_plans import SCAN, Plan
from service.db.types import read_form

# Ids are 32-bit on every backend; a larger one cannot exist.
MAX_ID = 2**31 - 1

Row = dict[str, Any]
T = TypeVar("T")


@dataclass(frozen=True)
class Filter:
    """A condition a list can have. Its bound parameter is named like the query
    field it comes from."""

    condition: sa.ColumnElement[bool]


class PageRequest(Protocol):
    """What a list asks for: its page's bounds, and an attribute for every
    filter the repository declares (`service.fields.PageQuery` is one)."""

    @property
    def limit(self) -> int: ...

    @property
    def after_id(self) -> int | None: ...


class Repository:
    """One table's reads and writes, for any resource."""

    def __init__(
        self,
        table: sa.Table,
        read: type[Mapping[str, Any]],
        *,
        not_found: str,
        filters: Mapping[str, Filter] | None = None,
        stored: Callable[[Row], Row] | None = None,
        search: SubstringSearch | None = None,
    ) -> None:
        """`read` is the TypedDict responses show; `not_found` the 404's detail;
        `stored`, if given, adds to the values written those derived from them;
        `search`, if given, is a filter for a substring of a column, answered
        from an index."""
        self.table = table
        self._search = search
        self.not_found = not_found
        self.keys = tuple(read.__annotations__)
        (self._id,) = table.primary_key.columns
        self._forms = {
            key: form for key in self.keys if (form := read_form(table.c[key].type)) is not None
        }
        self._shown = {key: form.shown for key, form in self._forms.items()}
        self._read_types = {key: form.type for key, form in self._forms.items()}
        self._conversions: dict[str, list[tuple[str, Callable[[Any], Any]]]] = {}
        self._filters = {"after_id": Filter(self._id > sa.bindparam("after_id"))} | dict(
            filters or {}
        )
        if search is not None:
            self._filters[search.field] = Filter(search.condition())
        self._stored = stored
        # Python-side defaults (`default=utcnow`, `onupdate=utcnow`) are computed
        # here, not by SQLAlchemy, so that the row written is known without reading it back.
        self._on_insert = _python_defaults(table, "default")
        self._on_update = _python_defaults(table, "onupdate")
        self._one = TypeAdapter(read)
        self._many = TypeAdapter(list[read])  # type: ignore[valid-type]
        # Built once: SQLAlchemy then reuses their cache keys and compiled forms.
        self._select_many = sa.select(*self._read_columns(table)).where(
            self._id.in_(sa.bindparam("keys", expanding=True))
        )
        self._insert = sa.insert(table)
        self._update = sa.update(table).where(self._id == sa.bindparam("_key"))
        self._update_returning = self._update.returning(*self._read_columns(table))
        self._delete = sa.delete(table).where(self._id == sa.bindparam("_key"))
        self._pages: dict[tuple[frozenset[str], bool, str], sa.Select[Any]] = {}

    # What routes call.

    async def get(self, database: Database, key: int) -> Row:
        row = await self._get(database, key)
        if row is None:
            raise RowNotFound(self.not_found)
        return row

    async def get_page(self, database: Database, query: PageRequest) -> list[Row]:
        """A page of rows in key order, filtered as `query` says."""
        return await database.run(self.read_page, query, self._index(database))

    async def create(
        self, database: Database, values: Row, write: Callable[[Connection, Row], Row] | None = None
    ) -> Row:
        """Insert a row. `write(connection, values)`, if given, replaces `insert`
        for a resource whose inserts need more (a read first, values derived
        from it); it runs as one write all the same."""
        return await self._write(database, values, False, write or self.insert, values)

    async def update(self, database: Database, key: int, changes: Row) -> Row:
        """Set the columns in `changes` (PUT sends every field, PATCH those sent)
        and return the row as stored."""
        if not changes:
            return await self.get(database, key)
        row = None
        if 0 < key <= MAX_ID:
            if database.capabilities.update_returning:
                row = await self._write(
                    database, changes, False, self.update_returning, key, changes
                )
            elif await self._write(database, changes, False, self.update_fields, key, changes):
                # No RETURNING: read the row back together with the other reads of the moment.
                row = await self._get(database, key)
        if row is None:
            raise RowNotFound(self.not_found)
        return row

    async def delete(self, database: Database, key: int) -> None:
        deleted = 0 < key <= MAX_ID and await self._write(
            database, {self._id.key: key}, True, self.delete_row, key
        )
        if not deleted:
            raise RowNotFound(self.not_found)

    def missing_reference(self, column: sa.Column[Any], values: Row) -> ConstraintViolated:
        """What a write whose `column` refers to no row breaks: that column's
        foreign key. For writes that look the row up first (`create`'s `write`)."""
        (foreign_key,) = column.foreign_keys
        assert foreign_key.constraint is not None
        return ConstraintViolated(str(foreign_key.constraint.name), referenced=False, values=values)

    def json(self, row: Row) -> bytes:
        """The row as a response body, encoded in Rust."""
        return self._one.dump_json(row)

    def json_list(self, rows: list[Row]) -> bytes:
        return self._many.dump_json(rows)

    # What runs on a database thread.

    def read_many(self, engine: Engine, keys: list[int]) -> dict[int, Row]:
        """The rows with these keys that exist, by key."""
        with engine.connect() as connection:
            rows = connection.execute(self._select_many, {"keys": keys}).all()
        return {row[self._id.key]: row for row in self._as_read(rows, engine.dialect)}

    def read_page(
        self, engine: Engine, query: PageRequest, index: SubstringIndex | None = None
    ) -> list[Row]:
        parameters: Row = {"limit": query.limit}
        used = []
        searched = None
        for name in self._filters:
            value = getattr(query, name)
            if value is None:
                continue
            used.append(name)
            if self._search is not None and name == self._search.field:
                searched, values = self._search.parameters(value)
                parameters |= values
            else:
                parameters[name] = value
        filters = frozenset(used)
        skip: int = getattr(query, "skip", 0)
        if skip:
            parameters["skip"] = skip
        with engine.connect() as connection:
            plan: Plan = SCAN
            if index is not None and searched is not None:
                plan = index.plan(connection, searched)
                parameters |= plan.parameters()
            statement = self._page_statement(filters, skip > 0, plan)
            rows = connection.execute(statement, parameters).all()
        return self._as_read(rows, engine.dialect)

    def insert(self, connection: Connection, values: Row) -> Row:
        """Insert a row and return it as reads show it, without reading it back."""
        written = _with_defaults(values, self._on_insert)
        stored = self._storing(written)
        (key,) = connection.execute(self._insert, stored).inserted_primary_key  # type: ignore[misc]
        return self._as_shown({self._id.key: key} | written)

    def update_returning(self, connection: Connection, key: int, changes: Row) -> Row | None:
        """Update and return the row as stored, in one statement; None if there is no row."""
        row = connection.execute(self._update_returning, self._updating(key, changes)).first()
        if row is None:
            return None
        (read,) = self._as_read([row], connection.dialect)
        return read

    def update_fields(self, connection: Connection, key: int, changes: Row) -> bool:
        """Update without reading the row back; False if there is no row."""
        # Rows matched, on MySQL too: SQLAlchemy connects with CLIENT_FOUND_ROWS.
        return connection.execute(self._update, self._updating(key, changes)).rowcount > 0

    def delete_row(self, connection: Connection, key: int) -> bool:
        return connection.execute(self._delete, {"_key": key}).rowcount > 0

    def _index(self, database: Database) -> SubstringIndex | None:
        return self.index_for(database.capabilities)

    def index_for(self, capabilities: Capabilities) -> SubstringIndex | None:
        """The resource's index to read for its substring filter; None where
        the server has one of its own."""
        if self._search is None:
            return None
        return self._search.index(capabilities.search_index)

    # The parts.

    async def _get(self, database: Database, key: int) -> Row | None:
        if not 0 < key <= MAX_ID:
            return None
        return await database.batched_reads(self.read_many).get(key)

    async def _write(
        self,
        database: Database,
        values: Row,
        deleting: bool,
        call: Callable[..., T],
        *args: Any,
    ) -> T:
        try:
            return await database.write(call, *args)
        except DBAPIError as error:
            if database.error_kind(error) is not ErrorKind.CONSTRAINT:
                raise
            broken = database.backend.broken_constraint(error)
            if broken is None:
                raise
            raise violation(self.table, broken, values, deleting=deleting) from error

    def _read_columns(self, source: sa.FromClause) -> list[sa.ColumnElement[Any]]:
        return [
            sa.type_coerce(source.c[key], self._read_types[key]).label(key)
            if key in self._read_types
            else source.c[key]
            for key in self.keys
        ]

    def _page_statement(self, filters: frozenset[str], skip: bool, plan: Plan) -> sa.Select[Any]:
        """The list query for a set of filters and a kind of search plan, built
        once: building a select costs more Python than running it."""
        shape = (filters, skip, plan.kind)
        statement = self._pages.get(shape)
        if statement is None:
            statement = self._pages[shape] = self._build_page(filters, skip, plan)
        return statement

    def _build_page(self, filters: frozenset[str], skip: bool, plan: Plan) -> sa.Select[Any]:
        narrowed = plan.narrow(self.table, self._id, "after_id" in filters)
        conditions = [self._filters[name].condition for name in sorted(filters)]
        conditions += narrowed.conditions
        source, order = narrowed.source, narrowed.order
        limit = sa.bindparam("limit", type_=sa.Integer)
        if not skip:
            return (
                sa.select(*self._read_columns(self.table))
                .select_from(source)
                .where(*conditions)
                .order_by(order)
                .limit(limit)
            )
        # With an OFFSET, the page is read in the form responses show it in an
        # outer query, so that the database converts only the rows returned, not
        # those skipped (PostgreSQL would convert them all).
        page = (
            sa.select(*(self.table.c[key] for key in self.keys))
            .select_from(source)
            .where(*conditions)
            .order_by(order)
            .limit(limit)
            .offset(sa.bindparam("skip", type_=sa.Integer))
        )
        subquery = page.subquery("page")
        return sa.select(*self._read_columns(subquery)).order_by(subquery.c[self._id.key])

    def _storing(self, values: Row) -> Row:
        return values if self._stored is None else self._stored(values)

    def _updating(self, key: int, changes: Row) -> Row:
        return self._storing(_with_defaults(changes, self._on_update)) | {"_key": key}

    def _as_read(self, rows: Sequence[sa.Row[Any]], dialect: Dialect) -> list[Row]:
        """Rows as responses show them: dicts of the read keys, and, where the
        dialect leaves it to Python (`ReadForm.from_driver`), values converted."""
        keys = self.keys
        # Inline rather than a function per row: a call per row costs a list dearly.
        read = [dict(zip(keys, row, strict=True)) for row in rows]
        conversions = self._conversions.get(dialect.name)
        if conversions is None:
            conversions = self._conversions[dialect.name] = [
                (key, convert)
                for key, form in self._forms.items()
                if (convert := form.from_driver(dialect)) is not None
            ]
        for row in read if conversions else ():
            for key, convert in conversions:
                if (value := row[key]) is not None:
                    row[key] = convert(value)
        return read

    def _as_shown(self, values: Row) -> Row:
        shown = self._shown
        return {
            key: shown[key](value) if key in shown and value is not None else value
            for key, value in ((key, values[key]) for key in self.keys)
        }


def _python_defaults(table: sa.Table, kind: str) -> dict[str, Callable[[], Any]]:
    """The columns whose `default` (or `onupdate`) is a Python function, and the function."""
    defaults = {}
    for column in table.columns:
        default = getattr(column, kind)
        if isinstance(default, sa.ColumnDefault) and default.is_callable:
            # SQLAlchemy wraps a function of no arguments to take the execution
            # context, and keeps the function itself as `__wrapped__`.
            function = getattr(default.arg, "__wrapped__", None)
            if function is None:
                raise TypeError(f"{column}: a default that takes the execution context")
            defaults[column.key] = function
    return defaults


def _with_defaults(values: Row, defaults: dict[str, Callable[[], Any]]) -> Row:
    """`values` and the defaults of the columns they leave out, each function called
    once: a new row's `created_at` and `updated_at` are the same instant."""
    results: dict[Callable[[], Any], Any] = {}
    added = {}
    for key, function in defaults.items():
        if key not in values:
            if function not in results:
                results[function] = function()
            added[key] = results[function]
    return values | added if added else values
