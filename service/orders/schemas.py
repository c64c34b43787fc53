from typing import Annotated

from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from service.fields import Id, Money, PageQuery, Timestamp
from service.orders.models import MAX_QUANTITY


class OrderCreate(BaseModel):
    item_id: Id
    quantity: Annotated[int, Field(ge=1, le=MAX_QUANTITY)]


class OrderQuery(PageQuery):
    """Query parameters of `GET /orders/`."""

    item_id: Id | None = Field(default=None, description="Only the orders of this item.")


class OrderRead(TypedDict):
    """An order as responses show it."""

    id: int
    item_id: int
    quantity: int
    unit_price: Money
    total: Money
    created_at: Timestamp
