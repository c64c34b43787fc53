"""The engine factory: a URL and settings in, an Engine with what its backend needs out."""

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from service.db.backends import Backend, backend_for
from service.db.observed_pool import observed_pool_class
from service.db.observer import Observer
from service.db.urls import DatabaseURLError
from service.settings import Settings


def create_engine(url: URL, settings: Settings, *, autocommit: bool = False) -> Engine:
    return engine_for(backend_for(url, settings), autocommit=autocommit)


def engine_for(
    backend: Backend, *, autocommit: bool = False, observer: Observer | None = None
) -> Engine:
    """The engine for `backend`.

    `autocommit=True` is for the service, whose every write is one statement:
    each statement commits by itself, so no request pays for BEGIN and
    COMMIT or ROLLBACK round trips (a SQLite file's writer thread opens its
    own transactions, see `group_commit`). Migrations keep real transactions.
    """
    options = backend.engine_options()
    if autocommit:
        # Nothing is ever left open to roll back when a connection returns, and
        # mysqlclient would send each rollback() to the server: a round trip per request.
        options |= {
            "isolation_level": "AUTOCOMMIT",
            "pool_reset_on_return": None,
            "skip_autocommit_rollback": True,
        }
    if observer is not None and "pool_size" in options:
        options["poolclass"] = observed_pool_class(observer)
    try:
        engine = sa.create_engine(backend.url, echo=backend.settings.db_echo, **options)
    except ImportError:
        raise DatabaseURLError(
            f"The {backend.url.get_backend_name()} driver is not installed: "
            f"pip install -e '.[{backend.driver_extra}]' in the service's clone"
        ) from None
    backend.prepare(engine)
    return engine
