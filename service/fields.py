"""Field types the resources' schemas share: text every backend stores alike,
exact money, times as responses show them, and the paging every list takes."""

from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, PlainSerializer, WithJsonSchema

from service.db.repository import MAX_ID


def _storable(text: str) -> str:
    # PostgreSQL cannot store NUL, and no backend can store half of a surrogate
    # pair: refuse both everywhere so every backend answers alike.
    if "\x00" in text:
        raise ValueError("must not contain NUL (\\u0000) characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no unpaired surrogates)") from None
    return text


# After a string's length constraints, so that their errors speak of characters:
# `Annotated[str, StringConstraints(...), STORABLE, NO_NUL]`.
STORABLE = AfterValidator(_storable)
# Documented, so that clients (and schema-driven tests) know NUL is refused.
NO_NUL = Field(json_schema_extra={"pattern": "^[^\\u0000]*$"})

# Exact on the way in, a JSON number on the way out: every price below 10^9 with
# two decimals is exact as a double, so 19.99 comes back as 19.99.
Price = Annotated[
    Decimal,
    Field(ge=0, lt=1_000_000_000, decimal_places=2, allow_inf_nan=False),
    PlainSerializer(float, return_type=float, when_used="json"),
    # Pydantic documents a Decimal as "number or any string": say what a price is.
    WithJsonSchema(
        {"type": "number", "minimum": 0, "exclusiveMaximum": 1_000_000_000, "multipleOf": 0.01},
        mode="validation",
    ),
]
# An amount as responses show it: a double, exact for every amount of at most
# 15 significant digits, which every price and order total is.
Money = Annotated[float, WithJsonSchema({"type": "number", "minimum": 0, "multipleOf": 0.01})]
# UTC text with six fractional digits, as the repository reads it.
Timestamp = Annotated[
    str,
    WithJsonSchema(
        {"type": "string", "format": "date-time", "example": "2026-01-31T12:00:00.000000Z"}
    ),
]
# A key that can exist: ids are 32-bit on every backend.
Id = Annotated[int, Field(ge=1, le=MAX_ID)]


class PageQuery(BaseModel):
    """The paging every list takes: ordered by id, a page at a time."""

    limit: int = Field(default=100, ge=1, le=1000)
    after_id: int | None = Field(
        default=None, ge=0, le=MAX_ID, description="Return rows with an id greater than this."
    )
