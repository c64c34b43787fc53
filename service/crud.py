"""Reads and writes of items. Every write commits before it returns."""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from service.models import Item, fold_case, utcnow
from service.schemas import ItemCreate, ItemQuery


def get_item(session: Session, item_id: int) -> Item | None:
    return session.get(Item, item_id)


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
    return session.scalars(statement).all()


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
