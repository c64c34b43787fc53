from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints
from typing_extensions import TypedDict

from service.fields import NO_NUL, STORABLE, Money, PageQuery, Price, Timestamp
from service.items.models import DESCRIPTION_LENGTH, NAME_LENGTH, SKU_LENGTH

Name = Annotated[str, StringConstraints(min_length=1, max_length=NAME_LENGTH), STORABLE, NO_NUL]
Description = Annotated[str, StringConstraints(max_length=DESCRIPTION_LENGTH), STORABLE, NO_NUL]
Sku = Annotated[str, StringConstraints(min_length=1, max_length=SKU_LENGTH), STORABLE, NO_NUL]
SearchText = Annotated[str, StringConstraints(max_length=NAME_LENGTH), STORABLE, NO_NUL]


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


class ItemQuery(PageQuery):
    """Query parameters of `GET /items/`."""

    skip: int = Field(default=0, ge=0, le=2**31 - 1)
    q: SearchText | None = Field(
        default=None,
        description="Case-insensitive substring of `name`; `%`, `_`, `\\` are literal.",
    )
    min_price: Price | None = None
    max_price: Price | None = None


# A TypedDict, not a model: rows from the database are rendered straight to
# JSON by its serializer, without being validated a second time, and without
# calling back into Python (the repository reads each column in this form).
class ItemRead(TypedDict):
    """An item as responses show it."""

    id: int
    name: str
    description: str | None
    price: Money
    sku: str | None
    created_at: Timestamp
    updated_at: Timestamp
