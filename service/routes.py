"""The routes every resource has, made for its repository and schemas.

`POST /`, `GET /`, `GET /{key}` and `DELETE /{key}`: each makes one
repository call and renders its answer once, straight to JSON bytes. A
resource adds the routes only it has (items: PUT and PATCH) beside them.
"""

from collections.abc import Callable, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response, status
from pydantic import BaseModel
from sqlalchemy.engine import Connection

from service.auth import Access
from service.db.repository import Repository, Row
from service.fields import PageQuery
from service.http import (
    JSON_BODY,
    DatabaseDep,
    created,
    error_responses,
    json_response,
    no_content,
    page,
    query_parameters,
    query_parameters_openapi,
)


def key_in_path(name: str) -> Any:
    """A row's key in the paths of a resource called `name`, `{name}_id`:
    `Annotated[int, key_in_path(name)]`; an id out of range is a 404."""
    return Path(alias=f"{name}_id")


def add_collection_routes(
    router: APIRouter,
    repository: Repository,
    access: Access,
    *,
    name: str,
    read: type[Mapping[str, Any]],
    query: type[PageQuery],
    create: type[BaseModel],
    insert: Callable[[Connection, Row], Row] | None = None,
    create_errors: tuple[int, ...] = (),
    delete_errors: tuple[int, ...] = (),
) -> None:
    """Add to `router` (whose prefix is the collection's path) the create, list,
    read and delete routes of a resource called `name` ("item"): its key in
    paths is `{name}_id`. `access` says what reading and writing routes
    depend on. `insert` replaces `repository.insert` for creates that need
    more (see `Repository.create`)."""
    key_path = f"/{{{name}_id}}"
    Key = Annotated[int, key_in_path(name)]
    Query = Annotated[PageQuery, Depends(query_parameters(query))]

    @router.post(
        "/",
        name=f"create_{name}",
        status_code=status.HTTP_201_CREATED,
        response_model=read,
        dependencies=[*access.writes, *JSON_BODY],
        responses=error_responses(400, 413, 415, *create_errors, *access.write_errors),
    )
    async def create_row(data: create, database: DatabaseDep) -> Response:  # type: ignore[valid-type]
        row = await repository.create(database, data.model_dump(), insert)  # type: ignore[attr-defined]
        return created(repository.json(row), f"{router.prefix}/{row['id']}")

    @router.get(
        "/",
        name=f"list_{name}s",
        response_model=list[read],  # type: ignore[valid-type]
        dependencies=access.reads,
        responses=error_responses(*access.read_errors),
        openapi_extra=query_parameters_openapi(query),
    )
    async def list_rows(query: Query, database: DatabaseDep, request: Request) -> Response:
        rows = await repository.get_page(database, query)
        return page(repository.json_list(rows), request, rows, query.limit)

    @router.get(
        key_path,
        name=f"read_{name}",
        response_model=read,
        dependencies=access.reads,
        responses=error_responses(404, *access.read_errors),
    )
    async def read_row(key: Key, database: DatabaseDep) -> Response:
        return json_response(repository.json(await repository.get(database, key)))

    @router.delete(
        key_path,
        name=f"delete_{name}",
        status_code=status.HTTP_204_NO_CONTENT,
        dependencies=access.writes,
        responses=error_responses(404, *delete_errors, *access.write_errors),
    )
    async def delete_row(key: Key, database: DatabaseDep) -> Response:
        await repository.delete(database, key)
        return no_content()
