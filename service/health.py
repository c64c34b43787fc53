from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine

from service.api import DatabaseDep
from service.database import backend_name
from service.errors import UNAVAILABLE_ERRORS, database_unavailable
from service.migrations import current_revision
from service.schemas import Message, Readiness, Status

router = APIRouter(prefix="/health", tags=["health"])


@router.get("", response_model=Status)
async def health() -> Status:
    """The process is up. Does not touch the database."""
    return Status(status="ok")


@router.get("/ready", response_model=Readiness, responses={503: {"model": Message}})
async def ready(request: Request, database: DatabaseDep) -> Readiness | JSONResponse:
    """The database answers and its schema is at the newest revision."""
    try:
        revision, backend = await database.run(_revision_and_backend)
    except UNAVAILABLE_ERRORS:
        return database_unavailable()
    expected = request.app.state.head_revision
    if revision != expected:
        return JSONResponse(
            {
                "detail": f"Database schema is at revision {revision}, expected {expected}: "
                "run `alembic upgrade head` or start with MIGRATE_ON_START=true"
            },
            status_code=503,
        )
    return Readiness(status="ok", database=backend, revision=revision)


def _revision_and_backend(engine: Engine) -> tuple[str | None, str]:
    with engine.connect() as connection:
        return current_revision(connection), backend_name(connection)
