"""GET /items/{id} and PATCH under concurrency: reads of one item that arrive
together are answered from one query (service.batched_reads, at most
MAX_KEYS_PER_QUERY ids to a query), each with its own item or its own 404."""

import asyncio
from collections.abc import Callable
from typing import Any

import httpx2 as httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from conftest import settings_for
from service.app import create_app
from service.db.batched_reads import MAX_KEYS_PER_QUERY


@pytest.mark.anyio
async def test_concurrent_reads_each_get_their_own_answer_from_shared_queries(
    database_url: str, client: TestClient, create: Callable[..., dict[str, Any]]
) -> None:
    items = [create(name=f"Item {n}", price=n) for n in range(1, MAX_KEYS_PER_QUERY + 21)]
    ids = [item["id"] for item in items]
    missing = max(ids) + 1000
    # Every item, five of them twice, and one that does not exist.
    wanted = [*ids, *ids[:5], missing]

    app = create_app(settings_for(database_url, migrate_on_start=False))
    statements = []
    async with app.router.lifespan_context(app):
        engine = app.state.database.engine
        sa.event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as http:
            responses = await asyncio.gather(*(http.get(f"/items/{i}") for i in wanted))

    by_id = {item["id"]: item for item in items}
    assert [response.json() for response in responses[:-1]] == [by_id[i] for i in wanted[:-1]]
    assert [response.status_code for response in responses] == [200] * (len(wanted) - 1) + [404]
    # 121 different ids: a query of the most a query takes, and one of the rest.
    assert len(statements) == 2, statements
    # Reads alone, one at a time, are answered as before.
    assert client.get(f"/items/{ids[0]}").json() == items[0]
    assert client.get(f"/items/{missing}").status_code == 404


@pytest.mark.anyio
async def test_concurrent_patches_each_answer_with_their_own_item_as_updated(
    database_url: str, client: TestClient, create: Callable[..., dict[str, Any]]
) -> None:
    # Where PATCH reads the item back separately (SQLite, MySQL/MariaDB), the
    # read-backs of patches arriving together share a query with each other
    # and with plain reads.
    items = [create(name=f"Item {n}", price=n) for n in range(1, 21)]
    missing = max(item["id"] for item in items) + 1000
    app = create_app(settings_for(database_url, migrate_on_start=False))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as http:
            patches = [
                http.patch(f"/items/{item['id']}", json={"name": f"Renamed {n}", "price": n + 0.5})
                for n, item in enumerate(items)
            ]
            reads = [http.get(f"/items/{item['id']}") for item in items[:5]]
            responses = await asyncio.gather(
                *patches, *reads, http.patch(f"/items/{missing}", json={"price": 1})
            )

    patched, read, patch_of_missing = responses[:20], responses[20:25], responses[25]
    for n, (item, response) in enumerate(zip(items, patched, strict=True)):
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["id"], body["name"], body["price"]) == (item["id"], f"Renamed {n}", n + 0.5)
        assert body["created_at"] == item["created_at"]
        assert client.get(f"/items/{item['id']}").json() == body
    assert all(response.status_code == 200 for response in read)
    assert [response.json()["id"] for response in read] == [item["id"] for item in items[:5]]
    assert patch_of_missing.status_code == 404


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
