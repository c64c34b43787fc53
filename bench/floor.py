"""The floor: the same endpoints and JSON shapes as the service, without a database.

Served two ways: `uvicorn bench.floor:app` (floor a, tutorial defaults) and
`python -m bench.floor` (floor b, whatever server settings `python -m service` uses, its
start-up step for the garbage collector, and its pinning to one CPU).
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel


class ItemIn(BaseModel):
    name: str
    description: str | None = None
    price: float
    sku: str | None = None


class ItemPatch(BaseModel):
    name: str | None = None
    description: str | None = None
    price: float | None = None
    sku: str | None = None


class ItemOut(BaseModel):
    id: int
    name: str
    description: str | None
    price: float
    sku: str | None
    created_at: datetime
    updated_at: datetime


class OrderOut(BaseModel):
    id: int
    item_id: int
    quantity: int
    unit_price: float
    total: float
    created_at: datetime


NOW = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)


def _item(number: int) -> dict[str, Any]:
    return {
        "id": number,
        "name": f"Blue Widget {number}",
        "description": f"Benchmark item number {number}",
        "price": 19.99,
        "sku": f"BENCH-{number}",
        "created_at": NOW,
        "updated_at": NOW,
    }


def _order(number: int) -> dict[str, Any]:
    return {
        "id": number,
        "item_id": number,
        "quantity": 3,
        "unit_price": 19.99,
        "total": 59.97,
        "created_at": NOW,
    }


ITEM = _item(1)
PAGE = [_item(n) for n in range(1, 101)]
ORDER = _order(1)
ORDERS_PAGE = [_order(n) for n in range(1, 101)]

app = FastAPI()


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/items/", response_model=list[ItemOut])
def list_items(skip: int = 0, limit: int = 100, q: str | None = None) -> Any:
    return PAGE


@app.get("/items/{item_id}", response_model=ItemOut)
def read_item(item_id: int) -> Any:
    return ITEM


@app.post("/items/", response_model=ItemOut, status_code=201)
def create_item(item: ItemIn) -> Any:
    return ITEM


@app.patch("/items/{item_id}", response_model=ItemOut)
def update_item(item_id: int, item: ItemPatch) -> Any:
    return ITEM


@app.get("/orders/", response_model=list[OrderOut])
def list_orders(limit: int = 100, item_id: int | None = None) -> Any:
    return ORDERS_PAGE


@app.get("/orders/{order_id}", response_model=OrderOut)
def read_order(order_id: int) -> Any:
    return ORDER


def service_server_settings() -> dict[str, Any]:
    """The keyword arguments `python -m service` passes to uvicorn.run, read by running it."""
    from service import __main__ as service_main

    env = {"DATABASE_URL": "sqlite://", "MIGRATE_ON_START": "false"}
    with mock.patch.dict(os.environ, env), mock.patch.object(uvicorn, "run") as run:
        service_main.main()
    return dict(run.call_args.kwargs)


def app_with_service_start_up() -> FastAPI:
    """The floor app, freezing its start-up objects as the service does (floor b)."""
    # Imported here: floor a, the tutorial's app, must not load the service.
    from service.app import freeze_startup_objects

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        freeze_startup_objects()
        yield

    app.router.lifespan_context = lifespan
    return app


def main() -> None:
    from service.__main__ import pin_to_one_cpu

    settings = service_server_settings() | {"factory": True}
    if settings["workers"] == 1:
        pin_to_one_cpu()
    uvicorn.run("bench.floor:app_with_service_start_up", **settings)


if __name__ == "__main__":
    main()
