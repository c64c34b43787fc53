"""The second resource, /orders/: an item bought at its price of the moment, on every backend."""

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

Create = Callable[..., dict[str, Any]]


@pytest.fixture
def order(client: TestClient) -> Callable[..., dict[str, Any]]:
    """Place an order over HTTP and return its JSON."""

    def order(item_id: object, quantity: object = 1) -> dict[str, Any]:
        response = client.post("/orders/", json={"item_id": item_id, "quantity": quantity})
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    return order


def test_an_order_records_the_price_and_the_total(client: TestClient, create: Create) -> None:
    item = create(price="19.99")
    response = client.post("/orders/", json={"item_id": item["id"], "quantity": 3})
    assert response.status_code == 201
    order = response.json()
    assert response.headers["location"] == f"/orders/{order['id']}"
    assert order == {
        "id": order["id"],
        "item_id": item["id"],
        "quantity": 3,
        "unit_price": 19.99,
        "total": 59.97,
        "created_at": order["created_at"],
    }
    assert client.get(f"/orders/{order['id']}").json() == order


@pytest.mark.parametrize(
    ("price", "quantity", "total"),
    [
        ("0.10", 7, "0.70"),
        ("0.01", 3, "0.03"),
        ("19.99", 10_000, "199900.00"),
        ("999999999.99", 10_000, "9999999999900.00"),
        ("999999999.99", 9_999, "9998999999900.01"),
        ("123456789.01", 7_777, "960123448130.77"),
        ("0", 5, "0"),
    ],
)
def test_totals_are_exact(
    client: TestClient, create: Create, order, price, quantity, total
) -> None:
    item = create(price=price)
    placed = order(item["id"], quantity)
    # JSON numbers, compared as the text a client reads: 0.7 is 0.70.
    assert (placed["unit_price"], placed["total"]) == (float(price), float(total))
    assert repr(placed["total"]) == repr(float(total))
    assert client.get(f"/orders/{placed['id']}").json()["total"] == float(total)
    listed = client.get("/orders/", params={"item_id": item["id"]}).json()
    assert [o["total"] for o in listed] == [float(total)]


def test_a_later_price_change_leaves_the_order_alone(
    client: TestClient, create: Create, order
) -> None:
    item = create(price="5.00")
    placed = order(item["id"], 2)
    assert client.patch(f"/items/{item['id']}", json={"price": 7.5}).status_code == 200
    assert client.get(f"/orders/{placed['id']}").json() == placed
    assert order(item["id"], 2)["unit_price"] == 7.5


def test_an_order_for_a_missing_item_is_422_naming_it(client: TestClient, create: Create) -> None:
    gone = create()
    assert client.delete(f"/items/{gone['id']}").status_code == 204
    for item_id in (gone["id"], 2**31 - 1):
        response = client.post("/orders/", json={"item_id": item_id, "quantity": 1})
        assert response.status_code == 422, response.text
        (error,) = response.json()["detail"]
        assert error["loc"] == ["body", "item_id"]
        assert error["msg"] == f"Item {item_id} does not exist"
    assert client.get("/orders/").json() == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"quantity": 1}, "item_id"),
        ({"item_id": 0, "quantity": 1}, "item_id"),
        ({"item_id": 2**31, "quantity": 1}, "item_id"),
        ({"item_id": "one", "quantity": 1}, "item_id"),
        ({"item_id": 1}, "quantity"),
        ({"item_id": 1, "quantity": 0}, "quantity"),
        ({"item_id": 1, "quantity": 10_001}, "quantity"),
        ({"item_id": 1, "quantity": 1.5}, "quantity"),
    ],
)
def test_invalid_orders_are_422_naming_the_field(client: TestClient, create, body, field) -> None:
    create()
    response = client.post("/orders/", json=body)
    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [["body", field]]
    assert client.get("/orders/").json() == []


def test_quantity_at_its_limits_is_accepted(create: Create, order) -> None:
    item = create(price=1)
    assert [order(item["id"], q)["quantity"] for q in (1, 10_000)] == [1, 10_000]


def test_an_item_that_has_orders_cannot_be_deleted(
    client: TestClient, create: Create, order
) -> None:
    item = create()
    placed = order(item["id"])
    response = client.delete(f"/items/{item['id']}")
    assert response.status_code == 409
    assert response.json() == {"detail": f"Item {item['id']} has orders; delete its orders first"}
    assert client.get(f"/items/{item['id']}").json() == item
    assert client.delete(f"/orders/{placed['id']}").status_code == 204
    assert client.delete(f"/items/{item['id']}").status_code == 204


def test_delete_is_204_then_404(client: TestClient, create: Create, order) -> None:
    placed = order(create()["id"])
    response = client.delete(f"/orders/{placed['id']}")
    assert (response.status_code, response.content) == (204, b"")
    for method in ("GET", "DELETE"):
        response = client.request(method, f"/orders/{placed['id']}")
        assert (response.status_code, response.json()) == (404, {"detail": "Order not found"})


@pytest.mark.parametrize("order_id", ["0", "-1", str(2**31), str(2**63), "9" * 30])
def test_ids_of_any_size_are_404(client: TestClient, order_id: str) -> None:
    assert client.get(f"/orders/{order_id}").status_code == 404
    assert client.delete(f"/orders/{order_id}").status_code == 404


def test_orders_list_in_id_order_filtered_by_item(client: TestClient, create: Create, order):
    first, second = create(name="first"), create(name="second")
    placed = [order(item["id"], n) for n, item in enumerate([first, second, first, second], 1)]
    assert client.get("/orders/").json() == placed
    mine = client.get("/orders/", params={"item_id": first["id"]}).json()
    assert mine == [placed[0], placed[2]]
    assert client.get("/orders/", params={"item_id": 2**31 - 1}).json() == []


def test_link_header_walks_every_page_keeping_the_item_filter(
    client: TestClient, create: Create, order
) -> None:
    mine, other = create(), create()
    wanted = []
    for n in range(5):
        wanted.append(order(mine["id"], n + 1)["id"])
        order(other["id"])
    seen: list[int] = []
    url: str | None = f"/orders/?item_id={mine['id']}&limit=2"
    while url:
        response = client.get(url)
        assert response.status_code == 200
        seen += [o["id"] for o in response.json()]
        link = response.headers.get("link")
        url = link.split(";")[0].strip("<>") if link else None
        if url:
            assert f"item_id={mine['id']}" in url and "limit=2" in url and "after_id=" in url
    assert seen == wanted


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=1001", "after_id=-1", f"after_id={2**31}", "item_id=0",
              f"item_id={2**31}", "item_id=x"],
)  # fmt: skip
def test_bad_list_parameters_are_422(client: TestClient, query: str) -> None:
    response = client.get(f"/orders/?{query}")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][0] == "query"
