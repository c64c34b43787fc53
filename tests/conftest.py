"""One suite for every backend: TEST_BACKEND (set by tox) picks the database,
and TEST_CLUSTER, if set, a private cluster of them the whole suite runs on:
`galera` (three MariaDB Galera nodes behind HAProxy), `postgres-ha` (a
PostgreSQL primary and its synchronous standby, given as a two-host URL) or
`pgbouncer` (PgBouncer in transaction pooling mode in front of the server).
TEST_CONTAINER (the docker-* envs) runs the server in a container the session
starts: `postgres`, `mariadb` or `mysql` (tests/containers.py).

Each run creates its own databases on the server and drops them afterwards,
and every test starts from empty tables, so assertions are exact. A test that
only means something on some backends or clusters says so with a marker
(`backends`, `cluster`); elsewhere it is deselected, not skipped.
"""

import os
import signal
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.config import Config
from fastapi.testclient import TestClient
from sqlalchemy.engine import URL

from clusters import GaleraCluster, PgBouncer, PostgresPair
from containers import KINDS, ContainerError, DatabaseContainer, connect, remove_leftovers
from private_servers import PrivateMariaDB, PrivatePostgres
from service import migrations
from service.app import create_app
from service.db.engine import create_engine
from service.db.urls import parse_database_url
from service.models import Item, Order
from service.settings import Settings

BACKEND = os.environ.get("TEST_BACKEND", "sqlite")
CLUSTER = os.environ.get("TEST_CLUSTER", "")
CLUSTERS = {"galera": "mysql", "postgres-ha": "postgresql", "pgbouncer": "postgresql"}
CONTAINER = os.environ.get("TEST_CONTAINER", "")

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


def pytest_configure(config: pytest.Config) -> None:
    # Ended by `kill` (a CI timeout, a cancelled job): stop as after Ctrl-C, so
    # that the fixtures stop the servers and clusters they started.
    signal.signal(signal.SIGTERM, _interrupted)
    config.addinivalue_line("markers", "backends(*names): run only on these TEST_BACKENDs")
    config.addinivalue_line(
        "markers", "cluster(*names): run only with these TEST_CLUSTERs ('' for none)"
    )
    if CLUSTER and CLUSTERS.get(CLUSTER) != BACKEND:
        needed = CLUSTERS.get(CLUSTER)
        raise pytest.UsageError(f"TEST_CLUSTER={CLUSTER} needs TEST_BACKEND={needed}")
    if CONTAINER:
        kind = KINDS.get(CONTAINER)
        if kind is None:
            raise pytest.UsageError(f"TEST_CONTAINER={CONTAINER}: use one of {', '.join(KINDS)}")
        if kind.backend != BACKEND or CLUSTER:
            raise pytest.UsageError(
                f"TEST_CONTAINER={CONTAINER} needs TEST_BACKEND={kind.backend} and no TEST_CLUSTER"
            )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the tests that do not apply to this backend or cluster."""
    kept, deselected = [], []
    for item in items:
        backends = item.get_closest_marker("backends")
        cluster = item.get_closest_marker("cluster")
        applies = (backends is None or BACKEND in backends.args) and (
            cluster is None or CLUSTER in cluster.args
        )
        (kept if applies else deselected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


# The running cluster the session's databases are made on, if TEST_CLUSTER names one.
_cluster: Any = None


@pytest.fixture(scope="session", autouse=True)
def session_cluster() -> Iterator[Any]:
    """The cluster TEST_CLUSTER names, for the whole session; None without one."""
    global _cluster
    if not CLUSTER:
        yield None
        return
    with ExitStack() as stack:
        if CLUSTER == "galera":
            _cluster = stack.enter_context(GaleraCluster())
        elif CLUSTER == "postgres-ha":
            _cluster = stack.enter_context(PostgresPair())
        else:
            variable, default, _ = SERVERS["postgresql"]
            server = parse_database_url(os.environ.get(variable, default))
            bouncer = PgBouncer(server.host or "127.0.0.1", server.port or 5432)
            _cluster = stack.enter_context(bouncer)
        try:
            yield _cluster
        finally:
            _cluster = None


# The container the session's server runs in, if TEST_CONTAINER names one.
_container: DatabaseContainer | None = None


@pytest.fixture(scope="session", autouse=True)
def session_container() -> Iterator[DatabaseContainer | None]:
    """A server in a container of TEST_CONTAINER's image, for the whole session; None without.

    Removed at the end, after a failure or Ctrl-C too; what a killed run left
    behind, the next removes first."""
    global _container
    if not CONTAINER:
        yield None
        return
    try:
        client = connect()
        remove_leftovers(client)
    except ContainerError as error:
        pytest.exit(str(error), returncode=3)
    server = DatabaseContainer(client, KINDS[CONTAINER])
    try:
        try:
            server.start()
        except ContainerError as error:
            pytest.exit(str(error), returncode=3)
        _container = server
        yield server
    finally:
        _container = None
        server.remove()


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@pytest.hookimpl(tryfirst=True)
def pytest_keyboard_interrupt() -> None:
    if CONTAINER:
        # tox follows the user's Ctrl-C with SIGINTs of its own, which would cut
        # the teardown that removes the container short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def private_server() -> PrivatePostgres | PrivateMariaDB | DatabaseContainer:
    """A server of the session's kind, of its own, that a test may stop and start: in
    the docker-* envs a container of the session's image, else one from this machine's
    binaries."""
    if _container is not None:
        return DatabaseContainer(_container.client, _container.kind, tmpfs=False)
    return PrivatePostgres() if BACKEND == "postgresql" else PrivateMariaDB()


def server_url() -> URL:
    """The server the tests make their databases on: the cluster's or the container's,
    if there is one."""
    if isinstance(_cluster, GaleraCluster):
        return parse_database_url(_cluster.balancer_url)
    if isinstance(_cluster, PostgresPair):
        # libpq's own form for several hosts, as a user would write it.
        return parse_database_url(
            f"postgresql://postgres@{_cluster.hosts}/postgres?target_session_attrs=read-write"
        )
    if isinstance(_cluster, PgBouncer):
        return parse_database_url(_cluster.url)
    if _container is not None:
        return parse_database_url(_container.url)
    variable, default, _ = SERVERS[BACKEND]
    return parse_database_url(os.environ.get(variable, default))


def on_every_server(database_url: str) -> list[str]:
    """The URL of `database_url`'s database on each server that holds it, met
    directly: every node of a Galera cluster (a lock or a session lives on one
    node only), the server behind PgBouncer (whose server sessions a client
    never sees); else the URL itself."""
    url = sa.make_url(database_url)
    if isinstance(_cluster, GaleraCluster):
        nodes = [sa.make_url(node) for node in _cluster.node_urls]
    elif isinstance(_cluster, PgBouncer):
        nodes = [url.set(host=_cluster.server_host, port=_cluster.server_port)]
    else:
        return [database_url]
    return [node.set(database=url.database).render_as_string(hide_password=False) for node in nodes]


def binary_logging() -> bool:
    """Whether the MySQL server logs or replicates what triggers do (binary log, Galera)."""
    if BACKEND != "mysql":
        return False
    engine = sa.create_engine(server_url())
    with engine.connect() as connection:
        logging = bool(connection.exec_driver_sql("SELECT @@log_bin").scalar())
        galera = connection.exec_driver_sql("SHOW VARIABLES LIKE 'wsrep_on'").first()
    engine.dispose()
    return logging or (galera is not None and galera[1] == "ON")


@contextmanager
def global_setting(database_url: str, name: str, value: str) -> Iterator[None]:
    """MySQL's global `name` set to `value` on every server that holds the database, then back."""
    engines = [sa.create_engine(url) for url in on_every_server(database_url)]
    before = []
    for engine in engines:
        with engine.connect() as connection:
            before.append(connection.exec_driver_sql(f"SELECT @@GLOBAL.{name}").scalar())
            connection.exec_driver_sql(f"SET GLOBAL {name} = {value}")
    try:
        yield
    finally:
        for engine, old in zip(engines, before, strict=True):
            with engine.connect() as connection:
                connection.exec_driver_sql(f"SET GLOBAL {name} = {int(old)}")
            engine.dispose()


@contextmanager
def triggers_allowed(database_url: str) -> Iterator[None]:
    """What the README asks of a MySQL server where an account without SUPER
    migrates (revision 0010 creates triggers): log_bin_trust_function_creators
    on, where binary logging or Galera is."""
    if not binary_logging():
        yield
        return
    with global_setting(database_url, "log_bin_trust_function_creators", "1"):
        yield


def allow_login(user: str, password: str) -> None:
    """Let a new account log in the way the tests reach the server (PgBouncer
    knows only the accounts it is told of)."""
    if isinstance(_cluster, PgBouncer):
        _cluster.allow(user, password)


@contextmanager
def server_account(name: str, password: str) -> Iterator[None]:
    """A login account on the server, `name` (one of this run's own: other runs
    may share the server), with `password`, which may hold characters SQL and
    URLs quote; dropped afterwards. It may do nothing yet: the caller grants
    what it needs, and takes away what it owns before the block ends."""
    literal = password.replace("'", "''").replace("%", "%%")
    admin = sa.create_engine(server_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        if BACKEND == "postgresql":
            connection.exec_driver_sql(f"CREATE ROLE {name} LOGIN PASSWORD '{literal}'")
            allow_login(name, password)
        else:
            connection.exec_driver_sql(f"CREATE USER '{name}'@'%%' IDENTIFIED BY '{literal}'")
    try:
        yield
    finally:
        with admin.connect() as connection:
            if BACKEND == "postgresql":
                connection.exec_driver_sql(f"DROP ROLE {name}")
            else:
                connection.exec_driver_sql(f"DROP USER '{name}'@'%%'")
        admin.dispose()


def run_as_admin(database_url: str, statement: str) -> None:
    """Run `statement` as the server's administrator: on PostgreSQL, inside the database."""
    engine = sa.create_engine(
        database_url if BACKEND == "postgresql" else server_url(), isolation_level="AUTOCOMMIT"
    )
    with engine.connect() as connection:
        connection.exec_driver_sql(statement.replace("%", "%%"))
    engine.dispose()


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
        if isinstance(_cluster, GaleraCluster):
            # Waits until every node has it: the next connection may land on any.
            _cluster.create_database(name)
        else:
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
