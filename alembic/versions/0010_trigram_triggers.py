"""Triggers keep the trigram table; the items already stored get their trigrams.

The database keeps the trigram table of revision 0009 by itself, by
triggers, on SQLite and MySQL/MariaDB: a create or rename is one statement,
and a write made outside the service is indexed too (PostgreSQL has pg_trgm
and keeps no trigram rows). Then the items already stored get their
trigrams, in batches, each committed alone: an item written meanwhile has
its trigrams from the triggers, and a rename waits for the batch that reads
the item.

A trigram is the three characters of the padded folded name (two \\x01
appended) starting at one of its positions, counted in characters; MySQL
compares them as bytes.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alembic import op
from service.db import online
from service.db.backends import Kind

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PAD = "\x01"
INSERT_IGNORING_DUPLICATES = {
    Kind.SQLITE: "INSERT OR IGNORE INTO item_name_trigrams (trigram, item_id) "
    "VALUES (:trigram, :item_id)",
    Kind.MYSQL: "INSERT IGNORE INTO item_name_trigrams (trigram, item_id) "
    "VALUES (:trigram, :item_id)",
}

SQLITE_TRIGGERS = {
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

# A rename loops over the positions of the old name, deleting each trigram
# the new name lacks, and of the new one, inserting each the old one lacked:
# each a lookup of the primary key. A trigram is held by a name when its
# bytes occur in the padded name: UTF-8 is self-synchronizing, so comparing
# bytes finds only whole characters.
MYSQL_UPDATE_TRIGGER = """
CREATE TRIGGER item_name_trigrams_update AFTER UPDATE ON items FOR EACH ROW
IF NOT (CAST(OLD.name_folded AS BINARY) <=> CAST(NEW.name_folded AS BINARY)) THEN BEGIN
    DECLARE n INT;
    DECLARE t VARBINARY(12);
    SET n = 1;
    WHILE n <= CHAR_LENGTH(OLD.name_folded) DO
        SET t = CAST(SUBSTRING(CONCAT(OLD.name_folded, _utf8mb4 X'0101'), n, 3) AS BINARY),
            n = n + 1;
        IF LOCATE(t, CAST(CONCAT(NEW.name_folded, _utf8mb4 X'0101') AS BINARY)) = 0 THEN
            DELETE FROM item_name_trigrams WHERE trigram = t AND item_id = OLD.id;
        END IF;
    END WHILE;
    SET n = 1;
    WHILE n <= CHAR_LENGTH(NEW.name_folded) DO
        SET t = CAST(SUBSTRING(CONCAT(NEW.name_folded, _utf8mb4 X'0101'), n, 3) AS BINARY),
            n = n + 1;
        IF LOCATE(t, CAST(CONCAT(OLD.name_folded, _utf8mb4 X'0101') AS BINARY)) = 0 THEN
            INSERT IGNORE INTO item_name_trigrams (trigram, item_id) VALUES (t, NEW.id);
        END IF;
    END WHILE;
END; END IF"""

MYSQL_TRIGGERS = {
    "item_name_trigrams_insert": """
CREATE TRIGGER item_name_trigrams_insert AFTER INSERT ON items FOR EACH ROW
INSERT IGNORE INTO item_name_trigrams (trigram, item_id)
WITH RECURSIVE positions (n) AS (
    SELECT 1 UNION ALL SELECT n + 1 FROM positions WHERE n < CHAR_LENGTH(NEW.name_folded)
)
SELECT DISTINCT CAST(SUBSTRING(CONCAT(NEW.name_folded, _utf8mb4 X'0101'), n, 3) AS BINARY),
    NEW.id
FROM positions WHERE n <= CHAR_LENGTH(NEW.name_folded)""",
    "item_name_trigrams_update": MYSQL_UPDATE_TRIGGER,
    "item_name_trigrams_delete": """
CREATE TRIGGER item_name_trigrams_delete AFTER DELETE ON items FOR EACH ROW
DELETE indexed FROM item_name_trigrams AS indexed JOIN (
    WITH RECURSIVE positions (n) AS (
        SELECT 1 UNION ALL SELECT n + 1 FROM positions WHERE n < CHAR_LENGTH(OLD.name_folded)
    )
    SELECT DISTINCT CAST(SUBSTRING(CONCAT(OLD.name_folded, _utf8mb4 X'0101'), n, 3) AS BINARY)
        AS trigram
    FROM positions WHERE n <= CHAR_LENGTH(OLD.name_folded)
) AS gone ON indexed.trigram = gone.trigram
WHERE indexed.item_id = OLD.id""",
}


def upgrade() -> None:
    match online.server():
        case Kind.POSTGRESQL:
            return
        case Kind.SQLITE:
            triggers = SQLITE_TRIGGERS
        case Kind.MYSQL:
            triggers = MYSQL_TRIGGERS
    for name, create in triggers.items():
        online.create_trigger(name, create)
    online.backfill(fill)


def fill(connection: Connection, low: int, high: int) -> None:
    """The trigrams of the items whose id is above `low` and at most `high`,
    as the triggers write them. The items are read locked until the batch
    commits (SQLite's batch holds the write lock): a rename waits for it, and
    its trigger then corrects what the batch wrote."""
    items = sa.table("items", sa.column("id"), sa.column("name_folded"))
    names = connection.execute(
        sa.select(items.c.id, items.c.name_folded)
        .where(items.c.id > low, items.c.id <= high)
        .with_for_update(read=True)
    ).all()
    rows = [
        {"trigram": trigram, "item_id": item_id}
        for item_id, name in names
        for trigram in {name[n : n + 3].ljust(3, PAD) for n in range(len(name))}
    ]
    if rows:
        connection.execute(sa.text(INSERT_IGNORING_DUPLICATES[online.server()]), rows)


def downgrade() -> None:
    if online.server() is Kind.POSTGRESQL:
        return
    for name in SQLITE_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
