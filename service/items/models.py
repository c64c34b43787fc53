from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from service.db.model import TABLE_OPTIONS, TEXT_OPTIONS, Base, utcnow
from service.db.types import ExactString, UTCDateTime

NAME_LENGTH = 255
DESCRIPTION_LENGTH = 2000
SKU_LENGTH = 64
# str.casefold() turns one character into at most three ("ﬃ" -> "ffi").
NAME_FOLDED_LENGTH = 3 * NAME_LENGTH
# On PostgreSQL, the function whose GIN index finds a name's one- and
# two-character texts (revision 0009; `service.db.search.ShortTextIndexed`).
NAME_GRAMS = "item_name_grams"
# On SQLite, the FTS5 table of `name_folded`'s trigrams, and its triggers
# `<NAME_FULL_TEXT>_insert`, `_update` and `_delete` (revision 0012).
NAME_FULL_TEXT = "item_name_fts"


def fold_case(text: str) -> str:
    """The one definition of case-insensitive search, computed in Python for every backend."""
    return text.casefold()


class Item(Base):
    __tablename__ = "items"
    __table_args__ = (
        sa.CheckConstraint("price >= 0", name="price_not_negative"),
        TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(NAME_LENGTH))
    # Case-folded copy of `name` (the repository keeps it in step) that `q`
    # searches with a plain LIKE, so case-insensitivity does not depend on
    # collations or locales.
    name_folded: Mapped[str] = mapped_column(sa.String(NAME_FOLDED_LENGTH))
    description: Mapped[str | None] = mapped_column(sa.String(DESCRIPTION_LENGTH))
    price: Mapped[Decimal] = mapped_column(sa.Numeric(12, 2), index=True)
    sku: Mapped[str | None] = mapped_column(ExactString(SKU_LENGTH), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class ItemNameTrigram(Base):
    """The trigrams of each item's `name_folded`, so that `q` is answered from an
    index where the backend has none of its own (`service.db.search`); empty
    on PostgreSQL, where pg_trgm and the index on `NAME_GRAMS` answer it, and
    on SQLite, where FTS5 holds them (`NAME_FULL_TEXT`)."""

    __tablename__ = "item_name_trigrams"
    # Stored in (trigram, item_id) order, as searches walk it. No foreign key:
    # triggers (revisions 0010, 0011) keep the rows in step with the item's name.
    __table_args__ = (TEXT_OPTIONS | {"sqlite_with_rowid": False},)

    trigram: Mapped[str] = mapped_column(ExactString(3), primary_key=True)
    item_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
