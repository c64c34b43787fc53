"""Reads and writes of items, in SQLAlchemy Core.

Reads take the engine, and a pooled connection of their own that they return
before the response is rendered, however slow the client. Writes take the
connection they write on, so that the caller decides how they commit
(`Database.write`). The engine must autocommit, as the service's does
(`create_engine(..., autocommit=True)`): every statement commits by itself, so
a write on its own needs no COMMIT, which mysqlclient would send to the server
as one more round trip; on a SQLite file, the writer thread opens a
transaction for each group of writes (`group_commit`). Items travel as plain
dicts of the columns a response shows. No ORM session: these are single Core
statements, and a session only adds work per request.
"""

import functools
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from service.column_types import DecimalAsFloat, ExactText, UTCText, utc_text
from service.models import Item, fold_case, utcnow
from service.schemas import ItemCreate, ItemQuery

ItemValues = dict[str, Any]

items = cast(sa.Table, Item.__table__)
# Every column a response shows; `name_folded` exists only for searching.
READ_KEYS = ("id", "name", "description", "price", "sku", "created_at", "updated_at")
# Read as responses show them, converted by the database: prices as floats
# (exact for every price the API accepts), times as UTC text, SKUs as text.
# Neither the driver nor the JSON encoder then needs Python callbacks per value.
_READ_TYPES: dict[str, sa.types.TypeEngine[Any]] = {
    "price": DecimalAsFloat(),
    "sku": ExactText(),
    "created_at": UTCText(),
    "updated_at": UTCText(),
}


def _read_columns(source: sa.FromClause) -> list[sa.ColumnElement[Any]]:
    return [
        sa.type_coerce(source.c[name], _READ_TYPES[name]).label(name)
        if name in _READ_TYPES
        else source.c[name]
        for name in READ_KEYS
    ]


def _stored(values: ItemValues) -> ItemValues:
    if "name" in values:
        return values | {"name_folded": fold_case(values["name"])}
    return values


def _shown(row: sa.Row[Any]) -> ItemValues:
    # dict(zip()) is several times cheaper than Row._asdict(), which rebuilds the keys per row.
    return dict(zip(READ_KEYS, row, strict=True))


# Built once: SQLAlchemy then reuses its cache key and compiled form on every call.
_GET_ITEMS = sa.select(*_read_columns(items)).where(
    items.c.id.in_(sa.bindparam("item_ids", expanding=True))
)


def get_items(engine: Engine, item_ids: list[int]) -> dict[int, ItemValues]:
    """The items with these ids that exist, by id."""
    with engine.connect() as connection:
        rows = connection.execute(_GET_ITEMS, {"item_ids": item_ids}).all()
    return {row[0]: _shown(row) for row in rows}


# The filters a list can have, each with its bound parameter.
_LIST_FILTERS = {
    "after_id": items.c.id > sa.bindparam("after_id"),
    "pattern": items.c.name_folded.like(sa.bindparam("pattern"), escape="/"),
    "min_price": items.c.price >= sa.bindparam("min_price"),
    "max_price": items.c.price <= sa.bindparam("max_price"),
}


@functools.cache
def _list_statement(filters: frozenset[str], skip: bool) -> sa.Select[Any]:
    """The list query for a set of filters, built once: building a select
    costs more Python than running it."""
    conditions = [condition for name, condition in _LIST_FILTERS.items() if name in filters]
    limit = sa.bindparam("limit", type_=sa.Integer)
    if not skip:
        return sa.select(*_read_columns(items)).where(*conditions).order_by(items.c.id).limit(limit)
    # With an OFFSET, the page is read in the form responses show it in an
    # outer query, so that the database formats only the rows returned, not
    # those skipped (PostgreSQL would format them all).
    page = (
        sa.select(*(items.c[name] for name in READ_KEYS))
        .where(*conditions)
        .order_by(items.c.id)
        .limit(limit)
        .offset(sa.bindparam("skip", type_=sa.Integer))
    )
    subquery = page.subquery("page")
    return sa.select(*_read_columns(subquery)).order_by(subquery.c.id)


def _contains_pattern(text: str) -> str:
    """A LIKE pattern (escape character `/`) matching `text` anywhere, `%` and `_` literal."""
    escaped = text.replace("/", "//").replace("%", "/%").replace("_", "/_")
    return f"%{escaped}%"


def list_items(engine: Engine, query: ItemQuery) -> list[ItemValues]:
    values = {
        "after_id": query.after_id,
        "pattern": _contains_pattern(fold_case(query.q)) if query.q else None,
        "min_price": query.min_price,
        "max_price": query.max_price,
    }
    filters = {name: value for name, value in values.items() if value is not None}
    statement = _list_statement(frozenset(filters), skip=query.skip > 0)
    parameters = filters | {"limit": query.limit}
    if query.skip:
        parameters["skip"] = query.skip
    with engine.connect() as connection:
        rows = connection.execute(statement, parameters).all()
    # Inline rather than `_shown` per row: a function call per row cost 20-40 µs a list.
    return [dict(zip(READ_KEYS, row, strict=True)) for row in rows]


# Built once, like the list statements; the values are bound at execution.
_INSERT = sa.insert(items)
_UPDATE = sa.update(items).where(items.c.id == sa.bindparam("item_id"))
_UPDATE_RETURNING = _UPDATE.returning(*_read_columns(items))
_DELETE = sa.delete(items).where(items.c.id == sa.bindparam("item_id"))


def create_item(connection: Connection, data: ItemCreate) -> ItemValues:
    now = utcnow()
    values = data.model_dump() | {"created_at": now, "updated_at": now}
    (item_id,) = connection.execute(_INSERT, _stored(values)).inserted_primary_key  # type: ignore[misc]
    # In the form reads return it.
    shown_now = utc_text(now)
    shown = {"price": float(values["price"]), "created_at": shown_now, "updated_at": shown_now}
    return {"id": item_id} | values | shown


def update_item(connection: Connection, item_id: int, changes: ItemValues) -> ItemValues | None:
    """Set the given fields (PUT passes every field, PATCH those sent) and
    return the item as stored, in one `UPDATE ... RETURNING`: for engines whose
    dialect has `update_returning`. None if there is no such item.
    """
    row = connection.execute(_UPDATE_RETURNING, _update_parameters(item_id, changes)).first()
    return None if row is None else _shown(row)


def update_item_fields(connection: Connection, item_id: int, changes: ItemValues) -> bool:
    """Set the given fields, without reading the item back; False if there is no such item."""
    # Rows matched, on MySQL too: SQLAlchemy connects with CLIENT_FOUND_ROWS.
    return connection.execute(_UPDATE, _update_parameters(item_id, changes)).rowcount > 0


def _update_parameters(item_id: int, changes: ItemValues) -> ItemValues:
    return _stored(changes | {"updated_at": utcnow()}) | {"item_id": item_id}


def delete_item(connection: Connection, item_id: int) -> bool:
    return connection.execute(_DELETE, {"item_id": item_id}).rowcount > 0
