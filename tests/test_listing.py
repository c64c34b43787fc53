"""GET /items/: order, paging, search and price filters."""

import pytest
from fastapi.testclient import TestClient


def names(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["name"] for item in response.json()]


def test_empty_list(client: TestClient) -> None:
    response = client.get("/items/")
    assert (response.status_code, response.json()) == (200, [])
    assert "link" not in response.headers


def test_items_come_in_id_order_with_skip_and_limit(client: TestClient, create) -> None:
    created = [create(name=f"item {n}") for n in range(5)]
    assert client.get("/items/").json() == created
    assert names(client.get("/items/", params={"skip": 1, "limit": 2})) == ["item 1", "item 2"]
    assert names(client.get("/items/", params={"skip": 5})) == []


def test_default_limit_is_100(client: TestClient, create) -> None:
    for n in range(101):
        create(name=f"item {n}")
    assert len(client.get("/items/").json()) == 100


def test_after_id_pages_by_key(client: TestClient, create) -> None:
    created = [create(name=f"item {n}") for n in range(4)]
    after = created[1]["id"]
    assert names(client.get("/items/", params={"after_id": after})) == ["item 2", "item 3"]
    assert names(client.get("/items/", params={"after_id": created[-1]["id"]})) == []
    assert names(client.get("/items/", params={"after_id": 2**31 - 1})) == []


def test_link_header_walks_every_page_keeping_filters(client: TestClient, create) -> None:
    for n in range(7):
        create(name=f"{'apple' if n % 2 else 'pear'} {n}", price=n)
    seen: list[str] = []
    url: str | None = "/items/?q=APPLE&limit=2&min_price=1"
    while url:
        response = client.get(url)
        seen += names(response)
        link = response.headers.get("link")
        url = link.split(";")[0].strip("<>") if link else None
        if url:
            assert 'rel="next"' in link
            assert "q=APPLE" in url and "limit=2" in url and "min_price=1" in url
    # The last page is full (apple 5), so one more, empty, page ends the walk.
    assert seen == ["apple 1", "apple 3", "apple 5"]


def test_link_header_drops_skip_and_replaces_after_id(client: TestClient, create) -> None:
    ids = [create(name=f"a b {n}")["id"] for n in range(4)]
    query = f"after_id={ids[0] - 1}&skip=1&limit=2&q=A%20B&after_id={ids[0]}"
    response = client.get(f"/items/?{query}")
    assert [item["id"] for item in response.json()] == ids[2:4]
    assert response.headers["link"] == (
        f'<http://testserver/items/?limit=2&q=A+B&after_id={ids[3]}>; rel="next"'
    )


def test_no_link_when_the_page_is_not_full(client: TestClient, create) -> None:
    create(), create()
    assert "link" not in client.get("/items/", params={"limit": 3}).headers
    assert "link" in client.get("/items/", params={"limit": 2}).headers


@pytest.mark.parametrize(
    "params",
    [
        {"skip": -1},
        {"skip": "x"},
        {"skip": 2**63},
        {"limit": 0},
        {"limit": 1001},
        {"limit": -5},
        {"after_id": -1},
        {"after_id": 2**64},
        {"after_id": "last"},
        {"min_price": -1},
        {"max_price": "NaN"},
        {"max_price": "inf"},
        {"min_price": "1.001"},
        {"q": "x" * 256},
        {"q": "nul\x00"},
    ],
)
def test_bad_parameters_are_422(client: TestClient, params: dict[str, object]) -> None:
    response = client.get("/items/", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][:2] == ["query", next(iter(params))]


def test_limit_bounds_are_accepted(client: TestClient, create) -> None:
    create()
    assert len(client.get("/items/", params={"limit": 1}).json()) == 1
    assert len(client.get("/items/", params={"limit": 1000}).json()) == 1


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("widget", ["Blue Widget", "WIDGET pro", "widgetry"]),
        ("WIDGET", ["Blue Widget", "WIDGET pro", "widgetry"]),
        ("café", ["Café crème", "CAFÉ noir"]),
        ("CAFÉ", ["Café crème", "CAFÉ noir"]),
        ("cafe", ["cafeteria"]),
        ("straße", ["Straße 5", "STRASSE 7"]),
        ("ΌΣ", ["Χρυσός όσο"]),
        ("🍕", ["🍕 pizza"]),
        ("100%", ["100% cotton"]),
        ("%", ["100% cotton"]),
        ("_", ["snake_case"]),
        ("e_c", ["snake_case"]),
        ("\\", ["back\\slash"]),
        ("/", ["and/or"]),
        ("d/o", ["and/or"]),
        ("'", ["it's"]),
        ("o'; drop table items; --", []),
        (
            " ",
            [
                "Blue Widget",
                "WIDGET pro",
                "Café crème",
                "CAFÉ noir",
                "Straße 5",
                "STRASSE 7",
                "Χρυσός όσο",
                "🍕 pizza",
                "🍔 burger",
                "100% cotton",
                "trailing ",
            ],
        ),
        ("trailing ", ["trailing "]),
        ("", None),
    ],
)
def test_q_is_a_case_insensitive_literal_substring(
    client: TestClient, create, q: str, expected: list[str] | None
) -> None:
    catalogue = [
        "Blue Widget", "WIDGET pro", "widgetry", "Café crème", "CAFÉ noir", "cafeteria",
        "Straße 5", "STRASSE 7", "Χρυσός όσο", "🍕 pizza", "🍔 burger", "100% cotton",
        "snake_case", "snakeXcase", "back\\slash", "backslash", "it's", "trailing ",
        "and/or", "andor",
    ]  # fmt: skip
    for name in catalogue:
        create(name=name)
    found = names(client.get("/items/", params={"q": q}))
    assert found == (catalogue if expected is None else expected)


def test_price_filters_are_inclusive_and_exact(client: TestClient, create) -> None:
    for price in (0, 0.1, 0.2, 19.99, 20, 999999999.99):
        create(name=str(price), price=price)
    assert names(client.get("/items/", params={"min_price": "0.2"})) == [
        "0.2", "19.99", "20", "999999999.99"
    ]  # fmt: skip
    assert names(client.get("/items/", params={"max_price": "0.1"})) == ["0", "0.1"]
    assert names(client.get("/items/", params={"min_price": 19.99, "max_price": 19.99})) == [
        "19.99"
    ]
    assert names(client.get("/items/", params={"min_price": 20, "max_price": 19.99})) == []


def test_filters_combine(client: TestClient, create) -> None:
    create(name="cheap apple", price=1)
    create(name="dear apple", price=50)
    create(name="dear pear", price=50)
    params = {"q": "apple", "min_price": 10}
    assert names(client.get("/items/", params=params)) == ["dear apple"]
