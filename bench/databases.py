"""Fresh databases for a benchmark run, and fast seeding through the service's own models."""

import os
import secrets
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bench.servers import Server, process_tree_cpu_seconds
from service.db.backends import SearchIndex, backend_for
from service.db.engine import create_engine
from service.db.search import trigrams
from service.db.urls import parse_database_url
from service.items.models import NAME_FULL_TEXT, Item, ItemNameTrigram, fold_case
from service.orders.models import Order
from service.settings import Settings

BACKENDS = ("sqlite", "postgresql", "mysql")
# The same servers, and variables, as the test suite.
SERVERS = {
    "postgresql": os.environ.get(
        "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    ),
    "mysql": os.environ.get("TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"),
}
# Names mix ten adjectives, so a search for one of them matches one item in ten.
ADJECTIVES = ("Red", "Blue", "Green", "Heavy", "Light", "Small", "Large", "Smart", "Old", "New")
NOUNS = ("Widget", "Gadget", "Bolt", "Lamp", "Chair", "Table", "Cable")
SEARCH_TERM = "blue"
# One item in 100,000 is named with a word of characters no other name has,
# for searches of one and two characters that find few items.
RARE_WORD = "Ωmega Ξyst"
RARE_EVERY = 100_000
# The searches the benchmarks time, by what they find.
SEARCHES = {
    "one in ten": SEARCH_TERM,
    "nothing": "no such name",
    "a few": "123456",
    "one character, a few": "ω",
    "two characters, a few": "ξy",
}
BATCH = 10_000


@contextmanager
def fresh_database(backend: str) -> Iterator[str]:
    """Yield the URL of a new, empty database (items_bench_<random>); drop it afterwards."""
    name = f"items_bench_{secrets.token_hex(4)}"
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix=name) as directory:
            yield f"sqlite:///{Path(directory) / 'items.db'}"
        return
    server = parse_database_url(SERVERS[backend])
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    charset = " CHARACTER SET utf8mb4" if backend == "mysql" else ""
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE {name}{charset}")
        try:
            yield server.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                if backend == "postgresql":
                    connection.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
                else:
                    connection.exec_driver_sql(f"DROP DATABASE {name}")
    finally:
        admin.dispose()


def server_cpu(url: str) -> Callable[[], float] | None:
    """A function that reads the CPU seconds the database server at `url` has used
    (every process of it, on this machine); None for SQLite, which runs inside the
    service's own process."""
    backend = parse_database_url(url).get_backend_name()
    if backend == "sqlite":
        return None
    engine = sa.create_engine(parse_database_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            if backend == "postgresql":
                backend_pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
                stat = Path(f"/proc/{backend_pid}/stat").read_text().rpartition(")")[2].split()
                postmaster = int(stat[1])
                return lambda: process_tree_cpu_seconds(postmaster)
            pid_file = connection.exec_driver_sql("SELECT @@pid_file").scalar()
    finally:
        engine.dispose()
    mariadbd = Server("", int(Path(str(pid_file)).read_text().strip()))
    return lambda: mariadbd.cpu_seconds() or 0.0


def engine_for(url: str) -> Engine:
    return create_engine(parse_database_url(url), Settings(database_url=url))


def item_row(number: int, now: datetime) -> dict[str, object]:
    name = f"{ADJECTIVES[number % 10]} {NOUNS[number % 7]} {number}"
    if number % RARE_EVERY == RARE_EVERY - 1:
        name = f"{RARE_WORD} {number}"
    return {
        "name": name,
        "name_folded": fold_case(name),
        "description": f"Benchmark item number {number}",
        "price": Decimal(number % 100_000) / 100,
        "sku": f"BENCH-{number}",
        "created_at": now,
        "updated_at": now,
    }


def seed(url: str, count: int) -> None:
    """Insert `count` items into an empty table, in batches of executemany, each
    batch its own transaction; with their trigrams where the database does not
    write them itself (before revision 0010), as the service would."""
    engine = engine_for(url)
    insert = sa.insert(Item.__table__)
    # Not in the schema of an earlier version (`bench.side_by_side --baseline`);
    # FTS5 holds them on SQLite since revision 0012, kept by its triggers.
    schema = sa.inspect(engine)
    with_trigrams = (
        schema.has_table(ItemNameTrigram.__tablename__)
        and not schema.has_table(NAME_FULL_TEXT)
        and backend_for(engine.url, Settings()).capabilities.search_index is not SearchIndex.SERVER
    )
    # Known after the first batch: whether triggers wrote its trigrams.
    written_by_triggers: bool | None = None
    now = datetime.now(UTC)
    try:
        for start in range(0, count, BATCH):
            rows = [item_row(n, now) for n in range(start, min(start + BATCH, count))]
            with engine.begin() as connection:
                if not with_trigrams:
                    connection.execute(insert, rows)
                    continue
                # Ids given, so that the trigrams can name them: 1, 2, ... as
                # SQLite and MySQL would hand them out in an empty table.
                rows = [row | {"id": n} for n, row in enumerate(rows, start + 1)]
                connection.execute(insert, rows)
                if written_by_triggers is None:
                    counted = sa.select(sa.func.count()).select_from(ItemNameTrigram.__table__)
                    written_by_triggers = bool(connection.execute(counted).scalar())
                if written_by_triggers:
                    continue
                connection.execute(
                    sa.insert(ItemNameTrigram.__table__),
                    [
                        {"trigram": trigram, "item_id": row["id"]}
                        for row in rows
                        for trigram in trigrams(str(row["name_folded"]))
                    ],
                )
        if engine.dialect.name == "postgresql":
            # Autovacuum would do this soon after a bulk load; do not wait for it.
            with engine.begin() as connection:
                connection.exec_driver_sql("ANALYZE items")
    finally:
        engine.dispose()


def seed_orders(url: str, count: int) -> None:
    """Insert `count` orders, one for each of the first `count` items."""
    engine = engine_for(url)
    now = datetime.now(UTC)
    try:
        with engine.begin() as connection:
            rows = connection.execute(
                sa.select(Item.id, Item.price).order_by(Item.id).limit(count)
            ).all()
            orders = [
                {"item_id": item_id, "quantity": 3, "unit_price": price, "total": price * 3,
                 "created_at": now}
                for item_id, price in rows
            ]  # fmt: skip
            connection.execute(sa.insert(Order.__table__), orders)
    finally:
        engine.dispose()


def seeded_ids(url: str, column: sa.orm.InstrumentedAttribute[int] = Item.id) -> tuple[int, int]:
    """The first and last id of a seeded table."""
    engine = engine_for(url)
    try:
        with engine.connect() as connection:
            query = sa.select(sa.func.min(column), sa.func.max(column))
            first, last = connection.execute(query).one()
    finally:
        engine.dispose()
    return first, last
