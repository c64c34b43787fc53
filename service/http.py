"""What every resource's routes share: the database, JSON in and out, query models, paging."""

from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

from fastapi import Depends, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.datastructures import URL

from service.db.runtime import Database

M = TypeVar("M", bound=BaseModel)


class Message(BaseModel):
    detail: str


async def get_database(request: Request) -> Database:
    return request.app.state.database  # type: ignore[no-any-return]


DatabaseDep = Annotated[Database, Depends(get_database)]


async def require_json(request: Request) -> None:
    content_type = request.headers.get("content-type", "")
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type != "application/json" and not (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail="Send the body as JSON with the header Content-Type: application/json",
        )


# For routes that take a body. 400: a body that is not even JSON text (not
# UTF-8); FastAPI refuses it before validation.
JSON_BODY = [Depends(require_json)]


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error answers a route can give, for the OpenAPI document."""
    return {code: {"model": Message} for code in codes}


def query_parameters(model: type[M]) -> Callable[[Request], Awaitable[M]]:
    """A dependency that validates the query parameters with `model` itself.

    Not declared as FastAPI's query-parameter model: FastAPI inspects each
    field's type for every request it extracts, a large part of a list's
    time in the process. Invalid parameters get FastAPI's own 422 answer; the OpenAPI
    document gets the parameters from `query_parameters_openapi`.
    """

    async def validated(request: Request) -> M:
        try:
            return model.model_validate(request.query_params)
        except ValidationError as error:
            details = error.errors(include_url=False)
            raise RequestValidationError(
                [{**detail, "loc": ("query", *detail["loc"])} for detail in details]
            ) from None

    return validated


def query_parameters_openapi(model: type[BaseModel]) -> dict[str, Any]:
    """What FastAPI would document for `model` as a query-parameter model:
    each field as a parameter, and its 422 answer (`HTTPValidationError` is in
    the document's components: routes with a body declare it)."""
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    parameters = []
    for name, field_schema in schema["properties"].items():
        parameter = {"name": name, "in": "query", "required": name in required}
        if "description" in field_schema:
            parameter["description"] = field_schema["description"]
        parameters.append(parameter | {"schema": field_schema})
    invalid = {"$ref": "#/components/schemas/HTTPValidationError"}
    return {
        "parameters": parameters,
        "responses": {
            "422": {
                "description": "Validation Error",
                "content": {"application/json": {"schema": invalid}},
            }
        },
    }


def json_response(
    body: bytes, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(body, status_code, headers, media_type="application/json")


def created(body: bytes, location: str) -> Response:
    return json_response(body, status.HTTP_201_CREATED, {"Location": location})


def no_content() -> Response:
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def page(body: bytes, request: Request, rows: Sequence[dict[str, Any]], limit: int) -> Response:
    """A list's response: when the page is full, a `Link` to the next one."""
    headers = {}
    if len(rows) == limit:
        headers["Link"] = f'<{next_page_url(request, rows[-1]["id"])}>; rel="next"'
    return json_response(body, headers=headers)


def next_page_url(request: Request, last_id: int) -> URL:
    """Keyset paging: the same filters, continuing after the last id returned.

    What Starlette's `remove_query_params("skip").include_query_params(...)`
    gives, in one pass over the parameters instead of a parse and two copies.
    """
    kept = [
        (name, value)
        for name, value in request.query_params.multi_items()
        if name not in ("skip", "after_id")
    ]
    return request.url.replace(query=urlencode([*kept, ("after_id", last_id)]))
