"""MySQL/MariaDB's rename trigger becomes a loop over the names' positions.

MySQL/MariaDB's trigger that follows a rename in the trigram table becomes a
loop over the positions of the old and new name, each trigram deleted or
inserted by its primary key: the same rows as the statements it replaces,
which built a temporary table each, for about two thirds of the server's
CPU per rename. SQLite and PostgreSQL are unchanged.

Revision 0010 makes this trigger already; a database made by an earlier
0010 has the statements. The new trigger is made beside the old one before
the old one goes, so that every rename meanwhile is followed (two triggers
that write the same rows leave them as one does). The downgrade keeps it:
revision 0010 with this trigger keeps the same rows.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op
from service.db import online
from service.db.backends import Kind

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPDATE_TRIGGER = "item_name_trigrams_update"
# Beside the old trigger while the new one replaces it.
NEXT_TRIGGER = "item_name_trigrams_update_next"

UPDATE_TRIGGER_SQL = """
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


def upgrade() -> None:
    if online.server() is not Kind.MYSQL:
        return
    # Each statement here locks `items` (on Galera, on every node): none runs
    # that has nothing to do.
    if not _is_a_loop():
        next_trigger = UPDATE_TRIGGER_SQL.replace(UPDATE_TRIGGER, NEXT_TRIGGER, 1)
        online.create_trigger(NEXT_TRIGGER, next_trigger)
        online.briefly(f"DROP TRIGGER IF EXISTS {UPDATE_TRIGGER}")
        online.briefly(UPDATE_TRIGGER_SQL)
    if online.trigger_exists(NEXT_TRIGGER):
        online.briefly(f"DROP TRIGGER {NEXT_TRIGGER}")


def _is_a_loop() -> bool:
    if op.get_context().as_sql:
        return False
    body = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT ACTION_STATEMENT FROM information_schema.TRIGGERS "
                "WHERE TRIGGER_SCHEMA = DATABASE() AND TRIGGER_NAME = :name"
            ),
            {"name": UPDATE_TRIGGER},
        )
        .scalar()
    )
    return body is not None and "WHILE" in body


def downgrade() -> None:
    pass
