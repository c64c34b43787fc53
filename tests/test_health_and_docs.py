"""Health checks, readiness, outage answers and the offline docs."""

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from alembic import command
from conftest import BACKEND, settings_for
from service import migrations
from service.app import create_app
from service.db.engine import create_engine
from service.db.urls import parse_database_url

UNREACHABLE = {
    "sqlite": "sqlite:////nonexistent-directory/items.db",
    "postgresql": "postgresql://postgres@127.0.0.1:1/items",
    "mysql": "mysql://root@127.0.0.1:1/items",
}[BACKEND]


@pytest.fixture
def unreachable_client() -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(UNREACHABLE))) as client:
        yield client


def test_health_is_ok(client: TestClient) -> None:
    response = client.get("/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_ready_names_the_backend_and_revision(client: TestClient) -> None:
    response = client.get("/health/ready")
    assert response.status_code == 200
    body = response.json()
    expected = {"sqlite": {"sqlite"}, "postgresql": {"postgresql"}, "mysql": {"mysql", "mariadb"}}
    assert body["database"] in expected[BACKEND]
    assert body == {"status": "ok", "database": body["database"], "revision": "0013"}
    assert migrations.head_revision() == "0013"


def test_health_does_not_touch_the_database(unreachable_client: TestClient) -> None:
    assert unreachable_client.get("/health").status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/items/"), ("GET", "/items/1"), ("POST", "/items/"), ("PATCH", "/items/1"),
     ("DELETE", "/items/1"), ("GET", "/health/ready")],
)  # fmt: skip
def test_unreachable_database_is_503_with_retry_after(
    unreachable_client: TestClient, method: str, path: str
) -> None:
    body = {"name": "x", "price": 1} if method in ("POST", "PATCH") else None
    response = unreachable_client.request(method, path, json=body)
    assert response.status_code == 503
    assert response.json() == {"detail": "Database unavailable"}
    assert int(response.headers["retry-after"]) > 0


def test_schema_behind_the_newest_revision_is_not_ready(empty_database: str) -> None:
    engine = create_engine(parse_database_url(empty_database), settings_for(empty_database))
    config = migrations.alembic_config()
    config.attributes["connection"] = engine
    command.upgrade(config, "0006")
    engine.dispose()
    app = create_app(settings_for(empty_database, migrate_on_start=False))
    with TestClient(app) as client:
        response = client.get("/health/ready")
    assert response.status_code == 503
    assert "0006" in response.json()["detail"] and "0013" in response.json()["detail"]


def test_missing_schema_is_503_not_500(empty_database: str) -> None:
    app = create_app(settings_for(empty_database, migrate_on_start=False))
    with TestClient(app) as client:
        assert client.get("/health/ready").status_code == 503
        response = client.get("/items/")
    assert response.status_code == 503
    assert response.json() == {
        "detail": "Database schema has no revision, expected 0013: "
        "run `alembic upgrade head` or start with MIGRATE_ON_START=true"
    }


def test_docs_are_served_without_a_cdn(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(asset.startswith("/") for asset in assets), assets
    assert "cdn" not in page.text.lower()
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200, asset
        assert response.content, asset
    # FastAPI writes OpenAPI 3.1, which Swagger UI renders only from version 5 on.
    assert client.get("/openapi.json").json()["openapi"].startswith("3.1")
    script = next(asset for asset in assets if asset.endswith("swagger-ui-bundle.js"))
    assert b"isOAS31" in client.get(script).content


def test_openapi_describes_every_status(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    def statuses(path: str, method: str) -> set[str]:
        return set(paths[path][method]["responses"])

    assert statuses("/items/", "post") >= {"201", "409", "413", "415", "422", "503"}
    assert statuses("/items/", "get") >= {"200", "422", "503"}
    assert statuses("/items/{item_id}", "get") >= {"200", "404", "422", "503"}
    assert statuses("/items/{item_id}", "put") >= {"200", "404", "409", "413", "415", "422"}
    assert statuses("/items/{item_id}", "patch") >= {"200", "404", "409", "413", "415", "422"}
    assert statuses("/items/{item_id}", "delete") >= {"204", "404", "422"}
    assert statuses("/health", "get") == {"200"}
    assert statuses("/health/ready", "get") >= {"200", "503"}
    query = {p["name"] for p in paths["/items/"]["get"]["parameters"]}
    assert query == {"skip", "limit", "after_id", "q", "min_price", "max_price"}


def test_list_parameters_are_documented_with_their_limits(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/items/"]["get"]
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert all(p["in"] == "query" and p["required"] is False for p in parameters.values())
    limit = parameters["limit"]["schema"]
    assert (limit["type"], limit["minimum"], limit["maximum"], limit["default"]) == (
        "integer",
        1,
        1000,
        100,
    )
    assert "literal" in parameters["q"]["description"]
    price = parameters["min_price"]["schema"]["anyOf"][0]
    assert (price["type"], price["multipleOf"]) == ("number", 0.01)
    invalid = operation["responses"]["422"]["content"]["application/json"]["schema"]
    assert invalid == {"$ref": "#/components/schemas/HTTPValidationError"}
