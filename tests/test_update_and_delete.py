"""PUT replaces, PATCH changes only what is sent, DELETE removes."""

import time

import pytest
from fastapi.testclient import TestClient


def test_put_replaces_every_field(client: TestClient, create) -> None:
    item = create(name="Old", description="old", price=1, sku="OLD")
    time.sleep(0.002)
    response = client.put(f"/items/{item['id']}", json={"name": "New", "price": 2.5})
    assert response.status_code == 200
    replaced = response.json()
    assert replaced | {"updated_at": None} == item | {
        "name": "New", "description": None, "price": 2.5, "sku": None, "updated_at": None,
    }  # fmt: skip
    assert replaced["updated_at"] > item["updated_at"]
    assert replaced["created_at"] == item["created_at"]
    assert client.get(f"/items/{item['id']}").json() == replaced


def test_patch_changes_only_the_fields_sent(client: TestClient, create) -> None:
    item = create(name="Name", description="desc", price=3, sku="SKU")
    time.sleep(0.002)
    response = client.patch(f"/items/{item['id']}", json={"price": 4.25, "description": None})
    assert response.status_code == 200
    patched = response.json()
    assert patched | {"updated_at": None} == item | {
        "price": 4.25, "description": None, "updated_at": None
    }  # fmt: skip
    assert patched["updated_at"] > item["updated_at"]
    assert patched["created_at"] == item["created_at"]
    assert client.get(f"/items/{item['id']}").json() == patched


def test_patch_with_the_same_value_still_moves_updated_at(client: TestClient, create) -> None:
    item = create(name="Same")
    time.sleep(0.002)
    patched = client.patch(f"/items/{item['id']}", json={"name": "Same"}).json()
    assert patched["updated_at"] > item["updated_at"]


def test_empty_patch_changes_nothing(client: TestClient, create) -> None:
    item = create()
    response = client.patch(f"/items/{item['id']}", json={})
    assert (response.status_code, response.json()) == (200, item)
    assert client.get(f"/items/{item['id']}").json() == item


@pytest.mark.parametrize(
    "body",
    [{"name": None}, {"price": None}, {"name": ""}, {"price": -1}, {"price": 0.001},
     {"sku": ""}, {"description": "d" * 2001}, {"name": "\x00"}],
)  # fmt: skip
def test_invalid_patch_is_422_and_changes_nothing(client: TestClient, create, body) -> None:
    item = create()
    response = client.patch(f"/items/{item['id']}", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", next(iter(body))]
    assert client.get(f"/items/{item['id']}").json() == item


def test_invalid_put_is_422(client: TestClient, create) -> None:
    item = create()
    response = client.put(f"/items/{item['id']}", json={"name": "no price"})
    assert response.status_code == 422
    assert client.get(f"/items/{item['id']}").json() == item


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_taking_another_items_sku_is_409(client: TestClient, create, method: str) -> None:
    create(sku="TAKEN")
    item = create(sku="MINE")
    body = {"name": "x", "price": 1, "sku": "TAKEN"}
    response = client.request(method, f"/items/{item['id']}", json=body)
    assert response.status_code == 409
    assert "sku" in response.json()["detail"]
    assert client.get(f"/items/{item['id']}").json() == item


def test_keeping_ones_own_sku_is_fine(client: TestClient, create) -> None:
    item = create(sku="MINE")
    response = client.put(f"/items/{item['id']}", json={"name": "x", "price": 1, "sku": "MINE"})
    assert response.status_code == 200


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_missing_item_is_404(client: TestClient, create, method: str) -> None:
    item = create()
    client.delete(f"/items/{item['id']}")
    body = {"name": "x", "price": 1} if method != "DELETE" else None
    response = client.request(method, f"/items/{item['id']}", json=body)
    assert (response.status_code, response.json()) == (404, {"detail": "Item not found"})


def test_delete_is_204_without_a_body(client: TestClient, create) -> None:
    keep, gone = create(name="keep"), create(name="gone")
    response = client.delete(f"/items/{gone['id']}")
    assert (response.status_code, response.content) == (204, b"")
    assert client.get(f"/items/{gone['id']}").status_code == 404
    assert client.get("/items/").json() == [keep]


def test_ids_are_not_reused_after_delete(client: TestClient, create) -> None:
    first = create()
    client.delete(f"/items/{first['id']}")
    assert create()["id"] > first["id"]
