"""The database keeps the trigram table of revision 0009 by itself, by triggers,
on SQLite and MySQL/MariaDB: a create or rename is one statement again, and a
write made outside the service is indexed too (PostgreSQL has pg_trgm and
keeps no trigram rows). The rows already stored are in step: 0009 built them,
and the service kept them until this revision.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op
from service.items.models import name_index_triggers

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        return
    for create in name_index_triggers(op.get_bind().dialect.name).values():
        op.execute(create)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        return
    for name in name_index_triggers(op.get_bind().dialect.name):
        op.execute(f"DROP TRIGGER {name}")
