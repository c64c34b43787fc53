"""Store the price as an exact decimal with two places, never negative.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op
from service.db import online

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite rebuilds the table in batch mode; keep its AUTOINCREMENT.
TABLE_KWARGS = {"sqlite_autoincrement": True}
# Before the first release (6889ecd, at revision 0007), whose database was
# made from empty: no release ever ran this revision on rows it served.
PRE_RELEASE = "before the first release: no served database ran this revision"


def upgrade() -> None:
    online.lint_exception("changing-column-type", PRE_RELEASE)
    with op.batch_alter_table("items", table_kwargs=TABLE_KWARGS) as batch:
        batch.alter_column(
            "price",
            existing_type=sa.Float(),
            type_=sa.Numeric(precision=12, scale=2),
            existing_nullable=False,
        )
    online.lint_exception("constraint-missing-not-valid", PRE_RELEASE)
    with op.batch_alter_table("items", table_kwargs=TABLE_KWARGS) as batch:
        batch.create_check_constraint("price_not_negative", "price >= 0")


def downgrade() -> None:
    with op.batch_alter_table("items", table_kwargs=TABLE_KWARGS) as batch:
        batch.drop_constraint("price_not_negative", type_="check")
        batch.alter_column(
            "price",
            existing_type=sa.Numeric(precision=12, scale=2),
            type_=sa.Float(),
            existing_nullable=False,
        )
