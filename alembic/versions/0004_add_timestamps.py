"""Add created_at and updated_at (UTC, microseconds); existing rows get the migration time.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa

from alembic import op
from service.db.types import UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE_KWARGS = {"sqlite_autoincrement": True}


def upgrade() -> None:
    with op.batch_alter_table("items", table_kwargs=TABLE_KWARGS) as batch:
        batch.add_column(sa.Column("created_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("updated_at", UTCDateTime(), nullable=True))
    items = sa.table(
        "items",
        sa.column("created_at", UTCDateTime()),
        sa.column("updated_at", UTCDateTime()),
    )
    now = datetime.now(UTC)
    op.execute(items.update().values(created_at=now, updated_at=now))
    with op.batch_alter_table("items", table_kwargs=TABLE_KWARGS) as batch:
        batch.alter_column("created_at", existing_type=UTCDateTime(), nullable=False)
        batch.alter_column("updated_at", existing_type=UTCDateTime(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("items", table_kwargs=TABLE_KWARGS) as batch:
        batch.drop_column("updated_at")
        batch.drop_column("created_at")
