from datetime import UTC, datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from service.column_types import ExactString, UTCDateTime

# Constraint and index names fixed here come out the same on every backend,
# so migrations can name what they drop.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

NAME_LENGTH = 255
DESCRIPTION_LENGTH = 2000
SKU_LENGTH = 64
# str.casefold() turns one character into at most three ("ﬃ" -> "ffi").
NAME_FOLDED_LENGTH = 3 * NAME_LENGTH


def utcnow() -> datetime:
    return datetime.now(UTC)


def fold_case(text: str) -> str:
    """The one definition of case-insensitive search, computed in Python for every backend."""
    return text.casefold()


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class Item(Base):
    __tablename__ = "items"
    __table_args__ = (
        sa.CheckConstraint("price >= 0", name="price_not_negative"),
        {
            # Ids are never reused after a delete, as on PostgreSQL and MySQL.
            "sqlite_autoincrement": True,
            # 4-byte characters, and comparisons that see case and accents.
            "mysql_charset": "utf8mb4",
            "mysql_collate": "utf8mb4_bin",
        },
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(NAME_LENGTH))
    # Case-folded copy of `name` (crud keeps it in step) that `q` searches with a
    # plain LIKE, so case-insensitivity does not depend on collations or locales.
    name_folded: Mapped[str] = mapped_column(sa.String(NAME_FOLDED_LENGTH))
    description: Mapped[str | None] = mapped_column(sa.String(DESCRIPTION_LENGTH))
    price: Mapped[Decimal] = mapped_column(sa.Numeric(12, 2), index=True)
    sku: Mapped[str | None] = mapped_column(ExactString(SKU_LENGTH), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
