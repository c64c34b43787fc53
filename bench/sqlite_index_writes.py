"""`python -m bench.sqlite_index_writes`: what a create and a rename cost SQLite's
one writer with no index for `q`, with the trigram table of revisions 0009 to
0011, and with FTS5 (revision 0012).

Each variant gets its own database, migrated to the newest revision (then
down to 0011, or with the index's triggers dropped) and seeded with --items
items; writes then run as the writer thread runs them, in transactions of
--group, each in its own savepoint. Prints microseconds per write, wall and
CPU of this process, which is where SQLite works.
"""

import argparse
import random
import sqlite3
import time
from collections.abc import Callable

from alembic import command
from bench.databases import engine_for, fresh_database, seed
from service.items.models import NAME_FULL_TEXT, fold_case
from service.migrations import alembic_config, upgrade_to_head

# Names as bench/lua/rename.lua sends them.
RENAMED = "Renamed Widget {}"


def without_index(url: str) -> None:
    with sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None) as connection:
        for event in ("insert", "update", "delete"):
            connection.execute(f"DROP TRIGGER {NAME_FULL_TEXT}_{event}")


def with_trigram_table(url: str) -> None:
    engine = engine_for(url)
    config = alembic_config()
    config.attributes["connection"] = engine
    try:
        command.downgrade(config, "0011")
    finally:
        engine.dispose()


VARIANTS: dict[str, Callable[[str], None]] = {
    "no index": without_index,
    "trigram table (0009-0011)": with_trigram_table,
    "FTS5 (0012)": lambda url: None,
}


def writes(path: str, items: int, count: int, group: int, rename: bool) -> tuple[float, float]:
    """Microseconds per create or rename, wall and CPU."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA temp_store = MEMORY")
    chosen = random.Random(1)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(count // group):
        connection.execute("BEGIN IMMEDIATE")
        for _ in range(group):
            name = RENAMED.format(chosen.randrange(1_000_000))
            connection.execute("SAVEPOINT write")
            if rename:
                connection.execute(
                    "UPDATE items SET name = ?, name_folded = ? WHERE id = ?",
                    (name, fold_case(name), chosen.randint(1, items)),
                )
            else:
                connection.execute(
                    "INSERT INTO items (name, name_folded, price, created_at, updated_at) "
                    "VALUES (?, ?, 1, '2026-11-30 00:00:00', '2026-11-30 00:00:00')",
                    (name, fold_case(name)),
                )
            connection.execute("RELEASE write")
        connection.execute("COMMIT")
    connection.close()
    done = count // group * group
    return (
        (time.perf_counter() - wall) / done * 1e6,
        (time.process_time() - cpu) / done * 1e6,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--writes", type=int, default=8_000, help="of each kind")
    parser.add_argument("--group", type=int, default=16, help="writes per transaction")
    args = parser.parse_args()
    print(f"{args.items:,} items, writes in transactions of {args.group}, µs each\n")
    print("| index | create, wall | create, CPU | rename, wall | rename, CPU |")
    print("| --- | --- | --- | --- | --- |")
    for label, make in VARIANTS.items():
        with fresh_database("sqlite") as url:
            engine = engine_for(url)
            upgrade_to_head(engine)
            engine.dispose()
            seed(url, args.items)
            make(url)
            path = url.removeprefix("sqlite:///")
            figures = [
                figure
                for rename in (False, True)
                for figure in writes(path, args.items, args.writes, args.group, rename)
            ]
            print(f"| {label} | " + " | ".join(f"{figure:.0f}" for figure in figures) + " |")


if __name__ == "__main__":
    main()
