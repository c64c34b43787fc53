"""Errors as HTTP answers: the one place that maps them.

A database error is answered by what it means (`ErrorKind`, read by the
backend): an outage is a 503 that clients may retry, a schema that is not
migrated a 503 that says so, a broken constraint the answer its resource
declares (`ConstraintAnswers`), and anything else a bug: logged with its
traceback and answered 500, never disguised as an outage that clients would
retry forever.
"""

import logging
import math
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc
from sqlalchemy.engine import Engine
from starlette import routing

from service.db.backends import ErrorKind
from service.db.errors import ConstraintViolated, RowNotFound
from service.migrations import Revisions, current_revision
from service.overload import Overloaded, overloaded

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = "5"


@dataclass(frozen=True)
class Answer:
    """The HTTP answer to a broken constraint: `detail` is formatted with the
    values written (`{item_id}`); a 422 names `field`, as validation errors do."""

    status: int
    detail: str
    field: str | None = None


@dataclass(frozen=True)
class ForeignKeyAnswers:
    """A foreign key breaks two ways: the row it refers to is missing, or a row
    still referred to is being deleted."""

    missing: Answer
    referenced: Answer


# Each resource's answers, by the name of the constraint.
ConstraintAnswers = dict[str, Answer | ForeignKeyAnswers]


def database_unavailable() -> JSONResponse:
    return JSONResponse(
        {"detail": "Database unavailable"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


def schema_not_served(problem: str) -> JSONResponse:
    return JSONResponse(
        {"detail": problem},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


def add_error_handlers(app: FastAPI, answers: ConstraintAnswers) -> None:
    async def constraint_violated(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ConstraintViolated)
        answer = answers.get(error.constraint or "")
        if isinstance(answer, ForeignKeyAnswers):
            answer = answer.referenced if error.referenced else answer.missing
        if answer is None:
            return _bug(request, error)
        return _answer(answer, error.values)

    app.add_exception_handler(status.HTTP_405_METHOD_NOT_ALLOWED, _method_not_allowed)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(RowNotFound, _not_found)
    app.add_exception_handler(ConstraintViolated, constraint_violated)
    app.add_exception_handler(exc.DBAPIError, _database_error)
    # No connection came free within DB_POOL_TIMEOUT.
    app.add_exception_handler(exc.TimeoutError, _unavailable)
    # The request waited past MAX_QUEUE_SECONDS for a worker thread.
    app.add_exception_handler(Overloaded, _overloaded)


def _answer(answer: Answer, values: dict[str, Any]) -> JSONResponse:
    detail = answer.detail.format(**values)
    if answer.field is None:
        return JSONResponse({"detail": detail}, status_code=answer.status)
    # Shaped as FastAPI's validation errors, so that clients read both alike.
    error = {
        "type": "invalid_reference",
        "loc": ["body", answer.field],
        "msg": detail,
        "input": values.get(answer.field),
    }
    return JSONResponse({"detail": [error]}, status_code=answer.status)


async def _database_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, exc.DBAPIError)
    database = request.app.state.database
    kind = database.error_kind(error)
    if kind in (ErrorKind.UNAVAILABLE, ErrorKind.RETRYABLE):
        return await _unavailable(request, error)
    if kind is ErrorKind.SCHEMA:
        revisions: Revisions = request.app.state.revisions
        try:
            problem = await database.run(schema_problem, revisions)
        except (exc.DBAPIError, Overloaded):
            return await _unavailable(request, error)
        if problem is None:  # migrated meanwhile
            return await _unavailable(request, error)
        database.observer.answered_unavailable("schema")
        return schema_not_served(problem)
    return _bug(request, error)


def schema_problem(engine: Engine, revisions: Revisions) -> str | None:
    """Why this release cannot serve the schema; None if it can."""
    with engine.connect() as connection:
        return revisions.problem(connection, current_revision(connection))


async def _overloaded(request: Request, error: Exception) -> JSONResponse:
    request.app.state.database.observer.answered_unavailable("overloaded")
    return overloaded()


async def _unavailable(request: Request, error: Exception) -> JSONResponse:
    # The error's text can hold SQL and parameters: log only its kind and code.
    cause = getattr(error, "orig", None) or error
    code = _server_code(cause)
    timed_out = isinstance(error, exc.TimeoutError)
    request.app.state.database.observer.answered_unavailable(
        "pool_timeout" if timed_out else "database_unavailable"
    )
    logger.warning(
        "Database unavailable on %s %s: %s%s",
        request.method,
        request.url.path,
        type(cause).__name__,
        f" ({code})" if code else "",
    )
    return database_unavailable()


def _server_code(error: BaseException) -> str | None:
    """The code a driver's exception carries: PostgreSQL's SQLSTATE, MySQL's
    error number, SQLite's result code name."""
    for attribute in ("pgcode", "sqlite_errorname"):
        if code := getattr(error, attribute, None):
            return str(code)
    arguments = getattr(error, "args", ())
    return str(arguments[0]) if arguments and isinstance(arguments[0], int) else None


def _bug(request: Request, error: Exception) -> JSONResponse:
    logger.error(
        "Unexpected database error on %s %s", request.method, request.url.path, exc_info=error
    )
    return JSONResponse(
        {"detail": "Internal Server Error"}, status_code=status.HTTP_500_INTERNAL_SERVER_ERROR
    )


async def _not_found(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RowNotFound)
    return JSONResponse({"detail": error.detail}, status_code=status.HTTP_404_NOT_FOUND)


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
