from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    PlainSerializer,
    StringConstraints,
    TypeAdapter,
    WithJsonSchema,
)
from typing_extensions import TypedDict

from service.models import DESCRIPTION_LENGTH, NAME_LENGTH, SKU_LENGTH


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


StorableText = Annotated[
    str,
    AfterValidator(_storable),
    # Documented, so that clients (and schema-driven tests) know NUL is refused.
    Field(json_schema_extra={"pattern": "^[^\\u0000]*$"}),
]
Name = Annotated[StorableText, StringConstraints(min_length=1, max_length=NAME_LENGTH)]
Description = Annotated[StorableText, StringConstraints(max_length=DESCRIPTION_LENGTH)]
Sku = Annotated[StorableText, StringConstraints(min_length=1, max_length=SKU_LENGTH)]
SearchText = Annotated[StorableText, StringConstraints(max_length=NAME_LENGTH)]

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


# Responses show times as UTC text with six fractional digits; crud reads them so.
Timestamp = Annotated[
    str,
    WithJsonSchema(
        {"type": "string", "format": "date-time", "example": "2026-01-31T12:00:00.000000Z"}
    ),
]
# Every price the API accepts is exact as a double, so 19.99 comes back as 19.99.
ShownPrice = Annotated[float, WithJsonSchema({"type": "number", "minimum": 0, "multipleOf": 0.01})]


class ItemCreate(BaseModel):
    name: Name
    description: Description | None = None
    price: Price
    sku: Sku | None = None


class ItemUpdate(BaseModel):
    """Only the fields sent are changed; `name` and `price` cannot be null."""

    name: Name = Field(default=None)  # type: ignore[assignment]
    description: Description | None = None
    price: Price = Field(default=None)  # type: ignore[assignment]
    sku: Sku | None = None


class ItemQuery(BaseModel):
    """Query parameters of `GET /items/`."""

    skip: int = Field(default=0, ge=0, le=2**31 - 1)
    limit: int = Field(default=100, ge=1, le=1000)
    after_id: int | None = Field(default=None, ge=0, le=2**31 - 1)
    q: SearchText | None = Field(
        default=None,
        description="Case-insensitive substring of `name`; `%`, `_`, `\\` are literal.",
    )
    min_price: Price | None = None
    max_price: Price | None = None


class Message(BaseModel):
    detail: str


class Status(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    database: str
    revision: str | None


# A TypedDict, not a model: rows from the database are rendered straight to
# JSON by its serializer, without being validated a second time, and without
# calling back into Python (crud reads each column in the form shown here).
class ItemRead(TypedDict):
    """An item as responses show it."""

    id: int
    name: str
    description: str | None
    price: ShownPrice
    sku: str | None
    created_at: Timestamp
    updated_at: Timestamp


_ITEM = TypeAdapter(ItemRead)
_ITEMS = TypeAdapter(list[ItemRead])


def item_json(item: dict[str, Any]) -> bytes:
    """The item as a response body, encoded in Rust; the crud layer gives exactly these keys."""
    return _ITEM.dump_json(item)  # type: ignore[arg-type]


def items_json(items: list[dict[str, Any]]) -> bytes:
    return _ITEMS.dump_json(items)  # type: ignore[arg-type]
