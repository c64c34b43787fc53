"""POST /items/ and GET /items/{id}: what is stored comes back exactly."""

import re
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from service.db.types import utc_text
from service.items.models import Item

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def test_create_returns_201_the_item_and_its_location(client: TestClient) -> None:
    response = client.post(
        "/items/", json={"name": "Widget", "description": "A fine widget", "price": 19.99}
    )
    assert response.status_code == 201
    item = response.json()
    assert response.headers["location"] == f"/items/{item['id']}"
    assert isinstance(item["id"], int)
    assert {k: v for k, v in item.items() if k not in ("id", "created_at", "updated_at")} == {
        "name": "Widget",
        "description": "A fine widget",
        "price": 19.99,
        "sku": None,
    }
    assert client.get(response.headers["location"]).json() == item


def test_tutorial_client_still_works(client: TestClient) -> None:
    # The tutorial's body (no sku) and its success check keep working.
    response = client.post("/items/", json={"name": "Foo", "price": 1.5})
    assert response.is_success
    item_id = response.json()["id"]
    got = client.get(f"/items/{item_id}").json()
    assert (got["id"], got["name"], got["description"], got["price"]) == (item_id, "Foo", None, 1.5)


def test_timestamps_are_utc_with_six_fractional_digits(client: TestClient, create) -> None:
    before = datetime.now(UTC)
    item = create()
    after = datetime.now(UTC)
    for field in ("created_at", "updated_at"):
        assert TIMESTAMP.match(item[field]), item[field]
        moment = datetime.strptime(item[field], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        assert before - timedelta(seconds=1) <= moment <= after + timedelta(seconds=1)
    assert item["created_at"] == item["updated_at"]
    assert client.get(f"/items/{item['id']}").json()["created_at"] == item["created_at"]


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        (datetime(2026, 1, 31, 12, 0, 0, 0, tzinfo=UTC), "2026-01-31T12:00:00.000000Z"),
        (datetime(2026, 1, 31, 12, 0, 0, 10, tzinfo=UTC), "2026-01-31T12:00:00.000010Z"),
        (datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "1999-12-31T23:59:59.999999Z"),
        (datetime(2026, 7, 1, 2, 3, 4, 500000, tzinfo=UTC), "2026-07-01T02:03:04.500000Z"),
    ],
)
def test_stored_times_are_shown_with_six_digits_on_reads(
    client: TestClient, create, stored: datetime, shown: str
) -> None:
    # Times written by any path read back in the one format; whole seconds keep ".000000".
    item = create()
    with client.app.state.database.engine.begin() as connection:  # type: ignore[attr-defined]
        times = {"created_at": stored, "updated_at": stored}
        connection.execute(sa.update(Item).where(Item.id == item["id"]).values(times))
    read = client.get(f"/items/{item['id']}").json()
    listed = client.get("/items/").json()
    assert read["created_at"] == read["updated_at"] == shown
    assert listed == [read]
    assert utc_text(stored) == shown


@pytest.mark.parametrize(
    "price", [0, 0.01, 0.1, 1.5, 19.99, 100, 123456.78, 999999999.99, "19.99", "1.50"]
)
def test_price_comes_back_exactly(client: TestClient, create, price: object) -> None:
    item = create(price=price)
    expected = float(price)  # type: ignore[arg-type]
    assert item["price"] == expected
    stored = client.get(f"/items/{item['id']}")
    assert stored.json()["price"] == expected


@pytest.mark.parametrize(
    "text",
    [
        "Pizza 🍕 and 🍔",
        "Ünïcödé — ǅ ß ﬃ",
        "日本語のテキスト",
        "trailing spaces   ",
        "   leading",
        "back\\slash 'quote' \"double\" ; DROP TABLE items; --",
        "tab\tnew\nline",
    ],
)
def test_text_comes_back_byte_for_byte(client: TestClient, create, text: str) -> None:
    item = create(name=text, description=text * 3, sku=text[:64])
    stored = client.get(f"/items/{item['id']}").json()
    assert (stored["name"], stored["description"], stored["sku"]) == (text, text * 3, text[:64])


def test_lengths_at_the_limits_are_accepted(create) -> None:
    item = create(name="n" * 255, description="d" * 2000, sku="s" * 64)
    assert (len(item["name"]), len(item["description"]), len(item["sku"])) == (255, 2000, 64)
    # Lengths count characters, not bytes: 255 four-byte characters fit.
    assert create(name="🍕" * 255, sku="🍔" * 64)["name"] == "🍕" * 255


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"price": 1}, "name"),
        ({"name": "", "price": 1}, "name"),
        ({"name": "n" * 256, "price": 1}, "name"),
        ({"name": None, "price": 1}, "name"),
        ({"name": 42, "price": 1}, "name"),
        ({"name": "x"}, "price"),
        ({"name": "x", "price": None}, "price"),
        ({"name": "x", "price": -0.01}, "price"),
        ({"name": "x", "price": 1.005}, "price"),
        ({"name": "x", "price": "1.005"}, "price"),
        ({"name": "x", "price": 1_000_000_000}, "price"),
        ({"name": "x", "price": "NaN"}, "price"),
        ({"name": "x", "price": "Infinity"}, "price"),
        ({"name": "x", "price": "-Infinity"}, "price"),
        ({"name": "x", "price": "ten"}, "price"),
        ({"name": "x", "price": True}, "price"),
        ({"name": "x", "price": 1, "description": "d" * 2001}, "description"),
        ({"name": "x", "price": 1, "sku": ""}, "sku"),
        ({"name": "x", "price": 1, "sku": "s" * 65}, "sku"),
        ({"name": "nul\x00byte", "price": 1}, "name"),
        ({"name": "x", "price": 1, "description": "\x00"}, "description"),
        ({"name": "x", "price": 1, "sku": "a\x00"}, "sku"),
    ],
)
def test_invalid_bodies_are_422_naming_the_field(client: TestClient, body, field: str) -> None:
    response = client.post("/items/", json=body)
    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [["body", field]]
    assert client.get("/items/").json() == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "", "price": 1}, "String should have at least 1 character"),
        ({"name": "n" * 256, "price": 1}, "String should have at most 255 characters"),
        ({"name": "x", "price": 1, "sku": "s" * 65}, "String should have at most 64 characters"),
    ],
)
def test_length_errors_speak_of_characters(client: TestClient, body, message: str) -> None:
    response = client.post("/items/", json=body)
    assert [error["msg"] for error in response.json()["detail"]] == [message]


@pytest.mark.parametrize("price_text", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_json_numbers_are_422(client: TestClient, price_text: str) -> None:
    body = '{"name": "x", "price": ' + price_text + "}"
    response = client.post("/items/", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422


def test_unpaired_surrogate_is_422(client: TestClient) -> None:
    body = '{"name": "half \\ud83c pair", "price": 1}'
    response = client.post("/items/", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "name"]


def test_duplicate_sku_is_409_and_nothing_is_stored(client: TestClient, create) -> None:
    first = create(sku="ABC-1")
    response = client.post("/items/", json={"name": "Other", "price": 2, "sku": "ABC-1"})
    assert response.status_code == 409
    assert "sku" in response.json()["detail"]
    assert client.get("/items/").json() == [first]


@pytest.mark.parametrize("other", ["abc-1", "ABC-1 ", " ABC-1", "ÀBC-1", "ABC‐1"])
def test_sku_is_compared_exactly(create, other: str) -> None:
    create(sku="ABC-1")
    assert create(sku=other)["sku"] == other


def test_many_items_may_have_no_sku(create) -> None:
    assert [create(sku=None)["sku"], create()["sku"]] == [None, None]


def test_missing_item_is_404(client: TestClient, create) -> None:
    item = create()
    response = client.get(f"/items/{item['id'] + 1}")
    assert response.status_code == 404
    assert response.json() == {"detail": "Item not found"}


@pytest.mark.parametrize(
    "item_id", ["0", "-1", "2147483648", "9223372036854775808", "1" + "0" * 40, "-" + "9" * 40]
)
def test_ids_of_any_size_are_404(client: TestClient, item_id: str) -> None:
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        body = {"name": "x", "price": 1} if method in ("PUT", "PATCH") else None
        response = client.request(method, f"/items/{item_id}", json=body)
        assert response.status_code == 404, (method, response.text)
        assert response.json() == {"detail": "Item not found"}


@pytest.mark.parametrize("item_id", ["abc", "1.5", "1e3", "0x10", "%20", "１"])
def test_ids_that_are_not_integers_are_422(client: TestClient, item_id: str) -> None:
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        body = {"name": "x", "price": 1} if method in ("PUT", "PATCH") else None
        response = client.request(method, f"/items/{item_id}", json=body)
        assert response.status_code == 422, (method, response.text)
        assert response.json()["detail"][0]["loc"] == ["path", "item_id"]
