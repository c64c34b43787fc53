"""Index the price, for the min_price/max_price range filters.

Built while writes go on: concurrently on PostgreSQL, in place without a
lock on MySQL/MariaDB.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from service.db import online

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_items_price"


def upgrade() -> None:
    online.create_index(INDEX, "items", "(price)")


def downgrade() -> None:
    online.drop_index(INDEX, "items")
