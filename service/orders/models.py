from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from service.db.model import TABLE_OPTIONS, Base, utcnow
from service.db.types import UTCDateTime

MAX_QUANTITY = 10_000


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        sa.CheckConstraint(f"quantity BETWEEN 1 AND {MAX_QUANTITY}", name="quantity_in_range"),
        # Serves the `item_id` filter in id order, and the check that an item
        # being deleted has no orders.
        sa.Index("ix_orders_item_id", "item_id", "id"),
        TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # RESTRICT: an item that has orders cannot be deleted.
    item_id: Mapped[int] = mapped_column(sa.ForeignKey("items.id", ondelete="RESTRICT"))
    quantity: Mapped[int]
    # The item's price when the order was placed.
    unit_price: Mapped[Decimal] = mapped_column(sa.Numeric(12, 2))
    # quantity * unit_price, exact: at most 10,000 x 999,999,999.99.
    total: Mapped[Decimal] = mapped_column(sa.Numeric(15, 2))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
