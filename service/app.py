import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from service import api, crud, health
from service.batched_reads import BatchedReads
from service.body_limit import BodyLimit
from service.database import Database, create_engine, parse_database_url, worker_threads
from service.errors import add_error_handlers
from service.migrations import head_revision
from service.settings import Settings

# Bodies are refused above this many bytes, declared or streamed, before parsing.
MAX_BODY_BYTES = 1_048_576


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. The engine is made at start-up and disposed at shutdown.

    The URL is checked here, so a bad `DATABASE_URL` fails before serving.
    """
    settings = settings or Settings()
    url = parse_database_url(settings.database_url.get_secret_value())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(url, settings, autocommit=True)
        database = Database(engine, worker_threads(url, settings))
        try:
            app.state.database = database
            app.state.item_reads = BatchedReads(database, crud.get_items)
            app.state.head_revision = head_revision()
            freeze_startup_objects()
            yield
        finally:
            database.close()

    # FastAPIOffline serves Swagger UI and ReDoc from its own package: /docs works offline.
    app = FastAPIOffline(
        title="Items service",
        summary="Items stored in SQLite, PostgreSQL or MySQL/MariaDB: one DATABASE_URL away.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimit, max_body_size=MAX_BODY_BYTES)
    add_error_handlers(app)
    # The routes join the app's own router instead of being included as
    # sub-routers, which FastAPI matches twice per request: get-one +9%. They
    # go first: routes are matched in order, and the five docs routes need
    # not be tried before every item request.
    app.router.routes[:0] = [*api.router.routes, *health.router.routes]
    return app


def freeze_startup_objects() -> None:
    """Leave everything alive after start-up out of garbage collection from now on.

    Under load, the objects of requests in flight outlive two young
    collections, and Python then makes a full one, every second or so: each
    walked all of FastAPI, pydantic and SQLAlchemy for 75-85 ms, collected
    nothing, and held up every request in flight (get-one p99 88 ms against a
    p50 of 13 ms). With those frozen, a full collection takes under 1 ms.
    """
    gc.collect()
    gc.freeze()
