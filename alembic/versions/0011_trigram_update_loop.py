"""MySQL/MariaDB's trigger that follows a rename in the trigram table becomes a
loop over the positions of the old and new name, each trigram deleted or
inserted by its primary key: the same rows as revision 0010's statements, for
about two thirds of the server's CPU per rename (those statements built a
temporary table each). SQLite and PostgreSQL are unchanged.

Revision 0010 makes its triggers as `index_triggers` writes them now, so a
database made since holds this trigger already, and making it again changes
nothing. The downgrade keeps it too: revision 0010 with this trigger keeps the
same rows.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op
from service.items.models import name_index_triggers

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPDATE_TRIGGER = "item_name_trigrams_update"


def upgrade() -> None:
    if op.get_bind().dialect.name != "mysql":
        return
    op.execute(f"DROP TRIGGER {UPDATE_TRIGGER}")
    op.execute(name_index_triggers("mysql")[UPDATE_TRIGGER])


def downgrade() -> None:
    pass
