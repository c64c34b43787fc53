"""READ_ONLY: while the database moves, writes are answered 503 with Retry-After; reads served."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from conftest import settings_for
from service.app import create_app

REFUSED = (
    "The service is read-only for now (READ_ONLY is set): writes are refused while its "
    "database moves. Try again later."
)


@pytest.fixture
def read_only(client: TestClient, database_url: str) -> Iterator[TestClient]:
    """The app on the same database, read-only; `client` wrote before."""
    app = create_app(settings_for(database_url, migrate_on_start=False, read_only=True))
    with TestClient(app) as read_only_client:
        yield read_only_client


def test_writes_are_refused_and_reads_served(client: TestClient, read_only: TestClient) -> None:
    item = client.post("/items/", json={"name": "Widget", "price": 1}).json()
    order = client.post("/orders/", json={"item_id": item["id"], "quantity": 1}).json()
    writes = [
        read_only.post("/items/", json={"name": "New", "price": 1}),
        read_only.put(f"/items/{item['id']}", json={"name": "Other", "price": 2}),
        read_only.patch(f"/items/{item['id']}", json={"price": 2}),
        read_only.delete(f"/items/{item['id']}"),
        read_only.post("/orders/", json={"item_id": item["id"], "quantity": 1}),
        read_only.delete(f"/orders/{order['id']}"),
    ]
    for response in writes:
        assert response.status_code == 503
        assert response.json() == {"detail": REFUSED}
        assert response.headers["retry-after"] == "5"
    assert read_only.get(f"/items/{item['id']}").json() == item
    assert read_only.get("/items/", params={"q": "widget"}).json() == [item]
    assert read_only.get("/orders/").json() == [order]
    assert read_only.get("/health/ready").status_code == 200


def test_the_documented_answers_of_writes_include_it(read_only: TestClient) -> None:
    paths = read_only.get("/openapi.json").json()["paths"]
    assert "503" in paths["/items/"]["post"]["responses"]
    assert "503" in paths["/items/{item_id}"]["delete"]["responses"]
