from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.engine import Engine

from service.db.runtime import Database
from service.errors import schema_not_migrated
from service.http import DatabaseDep, Message
from service.migrations import current_revision

router = APIRouter(prefix="/health", tags=["health"])


class Status(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    database: str
    revision: str | None


@router.get("", response_model=Status)
async def health() -> Status:
    """The process is up. Does not touch the database."""
    return Status(status="ok")


@router.get("/ready", response_model=Readiness, responses={503: {"model": Message}})
async def ready(request: Request, database: DatabaseDep) -> Readiness | JSONResponse:
    """The database answers and its schema is at the newest revision.

    A database that does not answer is a 503 from the error handlers.
    """
    revision, server = await database.run(_revision_and_server, database)
    expected = request.app.state.head_revision
    if revision != expected:
        return schema_not_migrated(revision, expected)
    return Readiness(status="ok", database=server, revision=revision)


def _revision_and_server(engine: Engine, database: Database) -> tuple[str | None, str]:
    with engine.connect() as connection:
        return current_revision(connection), database.backend.server_name(connection)
