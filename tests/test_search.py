"""`q`: the same rows, in the same order, as reading every name, whatever answers it
(pg_trgm on PostgreSQL, FTS5 on SQLite, the trigram table on MySQL/MariaDB), after
creates, renames and deletes, for texts of any length; on every backend."""

import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from alembic import command
from conftest import BACKEND, settings_for
from service import migrations
from service.app import create_app
from service.db.engine import create_engine
from service.db.search import trigrams
from service.db.urls import parse_database_url
from service.items.models import Item, ItemNameTrigram

Create = Callable[..., dict[str, Any]]

NAMES = [
    "Blue Widget", "blue gadget 12", "Light Blue Lamp", "Straße", "STRASSE 2", "ΌΣΟΣ", "όσος",
    "Pizza 🍕 Slice", "Burger 🍔", "100% cotton", "under_score", "back\\slash", "a", "ab",
    "Café", "cafe", "ﬃ ligature", "Zyx Ωmega", "x", 'Say "hi"',
]  # fmt: skip
QUERIES = [
    "blue", "BLUE", "lue", "b", "bl", "Blue Widget", "strasse", "ss", "ß", "όσ", "ΌΣ", "σ", "ς",
    "🍕", "🍔", "a 🍕", "%", "_", "\\", "100%", "r_s", "k\\s", "cafe", "café", "é", "ffi", "ω",
    "ωm", "zyx ω", "x", "a", "ab", "abc", "nothing at all", "zz", "q", " ", "et 1", "2",
    '"', '"h', 'y "hi"', '""',
]  # fmt: skip


def found(client: TestClient, q: str, **parameters: object) -> list[str]:
    response = client.get("/items/", params={"q": q, "limit": 1000, **parameters})
    assert response.status_code == 200, response.text
    return [item["name"] for item in response.json()]


def indexed_trigrams(connection: sa.Connection) -> set[tuple[str, int]]:
    """Each (trigram, item id) the database holds: from FTS5's vocabulary of
    its instances on SQLite, the trigram table elsewhere (none on PostgreSQL)."""
    if BACKEND != "sqlite":
        return set(connection.execute(sa.select(ItemNameTrigram.trigram, ItemNameTrigram.item_id)))
    assert not connection.execute(sa.select(ItemNameTrigram.trigram)).first()
    connection.exec_driver_sql(
        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.item_name_fts_instances "
        "USING fts5vocab(main, item_name_fts, instance)"
    )
    return set(connection.exec_driver_sql("SELECT term, doc FROM temp.item_name_fts_instances"))


def by_reading_every_name(names: list[str], q: str) -> list[str]:
    """What `q` promises: a case-folded substring of the name, in id order."""
    return [name for name in names if q.casefold() in name.casefold()]


@pytest.fixture
def stored(create: Create) -> list[dict[str, Any]]:
    return [create(name=name) for name in NAMES]


def test_every_query_finds_what_reading_every_name_finds(client: TestClient, stored) -> None:
    for q in QUERIES:
        assert found(client, q) == by_reading_every_name(NAMES, q), q


def test_a_renamed_item_is_found_by_its_new_name_and_not_its_old(
    client: TestClient, stored
) -> None:
    blue, gadget = stored[0], stored[1]
    assert client.patch(f"/items/{blue['id']}", json={"name": "Crimson Ωhm"}).status_code == 200
    renamed = {"name": "Teal Sprocket", "price": 3}
    assert client.put(f"/items/{gadget['id']}", json=renamed).status_code == 200
    names = ["Crimson Ωhm", "Teal Sprocket", *NAMES[2:]]
    for q in [*QUERIES, "crimson", "ωh", "teal", "sprocket", "t s", "gadget", "widget"]:
        assert found(client, q) == by_reading_every_name(names, q), q
    # A change that leaves the name alone keeps it found.
    assert client.patch(f"/items/{stored[2]['id']}", json={"price": 9}).status_code == 200
    assert found(client, "light blue") == ["Light Blue Lamp"]


def test_a_deleted_item_is_not_found(client: TestClient, stored) -> None:
    for item in stored[:4]:
        assert client.delete(f"/items/{item['id']}").status_code == 204
    for q in QUERIES:
        assert found(client, q) == by_reading_every_name(NAMES[4:], q), q


def test_the_database_indexes_every_name_as_the_service_searches_it(
    client: TestClient, stored
) -> None:
    # The triggers compute trigrams in SQL; searches look them up as
    # `trigrams()` computes them in Python: the two must agree to the byte.
    renamed = {"name": "Straße ΣΑΣ 🍕", "price": 3}
    assert client.patch(f"/items/{stored[0]['id']}", json={"name": "Crimson Ωh"}).status_code == 200
    assert client.put(f"/items/{stored[1]['id']}", json=renamed).status_code == 200
    assert client.patch(f"/items/{stored[2]['id']}", json={"price": 4}).status_code == 200
    assert client.delete(f"/items/{stored[3]['id']}").status_code == 204
    engine = client.app.state.database.engine  # type: ignore[attr-defined]
    with engine.connect() as connection:
        names = connection.execute(sa.select(Item.id, Item.name_folded)).all()
        rows = indexed_trigrams(connection)
    assert len(names) == len(NAMES) - 1
    # PostgreSQL keeps no trigram rows: pg_trgm and its own index answer `q`.
    expected = set() if BACKEND == "postgresql" else {
        (trigram, key) for key, name in names for trigram in trigrams(name)
    }  # fmt: skip
    assert rows == expected


def test_renames_that_keep_some_trigrams_keep_the_index_exact(client: TestClient, stored) -> None:
    # A rename removes only the trigrams the old name held and the new one
    # does not, and adds only those the new one holds alone: names sharing
    # trigrams at other positions, repeating one, differing by a trailing
    # space, or by characters of several bytes.
    engine = client.app.state.database.engine  # type: ignore[attr-defined]
    item = stored[0]["id"]
    for name in ["aaaa", "aaa", "aa a", "a", "ab ", "ab", "bab", "abab", "🍕a🍕", "a🍕",
                 "Ωmega ω", "ωmega", "ab  ", "b"]:  # fmt: skip
        response = client.patch(f"/items/{item}", json={"name": name})
        assert response.status_code == 200 and response.json()["name"] == name
        with engine.connect() as connection:
            rows = {trigram for trigram, key in indexed_trigrams(connection) if key == item}
        expected = set() if BACKEND == "postgresql" else trigrams(name.casefold())
        assert rows == expected, name
        for q in {name, name[:2], name[-1]}:
            assert name in found(client, q), (name, q)


def test_a_name_written_outside_the_service_is_found(client: TestClient, stored) -> None:
    # Another program writes the table as the service does (the folded name
    # beside the name): the database indexes its rows too.
    engine = client.app.state.database.engine  # type: ignore[attr-defined]
    with engine.begin() as connection:
        connection.execute(sa.insert(Item), [
            {"name": "Imported Ωrb", "name_folded": "imported ωrb", "price": 1},
            {"name": "Imported Ax", "name_folded": "imported ax", "price": 2},
        ])  # fmt: skip
        connection.execute(
            sa.update(Item).where(Item.id == stored[0]["id"]).values(
                name="Bulk Renamed", name_folded="bulk renamed"
            )
        )  # fmt: skip
        connection.execute(sa.delete(Item).where(Item.id == stored[1]["id"]))
    names = ["Bulk Renamed", *NAMES[2:], "Imported Ωrb", "Imported Ax"]
    for q in [*QUERIES, "imported", "ωr", "ax", "x", "bulk", "widget", "gadget"]:
        assert found(client, q) == by_reading_every_name(names, q), q


def test_search_pages_and_filters_like_the_rest(client: TestClient, create: Create) -> None:
    names = [f"Blue {n} {random.choice(['Bolt', 'Lamp'])}" for n in range(30)]
    items = [create(name=name, price=n) for n, name in enumerate(names)]
    lamps = [item for item in items if "Lamp" in item["name"]]
    seen: list[dict[str, Any]] = []
    url: str | None = "/items/?q=lamp&limit=4"
    while url:
        response = client.get(url)
        seen += response.json()
        link = response.headers.get("link")
        url = link.split(";")[0].strip("<>") if link else None
    assert seen == lamps
    assert client.get("/items/", params={"q": "lamp", "skip": 2, "limit": 3}).json() == lamps[2:5]
    cheap = client.get("/items/", params={"q": "blue 1", "max_price": 12}).json()
    assert cheap == [item for item in items if "Blue 1" in item["name"] and item["price"] <= 12]


def test_many_items_sharing_every_trigram_are_still_found_exactly(
    client: TestClient, create: Create
) -> None:
    # Every name holds "blue" and "lamp", few hold "blue lamp": the search walks
    # the rows of one trigram and checks each.
    names = [f"blue {'lamp' if n % 7 else 'lamp blue'} {n}" for n in range(60)]
    for name in names:
        create(name=name)
    for q in ("lamp blue", "blue lamp", "mp bl", "p b", "e l"):
        assert found(client, q) == by_reading_every_name(names, q), q


def test_counts_kept_from_an_earlier_search_change_no_result(
    client: TestClient, create: Create
) -> None:
    # A search keeps the counts it planned with for a few seconds: texts rare
    # when first searched, then written into many names, are found in full.
    names = ["quokka den", "qu"]
    for name in names:
        create(name=name)
    searches = ("quokka", "okk", "qu", "q")
    for q in searches:
        assert found(client, q) == by_reading_every_name(names, q), q
    names += [f"quokka {n}" for n in range(1100)] + [f"qu {n}" for n in range(1100)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda name: create(name=name), names[2:]))
    names = [
        item["name"]
        for skip in (0, 1000, 2000)
        for item in client.get("/items/", params={"limit": 1000, "skip": skip}).json()
    ]
    for q in searches:
        assert found(client, q) == by_reading_every_name(names, q)[:1000], q


def test_renames_and_creates_at_once_leave_every_name_found(
    client: TestClient, create: Create
) -> None:
    items = [create(name=f"Start {n}") for n in range(12)]

    def rename(n: int) -> None:
        for round_number in range(5):
            item = items[n % len(items)]
            client.patch(f"/items/{item['id']}", json={"name": f"Round {round_number} Ψ{n}"})
            create(name=f"New {n} {round_number}")

    with ThreadPoolExecutor(8) as clients:
        list(clients.map(rename, range(24)))
    names = [item["name"] for item in client.get("/items/", params={"limit": 1000}).json()]
    for q in ("start", "round", "round 4", "ψ", "ψ1", "new", "new 2", "Ψ23", "s", "0 ψ"):
        assert found(client, q) == by_reading_every_name(names, q), q


def test_names_stored_before_the_index_are_found_after_it_down_and_up(
    empty_database: str,
) -> None:
    # The revisions that build the index (0009, 0012 on SQLite) index the
    # names already stored, and going down to 0011 and up again keeps them.
    engine = create_engine(parse_database_url(empty_database), settings_for(empty_database))
    config = migrations.alembic_config()
    config.attributes["connection"] = engine
    stored = NAMES[:12]
    try:
        command.upgrade(config, "0008")  # before any trigram
        with engine.begin() as connection:
            connection.execute(
                sa.insert(Item),
                [{"name": name, "name_folded": name.casefold(), "price": 1} for name in stored],
            )
        command.upgrade(config, "head")
        command.downgrade(config, "0011")
        with engine.connect() as connection:
            names = connection.execute(sa.select(Item.id, Item.name_folded)).all()
            rows = set(
                connection.execute(sa.select(ItemNameTrigram.trigram, ItemNameTrigram.item_id))
            )
        # PostgreSQL keeps no trigram rows; the others do at 0011.
        assert rows == (set() if BACKEND == "postgresql" else {
            (trigram, key) for key, name in names for trigram in trigrams(name)
        })  # fmt: skip
        command.upgrade(config, "head")
    finally:
        engine.dispose()
    with TestClient(create_app(settings_for(empty_database, migrate_on_start=False))) as client:
        for q in QUERIES:
            assert found(client, q) == by_reading_every_name(stored, q), q


@pytest.mark.backends("postgresql")
def test_the_grams_of_a_name_are_its_characters_and_pairs_of_characters(
    empty_database: str,
) -> None:
    # Revision 0013's loop: the set revision 0009's query gave, which the GIN index keeps.
    engine = create_engine(parse_database_url(empty_database), settings_for(empty_database))
    migrations.upgrade_to_head(engine)
    names = [*NAMES, "", "ß" * 255, "🍕🍕🍕", "\\\t\n"]
    try:
        with engine.connect() as connection:
            grams = [
                connection.execute(sa.text("SELECT item_name_grams(:name)"), {"name": n}).scalar()
                for n in names
            ]
    finally:
        engine.dispose()
    for name, found_grams in zip(names, grams, strict=True):
        pairs = {name[n : n + 2] for n in range(len(name) - 1)}
        assert set(found_grams) == set(name) | pairs, name
