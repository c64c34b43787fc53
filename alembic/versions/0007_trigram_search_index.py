"""On PostgreSQL, a trigram index that serves `q` (LIKE '%...%') on name_folded.

No B-tree index can serve a substring search; PostgreSQL's pg_trgm can. The
other backends have no equivalent that keeps `q`'s exact semantics, so this
revision changes nothing there. The index is built concurrently, while
writes go on. It is not in the models: env.py leaves it out of the comparison.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op
from service.db import online
from service.db.backends import Kind

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_items_name_folded_trgm"


def upgrade() -> None:
    if online.server() is not Kind.POSTGRESQL:
        return
    # pg_trgm is a trusted extension: the database's owner may create it.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    online.create_index(INDEX, "items", "USING gin (name_folded gin_trgm_ops)")


def downgrade() -> None:
    if online.server() is not Kind.POSTGRESQL:
        return
    online.drop_index(INDEX, "items")
