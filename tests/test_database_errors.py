"""Database errors answered by what they mean: a constraint by its resource's answer,
a schema behind by saying so, anything else as the bug it is (500, logged), on every backend."""

import logging
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from alembic import command
from conftest import settings_for
from service import migrations
from service.app import create_app
from service.db.backends import ErrorKind
from service.db.engine import create_engine
from service.db.runtime import Database
from service.db.urls import parse_database_url


@pytest.fixture
def unique_names(client: TestClient) -> Iterator[None]:
    """A unique index on items.name that the service's models know nothing of."""
    engine = client.app.state.database.engine  # type: ignore[attr-defined]
    items = sa.Table("items", sa.MetaData(), sa.Column("name", sa.String(255)))
    index = sa.Index("ux_items_name_outside_the_models", items.c.name, unique=True)
    with engine.connect() as connection:
        index.create(connection)
    try:
        yield
    finally:
        with engine.connect() as connection:
            index.drop(connection)


def test_a_constraint_no_resource_declares_is_a_logged_500_not_an_outage(
    client: TestClient, create, unique_names: None, caplog: pytest.LogCaptureFixture
) -> None:
    create(name="twice")
    with caplog.at_level(logging.ERROR, logger="service.errors"):
        response = client.post("/items/", json={"name": "twice", "price": 1})
    assert (response.status_code, response.json()) == (500, {"detail": "Internal Server Error"})
    assert "retry-after" not in response.headers
    (record,) = caplog.records
    assert record.message == "Unexpected database error on POST /items/"
    assert record.exc_info is not None


def test_a_declared_constraint_is_answered_by_its_resource(client: TestClient, create) -> None:
    create(sku="S-1")
    response = client.post("/items/", json={"name": "x", "price": 1, "sku": "S-1"})
    assert response.status_code == 409
    assert response.json() == {"detail": "Another item already has this sku; skus must be unique"}


def test_a_schema_behind_says_which_revision_it_is_at(empty_database: str) -> None:
    engine = create_engine(parse_database_url(empty_database), settings_for(empty_database))
    config = migrations.alembic_config()
    config.attributes["connection"] = engine
    command.upgrade(config, "0007")  # before orders
    engine.dispose()
    with TestClient(create_app(settings_for(empty_database, migrate_on_start=False))) as client:
        assert client.get("/items/").status_code == 200
        response = client.get("/orders/")
    assert response.status_code == 503
    assert response.json() == {
        "detail": "Database schema is at revision 0007, expected 0013: "
        "run `alembic upgrade head` or start with MIGRATE_ON_START=true"
    }


COLUMNS = "id, name, name_folded, price, created_at, updated_at"
NOW = "'2026-01-01 00:00:00', '2026-01-01 00:00:00'"


@pytest.mark.parametrize(
    ("statement", "kind"),
    [
        ("SELEC 1", ErrorKind.BUG),
        ("SELECT no_such_column FROM items", ErrorKind.SCHEMA),
        ("SELECT id FROM no_such_table", ErrorKind.SCHEMA),
        (f"INSERT INTO items ({COLUMNS}) VALUES (1, 'a', 'a', 1, {NOW}), (1, 'b', 'b', 1, {NOW})",
         ErrorKind.CONSTRAINT),
        (f"INSERT INTO items ({COLUMNS}) VALUES (2, 'a', 'a', -1, {NOW})", ErrorKind.CONSTRAINT),
    ],
)  # fmt: skip
def test_each_backend_reads_what_its_errors_mean(
    database_url: str, client: TestClient, statement: str, kind: ErrorKind
) -> None:
    database = Database(parse_database_url(database_url), settings_for(database_url))
    try:
        with pytest.raises(sa.exc.DBAPIError) as raised, database.engine.connect() as connection:
            connection.exec_driver_sql(statement)
        assert database.error_kind(raised.value) is kind
    finally:
        database.close()
