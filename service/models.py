"""Every resource's tables in one metadata: what Alembic compares the migrations with."""

from service.db.model import Base
from service.items.models import Item, ItemNameTrigram
from service.orders.models import Order

metadata = Base.metadata

# The tables the service reads and writes itself; the server's triggers write
# `item_name_trigrams` (MySQL/MariaDB), unused elsewhere.
SERVED_TABLES = (Item.__tablename__, Order.__tablename__)

__all__ = ["SERVED_TABLES", "Item", "ItemNameTrigram", "Order", "metadata"]
