"""One suite for every backend: TEST_BACKEND (set by tox) picks the database.

Each run creates its own databases on the server and drops them afterwards,
and every test starts from an empty items table, so assertions are exact.
"""

import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.config import Config
from fastapi.testclient import TestClient
from sqlalchemy.engine import URL

from service import migrations
from service.app import create_app
from service.db.engine import create_engine
from service.db.urls import parse_database_url
from service.models import Item, Order
from service.settings import Settings

BACKEND = os.environ.get("TEST_BACKEND", "sqlite")

# Backend -> (variable naming the server, default for this machine's server, how to start it)
SERVERS = {
    "postgresql": (
        "TEST_POSTGRES_URL",
        "postgresql://postgres@127.0.0.1:5432/postgres",
        "pg_ctlcluster 15 main start (or: docker compose -f compose/compose.yaml up -d postgres)",
    ),
    "mysql": (
        "TEST_MYSQL_URL",
        "mysql://root@127.0.0.1:3306/test",
        "start-stop-daemon --start --background --exec $(command -v mariadbd) "
        "(or: docker compose -f compose/compose.yaml up -d mysql)",
    ),
}


def settings_for(url: str, **overrides: object) -> Settings:
    return Settings(_env_file=None, database_url=url, **overrides)  # type: ignore[call-arg]


def server_url() -> URL:
    variable, default, _ = SERVERS[BACKEND]
    return parse_database_url(os.environ.get(variable, default))


@contextmanager
def sqlite_write_lock_held(path: str | Path) -> Iterator[None]:
    """Another connection holds the SQLite file's write lock until the block ends."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("COMMIT")
        other.close()


@contextmanager
def temporary_database(tmp_path: Path, label: str) -> Iterator[str]:
    """A new, empty database; dropped afterwards."""
    if BACKEND == "sqlite":
        yield f"sqlite:///{tmp_path / label}.db"
        return
    variable, _, how_to_start = SERVERS[BACKEND]
    server = server_url()
    name = f"items_test_{label}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE {name}")
    except sa.exc.OperationalError as error:
        admin.dispose()
        pytest.exit(
            f"{BACKEND} at {server.render_as_string()} is not reachable ({error.orig}). "
            f"Start it: {how_to_start}; or point {variable} at a server.",
            returncode=3,
        )
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            force = " WITH (FORCE)" if BACKEND == "postgresql" else ""
            connection.exec_driver_sql(f"DROP DATABASE {name}{force}")
        admin.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The session's database, migrated to the newest revision."""
    with temporary_database(tmp_path_factory.mktemp("db"), "app") as url:
        engine = create_engine(parse_database_url(url), settings_for(url))
        migrations.upgrade_to_head(engine)
        engine.dispose()
        yield url


@pytest.fixture
def empty_database(tmp_path: Path) -> Iterator[str]:
    """A database of its own for one test, with no tables at all."""
    with temporary_database(tmp_path, "empty") as url:
        yield url


@pytest.fixture(scope="session")
def session_client(database_url: str) -> Iterator[TestClient]:
    app = create_app(settings_for(database_url, migrate_on_start=False))
    with TestClient(app) as client:
        yield client


@pytest.fixture
def client(session_client: TestClient) -> TestClient:
    """The app, on a database whose tables are empty."""
    with session_client.app.state.database.engine.begin() as connection:  # type: ignore[attr-defined]
        connection.execute(sa.delete(Order))
        connection.execute(sa.delete(Item))
    return session_client


@pytest.fixture
def create(client: TestClient) -> Callable[..., dict[str, object]]:
    """Create an item over HTTP and return its JSON."""

    def create(name: str = "Widget", price: object = 9.99, **fields: object) -> dict[str, object]:
        response = client.post("/items/", json={"name": name, "price": price, **fields})
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    return create


@pytest.fixture
def alembic_config() -> Config:
    """For pytest-alembic: the service's own Alembic configuration."""
    config = migrations.alembic_config()
    config.attributes["configure_logger"] = False
    return config


@pytest.fixture
def alembic_engine(empty_database: str) -> Iterator[sa.Engine]:
    """For pytest-alembic: an engine on an empty database of its own."""
    engine = create_engine(parse_database_url(empty_database), settings_for(empty_database))
    yield engine
    engine.dispose()
