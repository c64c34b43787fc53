from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

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
def ready(request: Request) -> Readiness | JSONResponse:
    """The database answers and its schema is at the newest revision."""
    engine = request.app.state.engine
    try:
        with engine.connect() as connection:
            revision = current_revision(connection)
            backend = backend_name(connection)
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
