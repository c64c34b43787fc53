"""Each release of releases.toml, its own code checked out at its commit,
keeps serving a database with its data while the newest code migrates it:
no request fails, writes are acknowledged all along, and afterwards `q`
finds every item written and `alembic check` finds nothing
(`python -m bench.upgrade` is the same at scale, with its figures)."""

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from bench.databases import seed
from bench.servers import ROOT
from bench.upgrade import (
    Release,
    alembic_check,
    as_a_release_takes_it,
    checkout,
    migrate,
    missed_by_q,
    releases,
    upgrade_under_load,
)
from conftest import BACKEND, CLUSTER, settings_for
from schemas import schema_of
from service.db.backends import backend_for
from service.db.urls import parse_database_url

ITEMS = 3000
CLIENTS = 4


def supported(release: Release) -> Any:
    """The release as a parameter, deselected in a cluster env it did not support."""
    where = [] if not CLUSTER or CLUSTER in release.clusters else [pytest.mark.cluster("")]
    return pytest.param(release, id=release.commit[:7], marks=where)


@pytest.mark.parametrize("release", [supported(release) for release in releases()])
def test_a_release_keeps_serving_while_the_newest_code_migrates_its_database(
    release: Release, empty_database: str, record_property: Callable[[str, object], None]
) -> None:
    with checkout(release.commit) as old:
        migrated = migrate(old, as_a_release_takes_it(empty_database))
        assert migrated.returncode == 0, migrated.stderr
        seed(empty_database, ITEMS)
        upgrade, clients = upgrade_under_load(old, ROOT, empty_database, CLIENTS, load_before=1)
    assert upgrade.returncode == 0, upgrade.output
    for figure in ("seconds", "longest_request", "longest_without_a_write", "written_during"):
        record_property(figure, getattr(upgrade, figure))
    assert set(upgrade.statuses) <= {200, 201}, upgrade.statuses
    assert upgrade.written_during > 0
    assert missed_by_q(ROOT, empty_database, clients.written) == []
    checked = alembic_check(ROOT, empty_database)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    if BACKEND == "postgresql":
        invalid = [index for index in schema_of(empty_database)["indexes"] if not index[2]]
        assert invalid == []


# The first release, upgraded: it serves no two-host URL (postgres-ha); and
# on Galera a schema change waits for no lock, it aborts the transactions in
# its way on every node (total order isolation).
@pytest.mark.backends("postgresql", "mysql")
@pytest.mark.cluster("", "pgbouncer")
def test_a_long_transaction_holds_up_the_upgrade_and_no_request(empty_database: str) -> None:
    # A transaction that wrote to items, open for BLOCKED_SECONDS: a DDL
    # statement on items waits for it, and every write after the DDL waits
    # behind it. The migration's lock timeout ends each wait soon, and the
    # revision is tried again until the transaction is gone.
    first = releases()[0]
    with checkout(first.commit) as old:
        assert migrate(old, as_a_release_takes_it(empty_database)).returncode == 0
        seed(empty_database, 100)
        with held_open(empty_database, "UPDATE items SET price = price WHERE id = 1"):
            upgrade, _ = upgrade_under_load(old, ROOT, empty_database, CLIENTS, load_before=1)
    assert upgrade.returncode == 0, upgrade.output
    assert set(upgrade.statuses) <= {200, 201}, upgrade.statuses
    assert "waited too long for a lock" in upgrade.output
    assert upgrade.longest_request < LONGEST_REQUEST_SECONDS


@pytest.mark.backends("mysql")
@pytest.mark.cluster("")
def test_a_trigger_gives_up_waiting_for_its_table_within_half_a_second_on_mariadb(
    empty_database: str,
) -> None:
    # A transaction that read the table holds its metadata lock; a trigger
    # made on it waits, and every request behind it waits as long. MariaDB's
    # wait ends at 0.5 s (`online.briefly`); MySQL's at lock_wait_timeout's
    # least, 1 s. Either way nothing was made, and the revision runs again.
    url = parse_database_url(empty_database)
    backend = backend_for(url, settings_for(empty_database))
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE held (id INT PRIMARY KEY)")
        with engine.connect() as holder, engine.connect() as migrating:
            holder.exec_driver_sql("SELECT * FROM held").all()
            migrating = backend.start_migrating(migrating)
            create = backend.waiting_briefly(
                migrating,
                "CREATE TRIGGER held_insert BEFORE INSERT ON held FOR EACH ROW SET NEW.id = NEW.id",
            )
            started = time.monotonic()
            with pytest.raises(sa.exc.DBAPIError) as gave_up:
                migrating.exec_driver_sql(create)
            waited = time.monotonic() - started
            assert backend.lock_timed_out(gave_up.value)
            holder.rollback()
            triggers = migrating.exec_driver_sql("SHOW TRIGGERS LIKE 'held'").all()
    finally:
        engine.dispose()
    assert triggers == []
    if migrating.dialect.is_mariadb:
        assert 0.4 < waited < 0.9
    else:
        assert waited >= 1


# Long enough that the upgrade meets the transaction even when the old
# release and its clients are slow to start on a busy machine. The
# transaction ends sooner once a revision's statement has been seen waiting
# for it: a few lock timeouts later (PostgreSQL's 0.5 s, MySQL's 1 s), so
# that the revision gives up at least once ("waited too long for a lock").
BLOCKED_SECONDS = 20
HELD_AFTER_A_WAIT_SECONDS = 3
LONGEST_REQUEST_SECONDS = 4
# Statements changing this database's schema that wait for a lock, as the
# server lists them (MariaDB's brief ones start `SET STATEMENT ... FOR`);
# other runs may share the server.
WAITING_SCHEMA_CHANGES = {
    "postgresql": "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
    " AND datname = current_database() AND query ~* '^\\s*(CREATE|ALTER|DROP)\\M'",
    "mysql": "SELECT count(*) FROM information_schema.PROCESSLIST"
    " WHERE DB = DATABASE() AND STATE REGEXP '^Waiting for .*lock'"
    " AND INFO REGEXP '(^|FOR[[:space:]]+)[[:space:]]*(CREATE|ALTER|DROP)[[:space:]]'",
}


@contextmanager
def held_open(url: str, statement: str) -> Iterator[None]:
    """`statement` run in a transaction, in the background, while the block
    runs: open until a schema change has waited for it for a few lock
    timeouts, or for BLOCKED_SECONDS if none does."""
    engine = sa.create_engine(parse_database_url(url))
    started = threading.Event()

    def hold() -> None:
        with engine.begin() as connection:
            connection.exec_driver_sql(statement)
            started.set()
            until_a_schema_change_waits(engine)
            time.sleep(HELD_AFTER_A_WAIT_SECONDS)

    thread = threading.Thread(target=hold)
    thread.start()
    started.wait()
    try:
        yield
    finally:
        thread.join()
        engine.dispose()


def until_a_schema_change_waits(engine: sa.Engine) -> None:
    deadline = time.monotonic() + BLOCKED_SECONDS
    while time.monotonic() < deadline:
        # A transaction each: PostgreSQL keeps what pg_stat_activity showed
        # for the rest of a transaction.
        with engine.begin() as watcher:
            if watcher.exec_driver_sql(WAITING_SCHEMA_CHANGES[BACKEND]).scalar():
                return
        time.sleep(0.1)
