"""Add an optional stock-keeping unit, unique and compared exactly.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op
from service.db import online
from service.db.types import ExactString

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE_KWARGS = {"sqlite_autoincrement": True}
# Before the first release (6889ecd, at revision 0007), whose database was
# made from empty: no release ever ran this revision on rows it served.
PRE_RELEASE = "before the first release: no served database ran this revision"


def upgrade() -> None:
    with op.batch_alter_table("items", table_kwargs=TABLE_KWARGS) as batch:
        batch.add_column(sa.Column("sku", ExactString(length=64), nullable=True))
    online.lint_exception("constraint-missing-not-valid, disallowed-unique-constraint", PRE_RELEASE)
    with op.batch_alter_table("items", table_kwargs=TABLE_KWARGS) as batch:
        batch.create_unique_constraint(batch.f("uq_items_sku"), ["sku"])


def downgrade() -> None:
    with op.batch_alter_table("items", table_kwargs=TABLE_KWARGS) as batch:
        batch.drop_constraint(batch.f("uq_items_sku"), type_="unique")
        batch.drop_column("sku")
