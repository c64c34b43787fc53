"""Client mistakes are 4xx with a JSON detail; bodies over 1 MiB are refused unread."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

LIMIT = 1_048_576


def test_unknown_path_is_404_json(client: TestClient) -> None:
    response = client.get("/nothing-here")
    assert (response.status_code, response.json()) == (404, {"detail": "Not Found"})


@pytest.mark.parametrize(("method", "path"), [("DELETE", "/items/"), ("POST", "/items/1"),
                                              ("PUT", "/items/"), ("POST", "/health")])  # fmt: skip
def test_wrong_method_is_405_json(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path)
    assert response.status_code == 405
    assert response.json() == {"detail": "Method Not Allowed"}
    assert "allow" in response.headers


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_body_that_is_not_json_is_415(
    client: TestClient, create, method: str, content_type: str
) -> None:
    path = "/items/" if method == "POST" else f"/items/{create()['id']}"
    response = client.request(
        method, path, content=b'{"name": "x", "price": 1}', headers={"content-type": content_type}
    )
    assert response.status_code == 415
    assert "application/json" in response.json()["detail"]


def test_json_with_charset_and_vendor_types_are_accepted(client: TestClient) -> None:
    for content_type in ("application/json; charset=utf-8", "application/merge-patch+json"):
        response = client.post(
            "/items/", content=b'{"name": "x", "price": 1}', headers={"content-type": content_type}
        )
        assert response.status_code == 201, content_type


@pytest.mark.parametrize("body", [b"{", b"[1, 2]", b'"text"', b"null", b"{'name': 1}", b"{,}"])
def test_malformed_json_is_422(client: TestClient, body: bytes) -> None:
    response = client.post("/items/", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"]


def test_body_that_is_not_utf8_is_400(client: TestClient) -> None:
    response = client.post(
        "/items/",
        content=b'{"name": "\xff", "price": 1}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json() == {"detail": "There was an error parsing the body"}


def test_body_just_under_the_limit_is_parsed(client: TestClient) -> None:
    body = b'{"name": "x", "price": 1, "pad": "' + b"a" * (LIMIT - 40) + b'"}'
    assert len(body) <= LIMIT
    response = client.post("/items/", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 201


def test_declared_body_over_1_mib_is_413(client: TestClient) -> None:
    body = b'{"name": "x", "price": 1, "pad": "' + b"a" * LIMIT + b'"}'
    response = client.post("/items/", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json() == {"detail": "Request body is too large: the limit is 1048576 bytes"}
    assert client.get("/items/").json() == []


def test_chunked_body_over_1_mib_is_413(client: TestClient, create) -> None:
    item = create()

    def chunks() -> Iterator[bytes]:
        yield b'{"name": "y", "price": 1, "pad": "'
        for _ in range(20):
            yield b"a" * 65536
        yield b'"}'

    response = client.put(
        f"/items/{item['id']}", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json() == {"detail": "Request body is too large: the limit is 1048576 bytes"}
    assert client.get(f"/items/{item['id']}").json() == item
