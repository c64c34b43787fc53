"""Orders: the table, its read schema, its filter, and how an order is placed."""

from typing import cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from service.db.repository import Filter, Repository, Row
from service.errors import Answer, ConstraintAnswers, ForeignKeyAnswers
from service.items.repository import items
from service.orders.models import Order
from service.orders.schemas import OrderRead

orders = cast(sa.Table, Order.__table__)

ORDERS = Repository(
    orders,
    OrderRead,
    not_found="Order not found",
    filters={"item_id": Filter(orders.c.item_id == sa.bindparam("item_id"))},
)

ANSWERS: ConstraintAnswers = {
    "fk_orders_item_id_items": ForeignKeyAnswers(
        missing=Answer(422, "Item {item_id} does not exist", field="item_id"),
        referenced=Answer(409, "Item {id} has orders; delete its orders first"),
    ),
}

_PRICE = sa.select(items.c.price).where(items.c.id == sa.bindparam("item_id"))


def place(connection: Connection, order: Row) -> Row:
    """Insert `order` (`item_id`, `quantity`) at the item's price of the moment.

    The total is computed from the exact decimal price, never in floating
    point (SQLite has no decimal arithmetic).
    """
    price = connection.execute(_PRICE, {"item_id": order["item_id"]}).scalar()
    if price is None:
        raise ORDERS.missing_reference(orders.c.item_id, order)
    return ORDERS.insert(
        connection, order | {"unit_price": price, "total": price * order["quantity"]}
    )
