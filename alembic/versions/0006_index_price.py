"""Index the price, for the min_price/max_price range filters.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_items_price"), "items", ["price"])


def downgrade() -> None:
    op.drop_index(op.f("ix_items_price"), table_name="items")
