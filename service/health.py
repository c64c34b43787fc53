from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.engine import Engine

from service.db.runtime import Database
from service.errors import schema_not_served
from service.http import DatabaseDep, Message
from service.migrations import Revisions, current_revision

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
    """The database answers, and its schema is at this release's newest
    revision or at a newer one this release runs on.

    A database that does not answer is a 503 from the error handlers.
    """
    revisions: Revisions = request.app.state.revisions
    revision, problem, server = await database.run(_schema_and_server, database, revisions)
    if problem is not None:
        return schema_not_served(problem)
    return Readiness(status="ok", database=server, revision=revision)


def _schema_and_server(
    engine: Engine, database: Database, revisions: Revisions
) -> tuple[str | None, str | None, str]:
    with engine.connect() as connection:
        revision = current_revision(connection)
        problem = revisions.problem(connection, revision)
        return revision, problem, database.backend.server_name(connection)
