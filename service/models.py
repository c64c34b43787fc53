"""Every resource's tables in one metadata: what Alembic compares the migrations with."""

from service.db.model import Base
from service.items.models import Item, ItemNameTrigram
from service.orders.models import Order

metadata = Base.metadata

__all__ = ["Item", "ItemNameTrigram", "Order", "metadata"]
