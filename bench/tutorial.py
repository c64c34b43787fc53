"""The tutorial's way, on the service's own tables: the comparison the database's CPU is held to.

What the FastAPI + SQLAlchemy tutorial teaches, kept as it teaches it: an ORM
session per request from a `get_db` dependency, `def` handlers on FastAPI's
thread pool, `db.query(...).first()`, `offset/limit`, `add, commit, refresh`,
and `response_model` schemas read from ORM objects. Only what the service's
schema needs is added: its columns, the case-folded name a create stores, a
PATCH and the orders reads, written the same way. Served by `uvicorn
bench.tutorial:app` with its defaults, on the database in `DATABASE_URL`
(a migrated database of the service's).

One change, so that the database's CPU counts the statements and not new
connections: a pool as large as the thread pool FastAPI runs `def` handlers
on (40). With SQLAlchemy's default (5, and 10 more opened and closed again
as needed), 32 clients made the server start a new session for most
requests (bench/results.md, round 9).
"""

import os
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict
from sqlalchemy import ForeignKey, Numeric, String, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from service.db.types import ExactString

DATABASE_URL = os.environ["DATABASE_URL"]
engine = create_engine(
    DATABASE_URL,
    connect_args={"check_same_thread": False} if DATABASE_URL.startswith("sqlite") else {},
    pool_size=40,
    max_overflow=0,
)
SessionLocal = sessionmaker(autocommit=False, autoflush=False, bind=engine)


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    name_folded: Mapped[str] = mapped_column(String(765))
    description: Mapped[str | None] = mapped_column(String(2000))
    price: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    # The service's own type: MySQL keeps skus as bytes, which the tutorial could not know.
    sku: Mapped[str | None] = mapped_column(ExactString(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))
    quantity: Mapped[int]
    unit_price: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    total: Mapped[Decimal] = mapped_column(Numeric(15, 2))
    created_at: Mapped[datetime]


class ItemCreate(BaseModel):
    name: str
    description: str | None = None
    price: float
    sku: str | None = None


class ItemPatch(BaseModel):
    name: str | None = None
    description: str | None = None
    price: float | None = None
    sku: str | None = None


class ItemOut(ItemCreate):
    model_config = ConfigDict(from_attributes=True)
    id: int
    created_at: datetime
    updated_at: datetime


class OrderOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    item_id: int
    quantity: int
    unit_price: float
    total: float
    created_at: datetime


app = FastAPI()


def get_db() -> Any:
    db = SessionLocal()
    try:
        yield db
    finally:
        db.close()


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/items/", response_model=ItemOut, status_code=201)
def create_item(item: ItemCreate, db: Session = Depends(get_db)) -> Any:  # noqa: B008
    now = datetime.now(UTC).replace(tzinfo=None)
    db_item = Item(
        **item.model_dump(), name_folded=item.name.casefold(), created_at=now, updated_at=now
    )
    db.add(db_item)
    db.commit()
    db.refresh(db_item)
    return db_item


@app.get("/items/", response_model=list[ItemOut])
def read_items(
    skip: int = 0,
    limit: int = 100,
    q: str | None = None,
    db: Session = Depends(get_db),  # noqa: B008
) -> Any:
    query = db.query(Item)
    if q:
        query = query.filter(Item.name_folded.contains(q.casefold(), autoescape=True))
    return query.order_by(Item.id).offset(skip).limit(limit).all()


@app.get("/items/{item_id}", response_model=ItemOut)
def read_item(item_id: int, db: Session = Depends(get_db)) -> Any:  # noqa: B008
    db_item = db.query(Item).filter(Item.id == item_id).first()
    if db_item is None:
        raise HTTPException(status_code=404, detail="Item not found")
    return db_item


@app.patch("/items/{item_id}", response_model=ItemOut)
def update_item(item_id: int, item: ItemPatch, db: Session = Depends(get_db)) -> Any:  # noqa: B008
    db_item = db.query(Item).filter(Item.id == item_id).first()
    if db_item is None:
        raise HTTPException(status_code=404, detail="Item not found")
    for field, value in item.model_dump(exclude_unset=True).items():
        setattr(db_item, field, value)
    db_item.updated_at = datetime.now(UTC).replace(tzinfo=None)
    db.commit()
    db.refresh(db_item)
    return db_item


@app.get("/orders/", response_model=list[OrderOut])
def read_orders(limit: int = 100, db: Session = Depends(get_db)) -> Any:  # noqa: B008
    return db.query(Order).order_by(Order.id).limit(limit).all()


@app.get("/orders/{order_id}", response_model=OrderOut)
def read_order(order_id: int, db: Session = Depends(get_db)) -> Any:  # noqa: B008
    db_order = db.query(Order).filter(Order.id == order_id).first()
    if db_order is None:
        raise HTTPException(status_code=404, detail="Order not found")
    return db_order
