"""`items-service check` as users run it: a real process, its lines and its exit status."""

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from alembic import command
from clusters import GaleraCluster, PostgresPair
from conftest import (
    BACKEND,
    binary_logging,
    global_setting,
    on_every_server,
    run_as_admin,
    server_account,
    server_url,
    settings_for,
)
from servers import free_port, service_env
from service import migrations
from service.db.engine import create_engine
from service.db.urls import parse_database_url

PASSWORD = "p@ss:w/rd%?x"
SECRETS = (PASSWORD, quote(PASSWORD, safe=""))
ROOT = Path(__file__).parent.parent
# The account `account` makes, its name this run's own: other runs may share the server.
CHECK_USER = f"items_check_user_{uuid.uuid4().hex[:8]}"

# SQLite has no accounts; a SQLite file has a directory.
servers_only = pytest.mark.backends("postgresql", "mysql")
sqlite_only = pytest.mark.backends("sqlite")


def run_check(
    url: str, *arguments: str, prefix: tuple[str, ...] = (), **variables: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "service", "check", *arguments],
        env=service_env(DATABASE_URL=url, **variables),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def lines(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """Each line's check name -> the whole line; stderr must be empty."""
    assert result.stderr == ""
    return {line[9:].split(":")[0]: line for line in result.stdout.splitlines()}


def migrate(url: str, revision: str = "head") -> None:
    engine = create_engine(parse_database_url(url), settings_for(url))
    config = migrations.alembic_config()
    config.attributes["connection"] = engine
    config.attributes["configure_logger"] = False
    try:
        command.upgrade(config, revision)
    finally:
        engine.dispose()


def table_names(url: str) -> list[str]:
    engine = sa.create_engine(parse_database_url(url))
    try:
        return sorted(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_a_healthy_database_passes(database_url: str) -> None:
    result = run_check(database_url)
    assert result.returncode == 0, result.stdout
    found = lines(result)
    assert all(line.startswith(("ok ", "warning ")) for line in found.values()), result.stdout
    assert (
        found["schema"] == f"ok       schema: at the newest revision, {migrations.head_revision()}"
    )
    assert found["round trip"].startswith("ok ")
    assert found["server"].startswith("ok ")
    assert found["connection"].startswith("ok ")
    assert ("privileges" in found) is (BACKEND != "sqlite")
    assert ("full-text search" in found) is (BACKEND == "sqlite")


def test_json_says_the_same(database_url: str) -> None:
    text = run_check(database_url)
    as_json = run_check(database_url, "--json")
    assert as_json.returncode == text.returncode == 0
    report = json.loads(as_json.stdout)
    assert report["status"] in ("ok", "warning")
    assert [(c["name"], c["status"]) for c in report["checks"]] == [
        (line[9:].split(":")[0], line.split()[0]) for line in text.stdout.splitlines()
    ]
    assert all(c["fix"] for c in report["checks"] if c["status"] != "ok")


def files_beside(url: str) -> list[Path]:
    """The files in a SQLite database's directory; none for a server."""
    if BACKEND != "sqlite":
        return []
    return sorted(Path(parse_database_url(url).database or "").parent.iterdir())


def test_nothing_is_left_behind(database_url: str) -> None:
    tables, files = table_names(database_url), files_beside(database_url)
    assert run_check(database_url).returncode == 0
    assert table_names(database_url) == tables
    assert files_beside(database_url) == files


@pytest.mark.parametrize(
    ("migrate_on_start", "status"), [("true", "warning"), ("false", "problem")]
)
def test_an_empty_database_is_migrated_on_start_or_a_problem(
    empty_database: str, migrate_on_start: str, status: str
) -> None:
    result = run_check(empty_database, MIGRATE_ON_START=migrate_on_start)
    assert result.returncode == (1 if status == "problem" else 0), result.stdout
    schema = lines(result)["schema"]
    assert schema.startswith(f"{status:<8} schema: empty: no tables yet")
    assert "alembic upgrade head" in schema
    if BACKEND == "sqlite":
        assert not Path(parse_database_url(empty_database).database or "").exists()


@pytest.mark.parametrize(
    ("migrate_on_start", "status"), [("true", "warning"), ("false", "problem")]
)
def test_a_schema_behind_is_reported(
    empty_database: str, migrate_on_start: str, status: str
) -> None:
    migrate(empty_database, "0005")
    head = migrations.head_revision()
    # Revisions are numbered one after another.
    behind = int(str(head)) - 5
    result = run_check(empty_database, MIGRATE_ON_START=migrate_on_start)
    assert result.returncode == (1 if status == "problem" else 0), result.stdout
    assert lines(result)["schema"].startswith(
        f"{status:<8} schema: behind: at revision 0005, {behind} behind the newest, {head}"
    )


def test_a_schema_a_newer_service_wrote_is_a_problem(empty_database: str) -> None:
    migrate(empty_database)
    engine = sa.create_engine(parse_database_url(empty_database))
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0099'")
    engine.dispose()
    result = run_check(empty_database)
    assert result.returncode == 1
    assert lines(result)["schema"].startswith(
        "problem  schema: at revision 0099, which this version of the service cannot serve"
    )


@pytest.mark.parametrize(
    "url",
    [f"oracle://scott:{quote(PASSWORD, safe='')}@db/orcl", f"postgresql://u:{PASSWORD}@db:x/i"],
)
def test_an_unusable_url_stops_with_one_clear_line(url: str) -> None:
    result = run_check(url)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: DATABASE_URL") and result.stderr.count("\n") == 1
    assert not any(secret in result.stderr for secret in SECRETS)


def unreachable_url(tmp_path: Path) -> str:
    if BACKEND == "sqlite":
        not_a_database = tmp_path / "notes.db"
        not_a_database.write_text("these are notes, not a database\n" * 200)
        return f"sqlite:///{not_a_database}"
    return (
        server_url()
        .set(port=free_port(), username="items", password=PASSWORD)
        .render_as_string(hide_password=False)
    )


def test_a_database_that_cannot_be_reached_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    result = run_check(unreachable_url(tmp_path))
    assert result.returncode == 1
    found = lines(result)
    assert found["connection"].startswith("problem  connection: cannot connect to ")
    assert "; fix: check that the " in found["connection"]
    assert not any(secret in result.stdout for secret in SECRETS)


@contextmanager
def account(database_url: str, *grants: str) -> Iterator[str]:
    """An account on the database that may do what `grants` allow (`{name}` in them is the
    account, `{database}` the database), and nothing more; its URL.

    Its password needs percent-encoding, and must never show.
    """
    database = sa.engine.make_url(database_url).database
    name = CHECK_USER
    with server_account(name, PASSWORD):
        if BACKEND == "postgresql":
            # PostgreSQL before 15 lets everyone create tables in public.
            run_as_admin(database_url, "REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        for grant in grants:
            run_as_admin(database_url, grant.format(name=name, database=database))
        url = sa.engine.make_url(database_url).set(username=name, password=PASSWORD)
        try:
            yield url.render_as_string(hide_password=False)
        finally:
            if BACKEND == "postgresql":
                run_as_admin(database_url, f"DROP OWNED BY {name}")


def check_of(result: subprocess.CompletedProcess[str], name: str) -> dict[str, str]:
    report = json.loads(result.stdout)
    return next(c for c in report["checks"] if c["name"] == name)  # type: ignore[no-any-return]


ROW_GRANTS = {
    "postgresql": (
        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {name}",
        "GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {name}",
    ),
    "mysql": ("GRANT SELECT, INSERT, UPDATE, DELETE ON {database}.* TO '{name}'@'%'",),
}
ALL_BUT_CREATE = {
    "postgresql": ROW_GRANTS["postgresql"],
    "mysql": (
        "GRANT SELECT, INSERT, UPDATE, DELETE, ALTER, INDEX, DROP ON {database}.* TO '{name}'@'%'",
    ),
}


@servers_only
def test_an_account_that_may_not_create_tables_is_a_problem_with_its_grant(
    empty_database: str,
) -> None:
    with account(empty_database, *ALL_BUT_CREATE[BACKEND]) as url:
        result = run_check(url, "--json")
        assert result.returncode == 1
        privileges = check_of(result, "privileges")
        assert privileges["status"] == "problem"
        assert privileges["found"].startswith(CHECK_USER)
        assert "cannot CREATE TABLE" in privileges["found"]
        assert privileges["fix"].startswith("GRANT ")
        assert not any(secret in result.stdout + result.stderr for secret in SECRETS)
        # The fix is the one to run: granted, the account passes.
        run_as_admin(empty_database, privileges["fix"].split(" (")[0])
        found = lines(run_check(url))["privileges"]
        if not binary_logging():
            assert found.startswith("ok ")
            return
        # Binary logging or Galera on: without SUPER, an account may create
        # the triggers of revision 0010 only if the server lets it.
        assert "cannot CREATE TRIGGER" in found, found
        assert "fix: SET GLOBAL log_bin_trust_function_creators = 1" in found, found
        with global_setting(empty_database, "log_bin_trust_function_creators", "1"):
            assert lines(run_check(url))["privileges"].startswith("ok ")


@servers_only
def test_an_account_that_may_not_change_the_schema_is_a_warning_when_the_service_does_not_migrate(
    empty_database: str,
) -> None:
    migrate(empty_database)
    with account(empty_database, *ROW_GRANTS[BACKEND]) as url:
        result = run_check(url, MIGRATE_ON_START="false")
        assert result.returncode == 0, result.stdout
        privileges = lines(result)["privileges"]
        assert privileges.startswith(f"warning  privileges: {CHECK_USER}")
        assert "(MIGRATE_ON_START is off: only the account that migrates needs this)" in privileges
        assert privileges.endswith(
            "; fix: run this check with the URL of the account that runs `alembic upgrade head`"
        )


@pytest.mark.backends("postgresql")  # its sequences
def test_an_account_that_may_not_use_the_id_sequence_is_a_problem(empty_database: str) -> None:
    migrate(empty_database)
    tables_only = ROW_GRANTS["postgresql"][0]
    with account(empty_database, tables_only) as url:
        result = run_check(url, "--json", MIGRATE_ON_START="false")
        assert result.returncode == 1
        privileges = check_of(result, "privileges")
        assert privileges["status"] == "problem"
        assert f"{CHECK_USER} may not read and write items, orders" in privileges["found"]
        # After the fix for migrating, which this account is not for.
        grants = privileges["fix"].split("; ")[1:]
        assert grants == [
            f"GRANT USAGE ON SEQUENCE public.{table}_id_seq TO {CHECK_USER}"
            for table in ("items", "orders")
        ]
        for grant in grants:
            run_as_admin(empty_database, grant)
        assert run_check(url, MIGRATE_ON_START="false").returncode == 0


@pytest.mark.backends("postgresql")  # grants by table
def test_an_account_that_may_write_the_items_but_not_the_orders_is_a_problem(
    empty_database: str,
) -> None:
    migrate(empty_database)
    items_only = (
        "GRANT SELECT, INSERT, UPDATE, DELETE ON items TO {name}",
        "GRANT SELECT ON alembic_version TO {name}",
        "GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {name}",
    )
    with account(empty_database, *items_only) as url:
        result = run_check(url, "--json", MIGRATE_ON_START="false")
        assert result.returncode == 1
        privileges = check_of(result, "privileges")
        assert privileges["status"] == "problem"
        grants = privileges["fix"].split("; ")[1:]
        assert grants == [f"GRANT SELECT, INSERT, UPDATE, DELETE ON orders TO {CHECK_USER}"]
        for grant in grants:
            run_as_admin(empty_database, grant)
        assert run_check(url, MIGRATE_ON_START="false").returncode == 0


@servers_only
def test_more_connections_than_the_server_allows_is_a_problem(database_url: str) -> None:
    # Met directly: through PgBouncer the server's max_connections does not apply.
    server = on_every_server(database_url)[0]
    result = run_check(server, WEB_CONCURRENCY="50", DB_POOL_SIZE="10", DB_MAX_OVERFLOW="2")
    assert result.returncode == 1
    connections = lines(result)["connections"]
    assert connections.startswith(
        "problem  connections: 50 process(es) x 12 (DB_POOL_SIZE 10 + DB_MAX_OVERFLOW 2) = 600 "
        "connections, more than max_connections"
    )
    assert "; fix: keep DB_POOL_SIZE + DB_MAX_OVERFLOW at " in connections


@pytest.mark.backends("postgresql")  # default_transaction_read_only
def test_a_read_only_postgresql_database_is_a_problem(empty_database: str) -> None:
    database = sa.engine.make_url(empty_database).database
    admin = sa.create_engine(server_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(
            f"ALTER DATABASE {database} SET default_transaction_read_only = on"
        )
    admin.dispose()
    # Met directly (PgBouncer's pooled sessions keep the defaults they began
    # with), and without target_session_attrs=read-write (postgres-ha), which
    # would refuse to connect at all: the check must be the one to find it.
    url = sa.engine.make_url(on_every_server(empty_database)[0])
    url = url.difference_update_query(["target_session_attrs"])
    result = run_check(url.render_as_string(hide_password=False))
    assert result.returncode == 1
    found = lines(result)
    assert found["read-write"].startswith("problem  read-write: the primary, but ")
    assert (
        f"ALTER DATABASE {database} SET default_transaction_read_only = off"
        in (found["read-write"])
    )
    assert found["privileges"] == "warning  privileges: not checked: the server is read-only"


@pytest.mark.backends("mysql")  # its table collations
def test_every_table_of_the_service_must_be_utf8mb4_bin(empty_database: str) -> None:
    migrate(empty_database)
    engine = sa.create_engine(parse_database_url(empty_database))
    with engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE orders COLLATE utf8mb4_general_ci")
    result = run_check(empty_database)
    assert result.returncode == 1
    fix = "ALTER TABLE orders CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
    assert lines(result)["tables"] == (
        "problem  tables: the orders table is utf8mb4_general_ci: its text is not kept and "
        f"compared exactly; fix: {fix}"
    )
    with engine.begin() as connection:
        connection.exec_driver_sql(fix)
    engine.dispose()
    assert lines(run_check(empty_database))["tables"] == "ok       tables: InnoDB, utf8mb4_bin"


@sqlite_only
def test_a_missing_directory_is_a_problem_and_nothing_is_created(tmp_path: Path) -> None:
    missing = tmp_path / "not-mounted"
    result = run_check(f"sqlite:///{missing}/items.db")
    assert result.returncode == 1
    assert lines(result)["file"] == (
        f"problem  file: {missing} does not exist: the database file cannot be created there; "
        f"fix: mkdir -p {missing} (writable by the service's user), or fix the path"
    )
    assert list(tmp_path.iterdir()) == []


def without_permission_override() -> tuple[str, ...]:
    """A prefix that runs a command as bound by file permissions as a service's own user.

    Root ignores permissions; without CAP_DAC_OVERRIDE it is bound by them.
    """
    if os.geteuid() != 0:
        return ()
    return ("setpriv", "--bounding-set=-dac_override,-dac_read_search", "--")


@sqlite_only
def test_a_directory_the_process_cannot_write_is_a_problem(tmp_path: Path) -> None:
    directory = tmp_path / "read-only"
    directory.mkdir()
    url = f"sqlite:///{directory}/items.db"
    migrate(url)
    files = sorted(directory.iterdir())
    directory.chmod(0o555)
    try:
        result = run_check(url, prefix=without_permission_override())
    finally:
        directory.chmod(0o755)
    assert result.returncode == 1
    file = lines(result)["file"]
    assert file.startswith(f"problem  file: {directory}/items.db exists")
    assert file.endswith(
        f"; cannot create files in {directory} (Permission denied): SQLite's WAL keeps "
        "items.db-wal and items.db-shm beside the database; "
        f"fix: make {directory} writable by the service's user"
    )
    assert sorted(directory.iterdir()) == files


@pytest.mark.cluster("galera")
def test_a_galera_cluster_passes_and_one_of_two_nodes_left_is_a_warning(
    session_cluster: GaleraCluster, empty_database: str
) -> None:
    url = sa.engine.make_url(session_cluster.node_urls[0]).set(
        database=sa.engine.make_url(empty_database).database
    )
    healthy = run_check(url.render_as_string(hide_password=False))
    assert healthy.returncode == 0, healthy.stdout
    found = lines(healthy)
    assert found["server"].startswith("ok       server: MariaDB ")
    assert ", a Galera node (tested: " in found["server"]
    assert found["galera cluster"] == "ok       galera cluster: 3 node(s); Synced, ready, Primary"
    assert "wsrep_on ON; binlog_format ROW; innodb_autoinc_lock_mode 2" in found["galera settings"]
    assert "wsrep_sync_wait 7 on the service's connections" in found["galera settings"]
    session_cluster.kill_node(2)
    try:
        degraded = run_check(url.render_as_string(hide_password=False))
    finally:
        session_cluster.start_node(2)
    assert degraded.returncode == 0, degraded.stdout
    assert lines(degraded)["galera cluster"] == (
        "warning  galera cluster: 2 node(s); fewer than 3 nodes: losing one leaves no "
        "majority, and the rest stop; Synced, ready, Primary; "
        "fix: add a node, or an arbitrator (garbd)"
    )


@pytest.mark.cluster("postgres-ha")
def test_a_standby_is_a_problem_and_the_pair_given_as_two_hosts_passes(
    session_cluster: PostgresPair, empty_database: str
) -> None:
    database = sa.engine.make_url(empty_database).database
    standby = sa.engine.make_url(session_cluster.standby_url).set(database=database)
    # The standby has the database once it has replayed its creation.
    deadline = time.monotonic() + 15
    while "server" not in lines(result := run_check(standby.render_as_string(hide_password=False))):
        assert time.monotonic() < deadline, result.stdout
        time.sleep(0.2)
    assert result.returncode == 1, result.stdout
    assert lines(result)["read-write"].startswith("problem  read-write: a standby")
    pair = run_check(empty_database)
    assert pair.returncode == 0, pair.stdout
    assert lines(pair)["read-write"].startswith("ok ")


@pytest.mark.cluster("pgbouncer")
def test_pgbouncer_in_front_is_named(database_url: str) -> None:
    result = run_check(database_url)
    assert result.returncode == 0, result.stdout
    assert lines(result)["pooler"].startswith("ok       pooler: a connection pooler (PgBouncer")
