"""Add name_folded, the case-folded name that `q` searches; drop the unused name index.

Case folding happens in Python (str.casefold) so that every backend searches
alike, whatever its collation or locale. The names already stored are folded
in batches, each committed alone. Code before this revision writes no folded name: it cannot serve
the schema.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alembic import op
from service.db import online

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
serves_code_since = "0005"

TABLE_KWARGS = {"sqlite_autoincrement": True}
# Before the first release (6889ecd, at revision 0007), whose database was
# made from empty: no release ever ran this revision on rows it served.
PRE_RELEASE = "before the first release: no served database ran this revision"


def upgrade() -> None:
    with op.batch_alter_table("items", table_kwargs=TABLE_KWARGS) as batch:
        batch.add_column(sa.Column("name_folded", sa.String(length=765), nullable=True))
    online.drop_index("ix_items_name", "items")
    online.backfill(fold_names)
    online.lint_exception("adding-not-nullable-field", PRE_RELEASE)
    with op.batch_alter_table("items", table_kwargs=TABLE_KWARGS) as batch:
        batch.alter_column("name_folded", existing_type=sa.String(length=765), nullable=False)


def fold_names(connection: Connection, low: int, high: int) -> None:
    items = sa.table("items", sa.column("id"), sa.column("name"), sa.column("name_folded"))
    # Locked until the batch commits (SQLite's batch holds the write lock):
    # no name changes between its read and its fold.
    names = connection.execute(
        sa.select(items.c.id, items.c.name)
        .where(items.c.id > low, items.c.id <= high, items.c.name_folded.is_(None))
        .with_for_update()
    ).all()
    if names:
        fold = items.update().where(items.c.id == sa.bindparam("key"))
        connection.execute(
            fold.values(name_folded=sa.bindparam("folded")),
            [{"key": key, "folded": name.casefold()} for key, name in names],
        )


def downgrade() -> None:
    with op.batch_alter_table("items", table_kwargs=TABLE_KWARGS) as batch:
        batch.create_index("ix_items_name", ["name"])
        batch.drop_column("name_folded")
