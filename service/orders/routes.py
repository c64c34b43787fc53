"""`/orders/`: the routes every resource has; an order is placed at its item's price."""

from fastapi import APIRouter

from service.auth import Access
from service.http import error_responses
from service.orders.repository import ORDERS, place
from service.orders.schemas import OrderCreate, OrderQuery, OrderRead
from service.routes import add_collection_routes


def orders_router(access: Access) -> APIRouter:
    router = APIRouter(prefix="/orders", tags=["orders"], responses=error_responses(503))
    add_collection_routes(
        router,
        ORDERS,
        access,
        name="order",
        read=OrderRead,
        query=OrderQuery,
        create=OrderCreate,
        insert=place,
    )
    return router
