"""Add created_at and updated_at (UTC, microseconds); existing rows get the migration time.

Code before this revision writes no timestamps: it cannot serve the schema.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa

from alembic import op
from service.db import online
from service.db.types import UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
serves_code_since = "0004"

TABLE_KWARGS = {"sqlite_autoincrement": True}
# Before the first release (6889ecd, at revision 0007), whose database was
# made from empty: no release ever ran this revision on rows it served.
PRE_RELEASE = "before the first release: no served database ran this revision"


def upgrade() -> None:
    with op.batch_alter_table("items", table_kwargs=TABLE_KWARGS) as batch:
        batch.add_column(sa.Column("created_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("updated_at", UTCDateTime(), nullable=True))
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    online.backfill(
        f"UPDATE items SET created_at = '{now}', updated_at = '{now}' "
        "WHERE id > :low AND id <= :high AND created_at IS NULL"
    )
    for column in ("created_at", "updated_at"):
        online.lint_exception("adding-not-nullable-field", PRE_RELEASE)
        with op.batch_alter_table("items", table_kwargs=TABLE_KWARGS) as batch:
            batch.alter_column(column, existing_type=UTCDateTime(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("items", table_kwargs=TABLE_KWARGS) as batch:
        batch.drop_column("updated_at")
        batch.drop_column("created_at")
