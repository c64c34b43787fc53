"""The trigrams of each item's folded name, so that `q` is answered from an index
on SQLite and MySQL/MariaDB as pg_trgm answers it on PostgreSQL (revision 0007).

For every position of `name_folded`, the three characters starting there
(padded at the end); the service kept them in the same transaction as the
item until revision 0010, whose triggers keep them since. This revision
builds them for the items already stored. On PostgreSQL
the table stays empty: pg_trgm serves `q` there, for texts of three characters
or more; for shorter ones, this revision adds a GIN index of each folded name's
characters and pairs of characters (the function `item_name_grams`). Neither
index is in the models: env.py leaves them out of the comparison.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op
from service.db.search import trigrams
from service.db.types import ExactString

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000
GRAMS_INDEX = "ix_items_name_folded_grams"
# Every one- and two-character text a name holds. IMMUTABLE, so that it can be
# indexed; not inlined into queries (it reads FROM), so that they match the index.
GRAMS_FUNCTION = """
CREATE FUNCTION item_name_grams(name text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT coalesce(array_agg(DISTINCT substr(name, start, width)), '{}')
    FROM generate_series(1, char_length(name)) AS start, (VALUES (1), (2)) AS widths (width)
    WHERE start + width - 1 <= char_length(name)
$$
"""


def upgrade() -> None:
    table = op.create_table(
        "item_name_trigrams",
        sa.Column("trigram", ExactString(3), nullable=False),
        sa.Column("item_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("trigram", "item_id", name=op.f("pk_item_name_trigrams")),
        sqlite_with_rowid=False,
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
    )
    connection = op.get_bind()
    if connection.dialect.name == "postgresql":
        op.execute(GRAMS_FUNCTION)
        op.execute(f"CREATE INDEX {GRAMS_INDEX} ON items USING gin (item_name_grams(name_folded))")
        return
    items = sa.table("items", sa.column("id", sa.Integer()), sa.column("name_folded"))
    after = 0
    while rows := connection.execute(
        sa.select(items.c.id, items.c.name_folded)
        .where(items.c.id > after)
        .order_by(items.c.id)
        .limit(BATCH)
    ).all():
        connection.execute(
            sa.insert(table),
            [{"trigram": t, "item_id": item_id} for item_id, name in rows for t in trigrams(name)],
        )
        after = rows[-1][0]


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index(GRAMS_INDEX, table_name="items")
        op.execute("DROP FUNCTION item_name_grams(text)")
    op.drop_table("item_name_trigrams")
