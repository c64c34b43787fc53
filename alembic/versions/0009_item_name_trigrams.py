"""A table of the names' trigrams for `q`; on PostgreSQL, an index for short texts.

The table of each item's folded name's trigrams, so that `q` is answered
from an index on SQLite and MySQL/MariaDB as pg_trgm answers it on
PostgreSQL (revision 0007): for every position of `name_folded`, the three
characters starting there (padded at the end). Revision 0010 adds the
triggers that keep it, then fills it with the items already stored.

On PostgreSQL the table stays empty: pg_trgm serves `q` there, for texts of
three characters or more; for shorter ones, this revision adds a GIN index
of each folded name's characters and pairs of characters (the function
`item_name_grams`), built concurrently, while writes go on. Neither index
is in the models: env.py leaves them out of the comparison.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op
from service.db import online
from service.db.backends import Kind
from service.db.types import ExactString

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GRAMS_INDEX = "ix_items_name_folded_grams"
# Every one- and two-character text a name holds. IMMUTABLE, so that it can be
# indexed; not inlined into queries (it reads FROM), so that they match the index.
GRAMS_FUNCTION = """
CREATE OR REPLACE FUNCTION item_name_grams(name text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT coalesce(array_agg(DISTINCT substr(name, start, width)), '{}')
    FROM generate_series(1, char_length(name)) AS start, (VALUES (1), (2)) AS widths (width)
    WHERE start + width - 1 <= char_length(name)
$$
"""


def upgrade() -> None:
    op.create_table(
        "item_name_trigrams",
        sa.Column("trigram", ExactString(3), nullable=False),
        sa.Column("item_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("trigram", "item_id", name=op.f("pk_item_name_trigrams")),
        sqlite_with_rowid=False,
        # Under both names SQLAlchemy gives MySQL's dialect (mysql://, mariadb://).
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
        mariadb_charset="utf8mb4",
        mariadb_collate="utf8mb4_bin",
        if_not_exists=True,
    )
    if online.server() is Kind.POSTGRESQL:
        op.execute(GRAMS_FUNCTION)
        online.create_index(GRAMS_INDEX, "items", "USING gin (item_name_grams(name_folded))")


def downgrade() -> None:
    if online.server() is Kind.POSTGRESQL:
        online.drop_index(GRAMS_INDEX, "items")
        op.execute("DROP FUNCTION item_name_grams(text)")
    op.drop_table("item_name_trigrams")
