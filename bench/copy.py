"""`items-service copy` against pgloader, side by side in one run.

    python -m bench.copy                      # 1,000,000 items and 1,000,000 orders
    python -m bench.copy --rows 2000 --small 1000   # a quick look

A SQLite file of `--rows` items and as many orders (names, text up to its
longest, NULLs, exact prices, microseconds, gaps in the ids and a deleted last
id) is copied to a new PostgreSQL database by `items-service copy`,
verification included, and by Debian's `pgloader`; then every other direction
between SQLite, PostgreSQL and MySQL/MariaDB by `items-service copy`; and
SQLite to PostgreSQL again from a file of `--small` rows, to compare the peak
memory. Each copy is its own process: its time is the wall-clock time of the
whole command, its memory the process's peak resident set.
"""

import argparse
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from bench.databases import ADJECTIVES, NOUNS, fresh_database
from service.db.engine import create_engine
from service.db.urls import parse_database_url
from service.items.models import fold_case
from service.migrations import upgrade_to_head
from service.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
BATCH = 20_000
# Every 1,000th item is deleted (a gap in the ids), and the last one too.
DELETED_EVERY = 1000


@dataclass(frozen=True)
class Run:
    what: str
    seconds: float
    peak_mb: float
    status: int


def item_values(number: int, start: datetime) -> tuple[object, ...]:
    name = f"{ADJECTIVES[number % 10]} {NOUNS[number % 7]} {number}"
    if number % 10_000 == 0:
        name = f"Straße {number} 🍕 ".ljust(255, "ß")
    description = None if number % 3 == 0 else f"Item number {number}, described. " * 4
    price = f"{number % 100_000_000_000 / 100:.2f}" if number % 1000 else "999999999.99"
    sku = None if number % 5 == 0 else f"SKU-{number}"
    created = start + timedelta(microseconds=number * 1_000_003)
    stamp = created.strftime("%Y-%m-%d %H:%M:%S.%f")
    return (number, name, fold_case(name), description, float(price), sku, stamp, stamp)


def make_source(path: Path, rows: int) -> str:
    """A migrated SQLite file of `rows` items and `rows` orders, written as the
    service would store them."""
    url = f"sqlite:///{path}"
    engine = create_engine(parse_database_url(url), Settings(_env_file=None, database_url=url))  # type: ignore[call-arg]
    upgrade_to_head(engine)
    engine.dispose()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    random.seed(31)
    connection = sqlite3.connect(path)
    insert_item = (
        "INSERT INTO items (id, name, name_folded, description, price, sku, created_at, "
        "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    )
    insert_order = (
        "INSERT INTO orders (id, item_id, quantity, unit_price, total, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)"
    )
    for first in range(1, rows + 1, BATCH):
        numbers = range(first, min(first + BATCH, rows + 1))
        connection.executemany(insert_item, [item_values(n, start) for n in numbers])
        connection.commit()
    kept = [n for n in range(1, rows) if n % DELETED_EVERY]
    for first in range(1, rows + 1, BATCH):
        orders = []
        for n in range(first, min(first + BATCH, rows + 1)):
            item = random.choice(kept)
            quantity = 10_000 if n % 1000 == 0 else random.randint(1, 50)
            unit = float(item_values(item, start)[4])  # type: ignore[arg-type]
            stamp = (start + timedelta(microseconds=n * 999_983)).strftime("%Y-%m-%d %H:%M:%S.%f")
            orders.append((n, item, quantity, unit, float(f"{unit * quantity:.2f}"), stamp))
        connection.executemany(insert_order, orders)
        connection.commit()
    connection.execute(f"DELETE FROM items WHERE id % {DELETED_EVERY} = 0 OR id = {rows}")
    connection.execute(f"DELETE FROM orders WHERE id = {rows}")
    connection.commit()
    connection.close()
    return url


def measured(what: str, command: list[str], **env: str) -> Run:
    """Run `command`; its wall-clock time and peak memory."""
    began = time.monotonic()
    process = subprocess.Popen(
        command, cwd=ROOT, env=os.environ | env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - began
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        print(f"{what} failed:\n{output.decode(errors='replace')}", file=sys.stderr)
    elif command[0] == sys.executable:
        # Its own lines: the time of each step.
        print("    " + output.decode().strip().replace("\n", "\n    "), flush=True)
    return Run(what, seconds, usage.ru_maxrss / 1024, process.returncode)


def copy_command(source: str, target: str) -> list[str]:
    return [sys.executable, "-m", "service", "copy", "--from", source, "--to", target]


def pgloader(source: Path, target: str, directory: Path) -> list[str]:
    """pgloader on the same file, its two tables (not the search index's)."""
    commands = directory / "load.pgloader"
    url = parse_database_url(target).set(drivername="postgresql")
    commands.write_text(
        f"LOAD DATABASE FROM sqlite://{source} "
        f"INTO {url.render_as_string(hide_password=False)}\n"
        "INCLUDING ONLY TABLE NAMES LIKE 'items', 'orders';\n"
    )
    return ["pgloader", "--quiet", str(commands)]


def pgloader_result(target: str, source: Path) -> str:
    """What pgloader made of the timestamps and the id counter."""
    engine = sa.create_engine(parse_database_url(target))
    with engine.connect() as connection:
        time_type = connection.exec_driver_sql(
            "SELECT data_type FROM information_schema.columns "
            "WHERE table_name = 'items' AND column_name = 'created_at'"
        ).scalar()
        sequence = connection.exec_driver_sql(
            "SELECT pg_get_serial_sequence('items', 'id')"
        ).scalar()
        next_id = None
        if sequence:
            next_id = connection.exec_driver_sql(f"SELECT nextval('{sequence}')").scalar()
    engine.dispose()
    high_water = (
        sqlite3.connect(source)
        .execute("SELECT seq FROM sqlite_sequence WHERE name = 'items'")
        .fetchone()[0]
    )
    return (
        f"pgloader made items.created_at a {time_type}; its next items id is {next_id}, "
        f"the source's {high_water + 1}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="items, and as many orders")
    parser.add_argument("--small", type=int, default=100_000, help="rows for the memory comparison")
    options = parser.parse_args()
    runs: list[Run] = []
    with ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench_copy")))
        print(f"making a SQLite file of {options.rows:,} items and orders...", flush=True)
        big = make_source(directory / "big.db", options.rows)
        small = make_source(directory / "small.db", options.small)
        postgresql = stack.enter_context(fresh_database("postgresql"))
        loaded = stack.enter_context(fresh_database("postgresql"))
        print("SQLite -> PostgreSQL: items-service copy, then pgloader", flush=True)
        runs.append(
            measured("sqlite -> postgresql (items-service copy)", copy_command(big, postgresql))
        )
        runs.append(
            measured(
                "sqlite -> postgresql (pgloader)", pgloader(directory / "big.db", loaded, directory)
            )
        )
        note = pgloader_result(loaded, directory / "big.db")
        mysql = stack.enter_context(fresh_database("mysql"))
        directions = [
            ("postgresql -> mysql", postgresql, mysql),
            ("mysql -> sqlite", mysql, f"sqlite:///{directory / 'from_mysql.db'}"),
            ("sqlite -> mysql", big, stack.enter_context(fresh_database("mysql"))),
            ("postgresql -> sqlite", postgresql, f"sqlite:///{directory / 'from_pg.db'}"),
            ("mysql -> postgresql", mysql, stack.enter_context(fresh_database("postgresql"))),
            ("sqlite -> sqlite", big, f"sqlite:///{directory / 'from_sqlite.db'}"),
            (
                "postgresql -> postgresql",
                postgresql,
                stack.enter_context(fresh_database("postgresql")),
            ),
            ("mysql -> mysql", mysql, stack.enter_context(fresh_database("mysql"))),
        ]
        for what, source, target in directions:
            print(what, flush=True)
            runs.append(measured(what, copy_command(source, target)))
        print(f"SQLite -> PostgreSQL at {options.small:,} rows, for memory", flush=True)
        runs.append(
            measured(
                f"sqlite -> postgresql, {options.small:,} rows",
                copy_command(small, stack.enter_context(fresh_database("postgresql"))),
            )
        )
    rows = 2 * options.rows
    print(f"\n{options.rows:,} items and {options.rows:,} orders; each time the whole command:")
    print(f"{'':<44} {'seconds':>8} {'rows/s':>10} {'peak MB':>8}  exit")
    for run in runs:
        counted = 2 * options.small if run.what.endswith(f"{options.small:,} rows") else rows
        print(
            f"{run.what:<44} {run.seconds:>8.1f} {counted / run.seconds:>10,.0f} "
            f"{run.peak_mb:>8.0f}  {run.status}"
        )
    ours, theirs = runs[0], runs[1]
    ratio = ours.seconds / theirs.seconds
    print(f"\nitems-service copy takes {ratio:.2f} times pgloader's time, SQLite -> PostgreSQL")
    print(note)


if __name__ == "__main__":
    main()
