"""Create the orders table: an item bought in some quantity, at its price of the moment.

The foreign key is ON DELETE RESTRICT: an item that has orders cannot be
deleted. On PostgreSQL it is added NOT VALID and validated after, so that
`items` is locked against writes only for as long as the key takes to add.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op
from service.db import online
from service.db.backends import Kind
from service.db.types import UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FOREIGN_KEY = "fk_orders_item_id_items"


def upgrade() -> None:
    postgresql = online.server() is Kind.POSTGRESQL
    foreign_key = sa.ForeignKeyConstraint(
        ["item_id"], ["items.id"], name=FOREIGN_KEY, ondelete="RESTRICT"
    )
    op.create_table(
        "orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("total", sa.Numeric(precision=15, scale=2), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "quantity BETWEEN 1 AND 10000", name=op.f("ck_orders_quantity_in_range")
        ),
        *([] if postgresql else [foreign_key]),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sqlite_autoincrement=True,
        # Under both names SQLAlchemy gives MySQL's dialect (mysql://, mariadb://).
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
        mariadb_charset="utf8mb4",
        mariadb_collate="utf8mb4_bin",
        if_not_exists=True,
    )
    if not online.index_exists("orders", "ix_orders_item_id"):
        op.create_index("ix_orders_item_id", "orders", ["item_id", "id"])
    if postgresql:
        if not online.foreign_key_exists("orders", FOREIGN_KEY):
            op.execute(
                f"ALTER TABLE orders ADD CONSTRAINT {FOREIGN_KEY} FOREIGN KEY (item_id) "
                "REFERENCES items (id) ON DELETE RESTRICT NOT VALID"
            )
        with online.statements_commit_alone():
            op.execute(f"ALTER TABLE orders VALIDATE CONSTRAINT {FOREIGN_KEY}")


def downgrade() -> None:
    # With its indexes: MySQL refuses to drop the foreign key's index on its own.
    op.drop_table("orders")
