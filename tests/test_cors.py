"""Browsers: calls from another origin's pages, allowed only from the origins
CORS_ORIGINS names, with writes still needing a token; on every backend."""

import sys
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from conftest import settings_for
from servers import run_to_exit
from service.app import create_app

APP = "https://app.example.com"
OTHER = "https://elsewhere.example.com"
TOKEN = "cors-token-" + "5" * 32
ITEM = {"name": "Widget", "price": 9.99}


def preflight(client: TestClient, origin: str, method: str = "POST") -> dict[str, str]:
    response = client.options(
        "/items/",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    return {"status": str(response.status_code), **response.headers}


@pytest.fixture
def allowing(database_url: str, client: TestClient) -> Iterator[TestClient]:
    """The app allowing APP (and a local development server), with a token for writes."""
    settings = settings_for(
        database_url,
        cors_origins=f"{APP}, http://localhost:5173",
        api_tokens=TOKEN,
        migrate_on_start=False,
    )
    with TestClient(create_app(settings)) as allowing:
        yield allowing


def test_no_origin_is_allowed_by_default(client: TestClient) -> None:
    response = client.get("/items/", headers={"Origin": APP})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers
    answer = preflight(client, APP)
    assert answer["status"] == "405"
    assert "access-control-allow-origin" not in answer


def test_a_named_origin_may_read_and_preflight(allowing: TestClient) -> None:
    response = allowing.get("/items/", headers={"Origin": APP})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == APP
    assert "Origin" in response.headers["vary"]
    answer = preflight(allowing, APP, "PATCH")
    assert answer["status"] == "200"
    assert answer["access-control-allow-origin"] == APP
    assert "PATCH" in answer["access-control-allow-methods"]
    assert {"authorization", "content-type"} <= {
        header.strip().lower() for header in answer["access-control-allow-headers"].split(",")
    }


def test_an_origin_not_named_is_not_allowed(allowing: TestClient) -> None:
    response = allowing.get("/items/", headers={"Origin": OTHER})
    assert "access-control-allow-origin" not in response.headers
    answer = preflight(allowing, OTHER)
    assert answer["status"] == "400"
    assert "access-control-allow-origin" not in answer


def test_writes_from_a_named_origin_still_need_the_token(allowing: TestClient) -> None:
    refused = allowing.post("/items/", json=ITEM, headers={"Origin": APP})
    assert refused.status_code == 401
    # The page may read why.
    assert refused.headers["access-control-allow-origin"] == APP
    created = allowing.post(
        "/items/", json=ITEM, headers={"Origin": APP, "Authorization": f"Bearer {TOKEN}"}
    )
    assert created.status_code == 201
    assert created.headers["access-control-allow-origin"] == APP
    exposed = created.headers["access-control-expose-headers"].lower()
    assert "location" in exposed and "link" in exposed
    assert allowing.get("/items/").json() == [created.json()]


@pytest.mark.parametrize("origins", ["https://app.example.com/", "*", "app.example.com"])
def test_anything_but_an_origin_stops_start_up_with_one_line(origins: str) -> None:
    result = run_to_exit(
        sys.executable, "-m", "service", DATABASE_URL="sqlite://", CORS_ORIGINS=origins
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"error: CORS_ORIGINS: {origins!r} is not an origin: each is scheme://host[:port], "
        "with no path or trailing slash, as a browser sends it (https://app.example.com)"
    ]
