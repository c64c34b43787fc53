"""What the data layer raises for the HTTP layer to answer (`service.errors`)."""

from typing import Any


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
