"""Add name_folded, the case-folded name that `q` searches; drop the unused name index.

Case folding happens in Python (str.casefold) so that every backend searches
alike, whatever its collation or locale.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE_KWARGS = {"sqlite_autoincrement": True}


def upgrade() -> None:
    with op.batch_alter_table("items", table_kwargs=TABLE_KWARGS) as batch:
        batch.add_column(sa.Column("name_folded", sa.String(length=765), nullable=True))
        batch.drop_index("ix_items_name")
    items = sa.table(
        "items", sa.column("id", sa.Integer()), sa.column("name"), sa.column("name_folded")
    )
    connection = op.get_bind()
    for item_id, name in connection.execute(sa.select(items.c.id, items.c.name)).all():
        connection.execute(
            items.update().where(items.c.id == item_id).values(name_folded=name.casefold())
        )
    with op.batch_alter_table("items", table_kwargs=TABLE_KWARGS) as batch:
        batch.alter_column("name_folded", existing_type=sa.String(length=765), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("items", table_kwargs=TABLE_KWARGS) as batch:
        batch.create_index("ix_items_name", ["name"])
        batch.drop_column("name_folded")
