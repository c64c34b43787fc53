"""Reads and writes of items. Every call ends its transaction before it returns.

Ending reads too gives the pooled connection back inside the worker thread
that used it. Otherwise it stays checked out while the request waits for a
thread for its next step (FastAPI validates a sync route's response in the
thread pool): with every thread blocked waiting for a connection, a full pool
would deadlock until its timeout.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from service.models import Item, fold_case, utcnow
from service.schemas import ItemCreate, ItemQuery


def get_item(session: Session, item_id: int) -> Item | None:
    item = session.get(Item, item_id)
    session.commit()
    return item


def list_items(session: Session, query: ItemQuery) -> Sequence[Item]:
    statement = sa.select(Item).order_by(Item.id)
    if query.after_id is not None:
        statement = statement.where(Item.id > query.after_id)
    if query.q:
        statement = statement.where(Item.name_folded.contains(fold_case(query.q), autoescape=True))
    if query.min_price is not None:
        statement = statement.where(Item.price >= query.min_price)
    if query.max_price is not None:
        statement = statement.where(Item.price <= query.max_price)
    statement = statement.offset(query.skip).limit(query.limit)
    items = session.scalars(statement).all()
    session.commit()
    return items


def create_item(session: Session, data: ItemCreate) -> Item:
    now = utcnow()
    item = Item(**data.model_dump(), created_at=now, updated_at=now)
    session.add(item)
    session.commit()
    return item


def update_item(session: Session, item: Item, changes: dict[str, Any]) -> Item:
    """Set the given fields; PUT passes every field, PATCH only those sent."""
    if not changes:
        return item
    for field, value in changes.items():
        setattr(item, field, value)
    item.updated_at = utcnow()
    session.commit()
    return item


def delete_item(session: Session, item: Item) -> None:
    session.delete(item)
    session.commit()
