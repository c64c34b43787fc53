import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from service import health
from service.auth import access
from service.body_limit import BodyLimit
from service.cors import allow_origins
from service.db.observer import NO_OBSERVER
from service.db.runtime import Database
from service.db.urls import parse_database_url
from service.errors import ConstraintAnswers, add_error_handlers
from service.items import repository as items
from service.items.routes import items_router
from service.migrations import Revisions, upgrade_to_head
from service.orders import repository as orders
from service.orders.routes import orders_router
from service.overload import MaxQueueTime
from service.settings import Settings, load_settings
from service.telemetry.middleware import Telemetry

# Bodies are refused above this many bytes, declared or streamed, before parsing.
MAX_BODY_BYTES = 1_048_576

# Every resource's routes, and its answers to the constraints it declares.
ROUTERS = (items_router, orders_router)
CONSTRAINT_ANSWERS: ConstraintAnswers = items.ANSWERS | orders.ANSWERS


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. The engine is made at start-up and disposed at shutdown.

    The URL and the tokens are checked here, so that bad settings fail before serving.
    """
    settings = settings or load_settings()
    url = parse_database_url(settings.database_url.get_secret_value())
    routers = [router(access(settings)) for router in ROUTERS]
    metrics = None
    if settings.metrics:
        # Imported only then: with metrics off, none of it loads.
        from service.telemetry.metrics import Metrics, scrape  # noqa: PLC0415

        metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = Database(url, settings, metrics or NO_OBSERVER)
        try:
            if settings.migrate_on_start and database.backend.database_lives_in_engine:
                # `python -m service` migrates before serving; a database that
                # lives only in this engine (`sqlite://`) is migrated here, on it.
                await asyncio.to_thread(upgrade_to_head, database.engine)
            app.state.database = database
            app.state.revisions = Revisions.load()
            if metrics is not None:
                metrics.watch(database)
            freeze_startup_objects()
            yield
        finally:
            if metrics is not None:
                metrics.stop()
            database.close()

    # FastAPIOffline serves Swagger UI and ReDoc from its own package: /docs works offline.
    app = FastAPIOffline(
        title="Items service",
        summary="Items stored in SQLite, PostgreSQL or MySQL/MariaDB: one DATABASE_URL away.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimit, max_body_size=MAX_BODY_BYTES)
    if settings.max_queue_seconds is not None:
        # Before the rest: a request refused for its wait costs the least.
        app.add_middleware(
            MaxQueueTime, seconds=settings.max_queue_seconds, observer=metrics or NO_OBSERVER
        )
    allow_origins(app, settings.cors_origins)
    # Last, so that it is outermost of them: it times and names every answer.
    app.add_middleware(Telemetry, access_log=settings.access_log, metrics=metrics)
    add_error_handlers(app, CONSTRAINT_ANSWERS)
    # The routes join the app's own router instead of being included as
    # sub-routers, which FastAPI matches twice per request. They go first:
    # routes are matched in order, and the five docs routes need not be tried
    # before every resource request.
    resource_routes = [route for router in (*routers, health.router) for route in router.routes]
    app.router.routes[:0] = resource_routes
    if metrics is not None:
        app.state.metrics = metrics
        app.add_api_route("/metrics", scrape, methods=["GET"], include_in_schema=False)
    return app


def freeze_startup_objects() -> None:
    """Leave everything alive after start-up out of garbage collection from now on.

    Under load, the objects of requests in flight outlive two young
    collections, and Python then makes full ones, often: each would walk all
    of FastAPI, pydantic and SQLAlchemy, collect nothing, and hold up every
    request in flight. With those frozen, a full collection walks only what
    requests made.
    """
    gc.collect()
    gc.freeze()
