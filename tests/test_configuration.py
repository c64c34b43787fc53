"""Settings and the URL forms every backend accepts."""

from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.schema import CreateTable

from conftest import BACKEND, settings_for
from service.app import create_app
from service.db.backends import Backend, backend_for
from service.db.engine import create_engine
from service.db.types import ExactString, read_form
from service.db.urls import parse_database_url
from service.models import Item, Order
from service.settings import Settings

SPELLINGS = ("mysql", "mariadb")
TABLES = [Item.__table__, Order.__table__]

ALIASES = {
    "sqlite": ["sqlite"],
    "postgresql": ["postgresql", "postgresql+psycopg2", "postgres"],
    "mysql": ["mysql", "mysql+mysqldb", "mariadb", "mariadb+mysqldb"],
}[BACKEND]


@pytest.mark.parametrize("scheme", ALIASES)
def test_every_accepted_scheme_serves(
    database_url: str, session_client: TestClient, scheme: str
) -> None:
    server = session_client.get("/health/ready").json()["database"]
    if scheme.startswith("mariadb") and server != "mariadb":
        pytest.skip("SQLAlchemy's mariadb:// dialect refuses a MySQL server")
    url = scheme + "://" + database_url.split("://", 1)[1]
    with TestClient(create_app(settings_for(url))) as client:
        response = client.get("/health/ready")
        assert response.status_code == 200, response.text
        assert client.post("/items/", json={"name": scheme, "price": 1}).status_code == 201


@pytest.mark.parametrize(
    ("scheme", "driver"),
    [("postgres", "postgresql+psycopg2"), ("postgresql", "postgresql+psycopg2"),
     ("mysql", "mysql+mysqldb"), ("mariadb", "mariadb+mysqldb"), ("sqlite", "sqlite+pysqlite")],
)  # fmt: skip
def test_schemes_map_to_the_installed_drivers(scheme: str, driver: str) -> None:
    assert parse_database_url(f"{scheme}://u:p@h/db").drivername == driver


def test_percent_encoded_credentials_are_decoded() -> None:
    url = parse_database_url("postgres://us%40er:p%40ss%3Aw%2Frd%25%3F@db.example.com:6543/items")
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "us@er", "p@ss:w/rd%?", "db.example.com", 6543, "items",
    )  # fmt: skip


def test_pool_settings_reach_the_engine(database_url: str) -> None:
    settings = settings_for(database_url, db_pool_size=3, db_max_overflow=2, db_pool_timeout=4)
    engine = create_engine(parse_database_url(database_url), settings)
    # A SQLite file's pool has two connections more: reads on the event loop, the writer thread.
    size = 5 if BACKEND == "sqlite" else 3
    assert (engine.pool.size(), engine.pool._max_overflow, engine.pool._timeout) == (size, 2, 4)  # type: ignore[attr-defined]
    engine.dispose()


def test_the_service_has_one_worker_thread_per_pooled_connection(database_url: str) -> None:
    settings = settings_for(database_url, db_pool_size=3, db_max_overflow=2, migrate_on_start=False)
    with TestClient(create_app(settings)) as client:
        assert client.get("/items/").status_code == 200
        assert client.app.state.database.capabilities.worker_threads == 5  # type: ignore[attr-defined]


def test_sqlite_files_default_to_two_connections_network_databases_to_forty() -> None:
    def backend(url: str) -> Backend:
        return backend_for(parse_database_url(url), settings_for("sqlite://"))

    assert backend("sqlite:///items.db").pool_limits() == (2, 0)
    assert backend("postgresql://db/items").pool_limits() == (40, 0)
    assert backend("mysql://db/items").pool_limits() == (40, 0)
    assert backend("sqlite://").pool_limits() is None
    assert backend("sqlite://").capabilities.worker_threads == 1


def test_in_memory_sqlite_is_migrated_by_the_app_that_serves_it() -> None:
    with TestClient(create_app(settings_for("sqlite://"))) as client:
        assert client.get("/health/ready").status_code == 200
        created = client.post("/items/", json={"name": "kept", "price": 1}).json()
        assert client.get("/items/").json() == [created]


def test_in_memory_sqlite_left_unmigrated_says_so() -> None:
    with TestClient(create_app(settings_for("sqlite://", migrate_on_start=False))) as client:
        assert client.get("/health/ready").status_code == 503


def test_settings_come_from_a_dotenv_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text(
        "DATABASE_URL=sqlite:///from-dotenv.db\nDB_ECHO=true\nPORT=9001\n"
    )
    monkeypatch.chdir(tmp_path)
    for variable in ("DATABASE_URL", "DB_ECHO", "PORT"):
        monkeypatch.delenv(variable, raising=False)
    settings = Settings()
    assert settings.database_url.get_secret_value() == "sqlite:///from-dotenv.db"
    assert (settings.db_echo, settings.port) == (True, 9001)
    assert "from-dotenv" not in repr(settings)


@pytest.mark.parametrize("value", ["false", "0", "off", "no"])
def test_migrate_on_start_can_be_turned_off(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("MIGRATE_ON_START", value)
    assert Settings(_env_file=None).migrate_on_start is False  # type: ignore[call-arg]


def test_the_default_database_is_items_db(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    url = Settings(_env_file=None).database_url.get_secret_value()  # type: ignore[call-arg]
    assert make_url(url).database == "./items.db"


def test_mysql_and_mariadb_dialects_get_the_same_types_and_read_forms() -> None:
    # SQLAlchemy names the dialect `mariadb` for mariadb:// URLs: every type
    # and read form must take MySQL's path under either name.
    mysql, mariadb = (make_url(f"{scheme}+mysqldb://").get_dialect()() for scheme in SPELLINGS)
    assert (mysql.name, mariadb.name) == SPELLINGS

    def compiled(dialect: Dialect) -> list[str]:
        statements = [str(CreateTable(table).compile(dialect=dialect)) for table in TABLES]
        for table in TABLES:
            for column in table.columns:
                form = read_form(column.type)
                if form is not None:
                    select = sa.select(sa.type_coerce(column, form.type))
                    statements.append(str(select.compile(dialect=dialect)))
                    statements.append(repr(form.from_driver(dialect)))
        return statements

    assert compiled(mysql) == compiled(mariadb)
    assert "VARBINARY(256)" in compiled(mariadb)[0] and "DATETIME(6)" in compiled(mariadb)[0]
    assert "DATE_FORMAT(" in " ".join(compiled(mariadb))
    sku = ExactString(64)
    assert (
        sku.process_bind_param("ß", mariadb) == sku.process_bind_param("ß", mysql) == "ß".encode()
    )
