"""SQLite keeps the items' name trigrams in FTS5 instead of the trigram table of
revisions 0009 and 0010: FTS5 stores the trigrams a transaction writes as one
segment, where the table wrote a page for each trigram a rename changed, so
that a rename cost SQLite's one writer about twice as much. FTS5's own trigram
tokenizer reads the padded folded name, so that the table holds the trigrams
the service looks up; its vocabulary gives a short text's. The triggers and
the rows of the trigram table go (the table stays, empty, as on PostgreSQL);
MySQL/MariaDB and PostgreSQL are unchanged. Going down, the trigram table is
filled again from the names and its triggers come back.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op
from service.items.models import name_full_text_index, name_index_rows, name_index_triggers

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for name in name_index_triggers("sqlite"):
        op.execute(f"DROP TRIGGER {name}")
    op.execute("DELETE FROM item_name_trigrams")
    made = name_full_text_index()
    for create in made.tables.values():
        op.execute(create)
    op.execute(made.fill)
    for create in made.triggers.values():
        op.execute(create)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    made = name_full_text_index()
    for name in made.triggers:
        op.execute(f"DROP TRIGGER {name}")
    for name in reversed(made.tables):
        op.execute(f"DROP TABLE {name}")
    op.execute(name_index_rows())
    for create in name_index_triggers("sqlite").values():
        op.execute(create)
