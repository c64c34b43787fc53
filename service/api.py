"""The HTTP routes: each resolves its inputs through dependencies and makes one crud call."""

from collections.abc import Iterator, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from sqlalchemy.orm import Session

from service import crud
from service.models import Item
from service.schemas import ItemCreate, ItemQuery, ItemRead, ItemUpdate, Message

# Ids are 32-bit on every backend; a larger one cannot exist.
MAX_ID = 2**31 - 1


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessionmaker() as session:
        yield session


# scope="function": the session, and its pooled connection, are released as soon
# as the handler returns, not after the response has been sent to a slow client.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_item_or_404(item_id: int, session: SessionDep) -> Item:
    item = crud.get_item(session, item_id) if 0 < item_id <= MAX_ID else None
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="Item not found")
    return item


ItemDep = Annotated[Item, Depends(get_item_or_404, scope="function")]


def require_json(request: Request) -> None:
    content_type = request.headers.get("content-type", "")
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type != "application/json" and not (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail="Send the body as JSON with the header Content-Type: application/json",
        )


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": Message} for code in codes}


# 400: a body that is not even JSON text (not UTF-8); FastAPI refuses it before validation.
router = APIRouter(prefix="/items", tags=["items"], responses=_errors(503))
json_body = [Depends(require_json)]


@router.post(
    "/",
    status_code=status.HTTP_201_CREATED,
    response_model=ItemRead,
    dependencies=json_body,
    responses=_errors(400, 409, 413, 415),
)
def create_item(data: ItemCreate, session: SessionDep, response: Response) -> Item:
    item = crud.create_item(session, data)
    response.headers["Location"] = f"/items/{item.id}"
    return item


@router.get("/", response_model=list[ItemRead])
def list_items(
    query: Annotated[ItemQuery, Query()], session: SessionDep, request: Request, response: Response
) -> Sequence[Item]:
    items = crud.list_items(session, query)
    if len(items) == query.limit:
        # Keyset paging: the same filters, continuing after the last id returned.
        next_url = request.url.remove_query_params("skip").include_query_params(
            after_id=items[-1].id
        )
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return items


@router.get("/{item_id}", response_model=ItemRead, responses=_errors(404))
def read_item(item: ItemDep) -> Item:
    return item


@router.put(
    "/{item_id}",
    response_model=ItemRead,
    dependencies=json_body,
    responses=_errors(400, 404, 409, 413, 415),
)
def replace_item(data: ItemCreate, item: ItemDep, session: SessionDep) -> Item:
    return crud.update_item(session, item, data.model_dump())


@router.patch(
    "/{item_id}",
    response_model=ItemRead,
    dependencies=json_body,
    responses=_errors(400, 404, 409, 413, 415),
)
def update_item(data: ItemUpdate, item: ItemDep, session: SessionDep) -> Item:
    return crud.update_item(session, item, data.model_dump(exclude_unset=True))


@router.delete("/{item_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_errors(404))
def delete_item(item: ItemDep, session: SessionDep) -> None:
    crud.delete_item(session, item)
