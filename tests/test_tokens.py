"""Bearer tokens: with API_TOKENS set, writes (and reads, when asked) need one; on every backend."""

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient

from conftest import settings_for
from servers import run_to_exit, running_service
from service.app import create_app

# Long enough to be secret (32 characters or more), as the service insists.
ALPHA = "alpha-7f3c9e1d2b4a6c8e0f1a3b5c7d9e2f4a"
BETA = "beta-0d5e8a6c1f92b4d7e3a9c5f1b8d2e6a0"
UNAUTHORIZED = {"detail": "Send a valid token in the header Authorization: Bearer <token>"}
ITEM = {"name": "Widget", "price": 9.99}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def guarded(database_url: str, client: TestClient) -> Iterator[TestClient]:
    """The app with two tokens, on the session's database (emptied by `client`)."""
    settings = settings_for(database_url, api_tokens=f"{ALPHA}, {BETA}", migrate_on_start=False)
    with TestClient(create_app(settings)) as guarded:
        yield guarded


@pytest.fixture
def guarded_reads(database_url: str, client: TestClient) -> Iterator[TestClient]:
    settings = settings_for(
        database_url, api_tokens=ALPHA, api_tokens_for_reads=True, migrate_on_start=False
    )
    with TestClient(create_app(settings)) as guarded:
        yield guarded


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json() == UNAUTHORIZED
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        bearer("wrong-token"),
        bearer(ALPHA + "x"),
        bearer(ALPHA[:-1]),
        {"Authorization": "Bearer"},
        {"Authorization": f"Basic {ALPHA}"},
        {"Authorization": ALPHA},
        {"Authorization": f"Bearer{ALPHA}"},
    ],
    ids=["missing", "wrong", "longer", "shorter", "empty", "basic", "no-scheme", "no-space"],
)
def test_writes_without_a_valid_token_are_401_and_change_nothing(
    guarded: TestClient, create, headers: dict[str, str]
) -> None:
    item = create()
    order = guarded.post(
        "/orders/", json={"item_id": item["id"], "quantity": 1}, headers=bearer(ALPHA)
    )
    assert order.status_code == 201
    for method, path, body in [
        ("POST", "/items/", ITEM),
        ("PUT", f"/items/{item['id']}", ITEM),
        ("PATCH", f"/items/{item['id']}", {"price": 1}),
        ("DELETE", f"/items/{item['id']}", None),
        ("POST", "/orders/", {"item_id": item["id"], "quantity": 1}),
        ("DELETE", f"/orders/{order.json()['id']}", None),
    ]:
        assert_unauthorized(guarded.request(method, path, json=body, headers=headers))
    assert guarded.get("/items/").json() == [item]
    assert guarded.get("/orders/").json() == [order.json()]


@pytest.mark.parametrize("token", [ALPHA, BETA])
def test_each_token_may_write(guarded: TestClient, token: str) -> None:
    created = guarded.post("/items/", json=ITEM, headers=bearer(token))
    assert created.status_code == 201
    path = f"/items/{created.json()['id']}"
    assert guarded.patch(path, json={"price": 2}, headers=bearer(token)).status_code == 200
    assert guarded.put(path, json=ITEM, headers=bearer(token)).status_code == 200
    order = guarded.post(
        "/orders/", json={"item_id": created.json()["id"], "quantity": 2}, headers=bearer(token)
    )
    assert order.status_code == 201
    assert guarded.delete(f"/orders/{order.json()['id']}", headers=bearer(token)).status_code == 204
    assert guarded.delete(path, headers=bearer(token)).status_code == 204


def test_reads_and_health_stay_open(guarded: TestClient, create) -> None:
    item = create()
    assert guarded.get("/items/").json() == [item]
    assert guarded.get(f"/items/{item['id']}").json() == item
    assert guarded.get("/orders/").status_code == 200
    assert guarded.get("/health").status_code == 200
    assert guarded.get("/health/ready").status_code == 200


def test_reads_need_a_token_when_asked(guarded_reads: TestClient, create) -> None:
    item = create()
    for path in ("/items/", f"/items/{item['id']}", "/orders/"):
        assert_unauthorized(guarded_reads.get(path))
        assert_unauthorized(guarded_reads.get(path, headers=bearer("wrong")))
        assert guarded_reads.get(path, headers=bearer(ALPHA)).status_code == 200
    assert guarded_reads.get("/health").status_code == 200
    assert guarded_reads.get("/health/ready").status_code == 200


def test_the_openapi_document_declares_the_scheme_where_it_is_needed(
    guarded: TestClient, guarded_reads: TestClient, client: TestClient
) -> None:
    document = guarded.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "One of the service's `API_TOKENS`.",
    }
    paths = document["paths"]
    for path, method in [("/items/", "post"), ("/items/{item_id}", "put"),
                         ("/items/{item_id}", "patch"), ("/items/{item_id}", "delete"),
                         ("/orders/", "post"), ("/orders/{order_id}", "delete")]:  # fmt: skip
        assert paths[path][method]["security"] == [{"HTTPBearer": []}], (path, method)
        assert "401" in paths[path][method]["responses"]
    assert "security" not in paths["/items/"]["get"]
    assert "security" not in paths["/health/ready"]["get"]
    reads = guarded_reads.get("/openapi.json").json()["paths"]
    assert reads["/items/"]["get"]["security"] == [{"HTTPBearer": []}]
    assert "securitySchemes" not in client.get("/openapi.json").json().get("components", {})


def test_tokens_never_appear_in_the_logs(tmp_path: Path, empty_database: str) -> None:
    variables = {"API_TOKENS": f"{ALPHA},{BETA}", "DB_ECHO": "true", "ACCESS_LOG": "true"}
    with running_service(tmp_path, DATABASE_URL=empty_database, **variables) as (base, output):
        created = httpx.post(f"{base}/items/", json=ITEM, headers=bearer(BETA))
        assert created.status_code == 201
        assert (
            httpx.post(f"{base}/items/", json=ITEM, headers=bearer(BETA + "!")).status_code == 401
        )
        ready = httpx.get(f"{base}/health/ready").text
    logged = output[0]
    assert "INSERT INTO items" in logged and '"POST /items/ HTTP/1.1" 401' in logged
    for secret in (ALPHA, BETA):
        assert secret not in logged + ready


def test_listening_beyond_loopback_without_tokens_warns_once(
    tmp_path: Path, empty_database: str
) -> None:
    with running_service(tmp_path, DATABASE_URL=empty_database, HOST="0.0.0.0") as (_, output):
        pass
    assert output[0].count("API_TOKENS is not set and the service listens on 0.0.0.0") == 1
    variables = {"DATABASE_URL": empty_database, "HOST": "0.0.0.0", "API_TOKENS": ALPHA}
    with running_service(tmp_path, **variables) as (_, output):
        pass
    assert "API_TOKENS" not in output[0]


def test_loopback_without_tokens_does_not_warn(tmp_path: Path, empty_database: str) -> None:
    with running_service(tmp_path, DATABASE_URL=empty_database) as (_, output):
        pass
    assert "API_TOKENS" not in output[0]


@pytest.mark.parametrize("tokens", [f"{ALPHA},short-token-9", "x" * 31])
def test_a_token_too_short_to_be_secret_stops_start_up_with_one_line(tokens: str) -> None:
    result = run_to_exit(
        sys.executable, "-m", "service", DATABASE_URL="sqlite://", API_TOKENS=tokens
    )
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: API_TOKENS holds a token shorter than 32 characters")
    assert line.endswith("make each one with openssl rand -hex 32")
    for secret in tokens.split(","):
        assert secret not in result.stdout + result.stderr


@pytest.mark.parametrize("tokens", ["", " , ,"])
def test_tokens_set_to_nothing_stop_start_up_with_one_line(tokens: str) -> None:
    result = run_to_exit(
        sys.executable, "-m", "service", DATABASE_URL="sqlite://", API_TOKENS=tokens
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "error: API_TOKENS is set but holds no token: set it to one or more, comma-separated"
    ]
