"""`/items/`: the routes every resource has, and PUT and PATCH."""

from typing import Annotated, Any

from fastapi import APIRouter, Response

from service.auth import Access
from service.http import JSON_BODY, DatabaseDep, error_responses, json_response
from service.items.repository import ITEMS
from service.items.schemas import ItemCreate, ItemQuery, ItemRead, ItemUpdate
from service.routes import add_collection_routes, key_in_path

ItemKey = Annotated[int, key_in_path("item")]


def items_router(access: Access) -> APIRouter:
    router = APIRouter(prefix="/items", tags=["items"], responses=error_responses(503))
    add_collection_routes(
        router,
        ITEMS,
        access,
        name="item",
        read=ItemRead,
        query=ItemQuery,
        create=ItemCreate,
        create_errors=(409,),
        # 409: the item has orders.
        delete_errors=(409,),
    )
    changes: dict[str, Any] = {
        "response_model": ItemRead,
        "dependencies": [*access.writes, *JSON_BODY],
        "responses": error_responses(400, 404, 409, 413, 415, *access.write_errors),
    }

    @router.put("/{item_id}", **changes)
    async def replace_item(item_id: ItemKey, data: ItemCreate, database: DatabaseDep) -> Response:
        item = await ITEMS.update(database, item_id, data.model_dump())
        return json_response(ITEMS.json(item))

    @router.patch("/{item_id}", **changes)
    async def update_item(item_id: ItemKey, data: ItemUpdate, database: DatabaseDep) -> Response:
        """Change only the fields sent; an empty body changes nothing."""
        item = await ITEMS.update(database, item_id, data.model_dump(exclude_unset=True))
        return json_response(ITEMS.json(item))

    return router
