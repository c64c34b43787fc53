"""SQLite keeps the names' trigrams in FTS5 instead of the trigram table.

SQLite keeps the items' name trigrams in FTS5 instead of the trigram table of
revisions 0009 and 0010: FTS5 stores the trigrams a transaction writes as one
segment, where the table wrote a page for each trigram a rename changed, so
that a rename cost SQLite's one writer about twice as much. FTS5's own trigram
tokenizer reads the padded folded name, so that the table holds the trigrams
the service looks up; its vocabulary gives a short text's. The triggers and
the rows of the trigram table go (the table stays, empty, as on PostgreSQL);
MySQL/MariaDB and PostgreSQL are unchanged. Going down, the trigram table is
filled again from the names and its triggers come back.

While writes go on: the FTS5 table and its triggers come first, then the
items already stored, in batches, each committed alone. A contentless FTS5
table forgets a row only by being told the text it was given, so until the
batches reach an item, a rename or delete of it leaves the table alone (the
batch reads the name as it is then): `item_name_fts_fill` says how far they
are, and a killed run resumes there. The trigram rows go last, in batches.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alembic import op
from service.db import online
from service.db.backends import Kind

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# Code of revisions 0009 to 0011 searches the trigram table, which this empties.
serves_code_since = "0012"

FULL_TEXT_TABLES = {
    "item_name_fts": "CREATE VIRTUAL TABLE IF NOT EXISTS item_name_fts USING fts5(name_folded, "
    "content='', detail='none', columnsize=0, tokenize='trigram case_sensitive 1')",
    "item_name_fts_terms": "CREATE VIRTUAL TABLE IF NOT EXISTS item_name_fts_terms "
    "USING fts5vocab(item_name_fts, row)",
}
ADD = (
    "INSERT INTO item_name_fts (rowid, name_folded) VALUES (NEW.id, NEW.name_folded || char(1, 1))"
)
REMOVE = (
    "INSERT INTO item_name_fts (item_name_fts, rowid, name_folded) "
    "VALUES ('delete', OLD.id, OLD.name_folded || char(1, 1))"
)
FULL_TEXT_TRIGGERS = {
    "item_name_fts_insert": f"CREATE TRIGGER item_name_fts_insert AFTER INSERT ON items "
    f"BEGIN {ADD}; END",
    "item_name_fts_update": "CREATE TRIGGER item_name_fts_update AFTER UPDATE OF name_folded "
    f"ON items WHEN OLD.name_folded IS NOT NEW.name_folded BEGIN {REMOVE}; {ADD}; END",
    "item_name_fts_delete": f"CREATE TRIGGER item_name_fts_delete AFTER DELETE ON items "
    f"BEGIN {REMOVE}; END",
}

# While the batches fill the table: how far they are, and the last item
# stored before they began (every later one was added by its trigger).
FILL = "item_name_fts_fill"
INDEXED = f"(OLD.id <= (SELECT filled_up_to FROM {FILL}) OR OLD.id > (SELECT last FROM {FILL}))"
FILLING_TRIGGERS = {
    "item_name_fts_update_filling": "CREATE TRIGGER item_name_fts_update_filling AFTER UPDATE "
    f"OF name_folded ON items WHEN OLD.name_folded IS NOT NEW.name_folded AND {INDEXED} "
    f"BEGIN {REMOVE}; {ADD}; END",
    "item_name_fts_delete_filling": "CREATE TRIGGER item_name_fts_delete_filling AFTER DELETE "
    f"ON items WHEN {INDEXED} BEGIN {REMOVE}; END",
}
FILL_BATCH = (
    "INSERT INTO item_name_fts (rowid, name_folded) "
    "SELECT id, name_folded || char(1, 1) FROM items WHERE id > :low AND id <= :high"
)
TRIGRAM_ROWS_GONE = (
    "DELETE FROM item_name_trigrams WHERE (trigram, item_id) IN "
    "(SELECT trigram, item_id FROM item_name_trigrams LIMIT 10000)"
)

TRIGRAM_TRIGGERS = {
    "item_name_trigrams_insert": """
CREATE TRIGGER item_name_trigrams_insert AFTER INSERT ON items BEGIN
    INSERT OR IGNORE INTO item_name_trigrams (trigram, item_id)
    WITH RECURSIVE positions (n) AS (
        SELECT 1 UNION ALL SELECT n + 1 FROM positions WHERE n < length(NEW.name_folded)
    )
    SELECT DISTINCT substr(NEW.name_folded || char(1, 1), n, 3), NEW.id
    FROM positions WHERE n <= length(NEW.name_folded);
END""",
    "item_name_trigrams_update": """
CREATE TRIGGER item_name_trigrams_update AFTER UPDATE OF name_folded ON items
WHEN OLD.name_folded IS NOT NEW.name_folded BEGIN
    DELETE FROM item_name_trigrams WHERE item_id = OLD.id AND trigram IN (
        WITH RECURSIVE positions (n) AS (
            SELECT 1 UNION ALL SELECT n + 1 FROM positions
            WHERE n < max(length(OLD.name_folded), length(NEW.name_folded))
        )
        SELECT DISTINCT substr(OLD.name_folded || char(1, 1), n, 3) AS trigram
        FROM positions WHERE n <= length(OLD.name_folded)
        AND substr(OLD.name_folded || char(1, 1), n, 3) NOT IN (
            SELECT substr(NEW.name_folded || char(1, 1), n, 3)
            FROM positions WHERE n <= length(NEW.name_folded)
        )
    );
    INSERT OR IGNORE INTO item_name_trigrams (trigram, item_id)
    WITH RECURSIVE positions (n) AS (
        SELECT 1 UNION ALL SELECT n + 1 FROM positions WHERE n < length(NEW.name_folded)
    )
    SELECT DISTINCT substr(NEW.name_folded || char(1, 1), n, 3), NEW.id
    FROM positions WHERE n <= length(NEW.name_folded);
END""",
    "item_name_trigrams_delete": """
CREATE TRIGGER item_name_trigrams_delete AFTER DELETE ON items BEGIN
    DELETE FROM item_name_trigrams WHERE item_id = OLD.id AND trigram IN (
        WITH RECURSIVE positions (n) AS (
            SELECT 1 UNION ALL SELECT n + 1 FROM positions WHERE n < length(OLD.name_folded)
        )
        SELECT DISTINCT substr(OLD.name_folded || char(1, 1), n, 3) AS trigram
        FROM positions WHERE n <= length(OLD.name_folded)
    );
END""",
}

TRIGRAM_ROWS = """
INSERT INTO item_name_trigrams (trigram, item_id)
WITH RECURSIVE positions (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM positions WHERE n < 765)
SELECT DISTINCT substr(name_folded || char(1, 1), n, 3), id
FROM items JOIN positions ON n <= length(name_folded)"""


def upgrade() -> None:
    if online.server() is not Kind.SQLITE:
        return
    if not _table_exists(FILL) and not online.trigger_exists("item_name_fts_update"):
        for name in TRIGRAM_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        for create in FULL_TEXT_TABLES.values():
            op.execute(create)
        op.execute(f"CREATE TABLE {FILL} (filled_up_to INTEGER NOT NULL, last INTEGER NOT NULL)")
        op.execute(f"INSERT INTO {FILL} SELECT 0, coalesce(max(id), 0) FROM items")
        op.execute(FULL_TEXT_TRIGGERS["item_name_fts_insert"])
        for create in FILLING_TRIGGERS.values():
            op.execute(create)
    if _table_exists(FILL):
        filled_up_to, last = op.get_bind().execute(sa.text(f"SELECT * FROM {FILL}")).one()
        online.backfill(_fill, after=filled_up_to, up_to=last)
        for name in FILLING_TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
        op.execute(FULL_TEXT_TRIGGERS["item_name_fts_update"])
        op.execute(FULL_TEXT_TRIGGERS["item_name_fts_delete"])
        op.execute(f"DROP TABLE {FILL}")
    online.until_none_left(TRIGRAM_ROWS_GONE)


def _fill(connection: Connection, low: int, high: int) -> None:
    connection.execute(sa.text(FILL_BATCH), {"low": low, "high": high})
    connection.execute(sa.text(f"UPDATE {FILL} SET filled_up_to = :high"), {"high": high})


def _table_exists(name: str) -> bool:
    return sa.inspect(op.get_bind()).has_table(name)


def downgrade() -> None:
    if online.server() is not Kind.SQLITE:
        return
    for name in [*FULL_TEXT_TRIGGERS, *FILLING_TRIGGERS]:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    for name in reversed(FULL_TEXT_TABLES):
        op.execute(f"DROP TABLE {name}")
    op.execute(f"DROP TABLE IF EXISTS {FILL}")
    op.execute(TRIGRAM_ROWS)
    for create in TRIGRAM_TRIGGERS.values():
        op.execute(create)
