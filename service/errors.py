"""Database errors as HTTP answers: the one place that maps them."""

import logging
import math
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc
from starlette import routing

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = "5"

# Connection refused or lost, server restarting, pool exhausted, SQLite busy, and
# a missing table (schema not migrated: a ProgrammingError on PostgreSQL and MySQL).
UNAVAILABLE_ERRORS = (
    exc.OperationalError,
    exc.InterfaceError,
    exc.TimeoutError,
    exc.ProgrammingError,
)


def database_unavailable() -> JSONResponse:
    return JSONResponse(
        {"detail": "Database unavailable"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


def _json_safe(value: Any) -> Any:
    # json.loads accepts NaN, 1e400 and unpaired surrogates; echoed back in an
    # error they would not be valid JSON or UTF-8.
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    return value


async def _invalid(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    return JSONResponse(
        {"detail": _json_safe(jsonable_encoder(error.errors()))},
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


async def _conflict(request: Request, error: Exception) -> JSONResponse:
    # The only constraint a valid item can break is the unique sku.
    return JSONResponse(
        {"detail": "Another item already has this sku; skus must be unique"},
        status_code=status.HTTP_409_CONFLICT,
    )


async def _unavailable(request: Request, error: Exception) -> JSONResponse:
    # The error text can hold SQL and parameters: log only its kind.
    cause = getattr(error, "orig", None) or error
    logger.warning(
        "Database unavailable on %s %s: %s",
        request.method,
        request.url.path,
        type(cause).__name__,
    )
    return database_unavailable()


async def _method_not_allowed(request: Request, error: Exception) -> JSONResponse:
    # Starlette's Allow names only the first route matching the path; list every method it has.
    allowed = sorted(
        method
        for route in request.app.router.routes
        if isinstance(route, routing.Route) and route.methods
        and route.matches(request.scope)[0] != routing.Match.NONE
        for method in route.methods
    )  # fmt: skip
    return JSONResponse(
        {"detail": "Method Not Allowed"},
        status_code=status.HTTP_405_METHOD_NOT_ALLOWED,
        headers={"Allow": ", ".join(allowed)},
    )


def add_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(status.HTTP_405_METHOD_NOT_ALLOWED, _method_not_allowed)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(exc.IntegrityError, _conflict)
    for error in UNAVAILABLE_ERRORS:
        app.add_exception_handler(error, _unavailable)
