"""What the data layer raises for the HTTP layer to answer (`service.errors`)."""

from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.schema import ColumnCollectionConstraint

from service.db.backends import Broken, BrokenConstraint


class RowNotFound(Exception):
    """No row has the key asked for; `detail` says so in the resource's words."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ConstraintViolated(Exception):
    """A write broke a constraint of the schema.

    `constraint` is its name (None where the server's error did not say and
    the table could not tell); `referenced` is True when a row could not be
    deleted because another table's foreign key still refers to it; `values`
    are those the write sent, or the key of the row it deleted.
    """

    def __init__(self, constraint: str | None, *, referenced: bool, values: dict[str, Any]) -> None:
        super().__init__(constraint)
        self.constraint = constraint
        self.referenced = referenced
        self.values = values


def violation(
    table: sa.Table, broken: BrokenConstraint, values: dict[str, Any], *, deleting: bool
) -> ConstraintViolated:
    """What a write to `table` (a delete if `deleting`) broke, named as the schema names it."""
    name = broken.name or _constraint_named_by(table, broken, values, deleting)
    referenced = deleting and broken.broken is Broken.FOREIGN_KEY
    return ConstraintViolated(name, referenced=referenced, values=values)


def _constraint_named_by(
    table: sa.Table, broken: BrokenConstraint, values: dict[str, Any], deleting: bool
) -> str | None:
    """The name of the constraint an error describes without naming it (SQLite):
    a unique one by its columns; a foreign key by the write that broke it."""
    candidates: list[ColumnCollectionConstraint | sa.Index]
    if broken.broken is Broken.UNIQUE:
        unique = [
            *(c for c in table.constraints if isinstance(c, _UNIQUE_CONSTRAINTS)),
            *(index for index in table.indexes if index.unique),
        ]
        candidates = [
            constraint
            for constraint in unique
            if tuple(column.name for column in constraint.columns) == broken.columns
        ]
    elif broken.broken is Broken.FOREIGN_KEY and deleting:
        # The foreign keys of other tables that refer to this one and refuse
        # the delete (those that cascade or set null never do).
        candidates = [
            foreign_key.constraint
            for other in table.metadata.tables.values()
            for foreign_key in other.foreign_keys
            if foreign_key.column.table is table
            and foreign_key.constraint is not None
            and (foreign_key.ondelete or "RESTRICT").upper() in ("RESTRICT", "NO ACTION")
        ]
    elif broken.broken is Broken.FOREIGN_KEY:
        # This table's foreign keys on the columns written.
        candidates = [
            constraint
            for constraint in table.foreign_key_constraints
            if set(constraint.column_keys) & values.keys()
        ]
    else:
        candidates = []
    return str(candidates[0].name) if len(candidates) == 1 else None


_UNIQUE_CONSTRAINTS = (sa.UniqueConstraint, sa.PrimaryKeyConstraint)
