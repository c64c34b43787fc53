"""`items-service check`: will the database in DATABASE_URL behave as the service promises?

Each check asks one question and answers ok, warning or problem, with what to
do about anything that is not ok. Nothing is left behind: values go through
temporary tables, privileges are probed in a transaction rolled back
(PostgreSQL) or on a uniquely named table dropped at once (MySQL/MariaDB),
and a SQLite file that does not exist yet is not created.
"""

import argparse
import json
import sys
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, cast

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import URL, Connection, Engine

from service.db.backends import Backend, backend_for
from service.db.backends.mysql import POOL_RECYCLE_SECONDS
from service.db.engine import create_engine
from service.db.types import ExactString, UTCDateTime
from service.db.urls import DatabaseURLError, parse_database_url, safe_url
from service.migrations import alembic_config, current_revision, head_revision
from service.settings import Settings

Status = Literal["ok", "warning", "problem"]
SEVERITY: dict[Status, int] = {"ok": 0, "warning": 1, "problem": 2}

KINDS = {"postgresql": "PostgreSQL", "mysql": "MySQL", "mariadb": "MariaDB", "sqlite": "SQLite"}
# The suite runs on these (CI, and the Docker matrix in compose/).
TESTED_VERSIONS = {
    "postgresql": ((15,), (18,)),
    "mysql": ((8, 4),),
    "mariadb": ((10, 11), (11, 8)),
    "sqlite": ((3, 40),),
}
# Older servers lack what the service and its migrations use. SQLite has no
# floor: without RETURNING (3.35) an update takes two statements, as on MySQL.
OLDEST_SUPPORTED = {"postgresql": (12,), "mysql": (8, 0), "mariadb": (10, 5)}
SQLITE_RETURNING = (3, 35)

CONNECT_FIX = {
    "sqlite": "check that the file is a SQLite database this process may read and write",
    "server": "check that the server is running and reachable from here (host, port, "
    "firewall), and the user name, password and database name in DATABASE_URL",
    "galera": "this Galera node is cut off from the cluster's majority: connect to a node "
    "that is Synced, or restore quorum",
}
# ER_UNKNOWN_COM_ERROR: what a Galera node answers until it is in the primary component.
GALERA_NOT_READY = 1047
# SQLite's locking and WAL need a local disk.
NETWORK_FILESYSTEMS = {"nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "afs", "ceph"}


@dataclass(frozen=True)
class Finding:
    status: Status
    found: str
    fix: str | None = None


@dataclass(frozen=True)
class Result:
    name: str
    status: Status
    found: str
    fix: str | None = None


@dataclass(frozen=True)
class Target:
    url: URL
    settings: Settings
    backend: Backend


Check = Callable[[Connection, Target], Finding | None]


def combined(findings: Iterable[Finding]) -> Finding:
    """One finding for several: the worst status, every finding, every fix."""
    findings = list(findings)
    worst = max((finding.status for finding in findings), key=SEVERITY.__getitem__)
    fixes = dict.fromkeys(finding.fix for finding in findings if finding.fix)
    return Finding(
        worst, "; ".join(finding.found for finding in findings), "; ".join(fixes) or None
    )


def error_message(error: sa.exc.DBAPIError) -> str:
    """The driver's message, first line only (PostgreSQL adds the statement below it)."""
    original = error.orig
    arguments: tuple[Any, ...] = getattr(original, "args", ())
    # mysqlclient: (code, message).
    if len(arguments) == 2 and isinstance(arguments[0], int):
        text = str(arguments[1])
    else:
        text = str(original)
    lines = text.strip().splitlines()
    return lines[0] if lines else type(original).__name__


def is_read_only_error(error: sa.exc.DBAPIError) -> bool:
    # PostgreSQL: read_only_sql_transaction; MySQL/MariaDB: --read-only, read-only transaction.
    code = getattr(error.orig, "pgcode", None) or getattr(error.orig, "args", (None,))[0]
    return code in ("25006", 1290, 1792)


def scalar(connection: Connection, sql: str, **parameters: object) -> Any:
    return connection.execute(sa.text(sql), parameters).scalar()


def shown(connection: Connection, statement: str, pattern: str) -> dict[str, str]:
    """`SHOW ... LIKE :pattern` as a dict of name to value."""
    rows = connection.execute(sa.text(f"{statement} LIKE :pattern"), {"pattern": pattern})
    return {str(row[0]): str(row[1]) for row in rows}


def global_variables(connection: Connection, *names: str) -> dict[str, str]:
    listed = ", ".join(f"'{name}'" for name in names)
    rows = connection.exec_driver_sql(f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({listed})")
    return {str(name): str(value) for name, value in rows}


def quoted(connection: Connection, name: str) -> str:
    return connection.dialect.identifier_preparer.quote(name)


def scratch_name() -> str:
    return f"items_check_{uuid.uuid4().hex[:12]}"


# --- every backend ------------------------------------------------------------------------


def version_finding(backend: str, version: tuple[int, ...], details: str = "") -> Finding:
    tested = TESTED_VERSIONS[backend]
    tested_text = ", ".join(".".join(map(str, v)) for v in tested)
    text = f"{KINDS[backend]} {'.'.join(map(str, version))}{details} (tested: {tested_text})"
    oldest = OLDEST_SUPPORTED.get(backend)
    if oldest is not None and version[: len(oldest)] < oldest:
        fix = f"upgrade to {'.'.join(map(str, tested[-1]))} (at least {'.'.join(map(str, oldest))})"
        return Finding("problem", f"{text}: too old", fix)
    if version[: len(tested[0])] < tested[0]:
        return Finding("warning", f"{text}: older than tested", "upgrade to a tested version")
    if version[: len(tested[-1])] > tested[-1]:
        return Finding("warning", f"{text}: newer than tested")
    return Finding("ok", text)


def server_version(connection: Connection) -> tuple[int, ...]:
    info = connection.dialect.server_version_info or ()
    return tuple(part for part in info if isinstance(part, int))


@dataclass(frozen=True, order=True)
class Limit:
    connections: int
    meaning: str
    setting: str


def connection_budget(target: Target, limits: list[Limit], open_now: int) -> Finding:
    """The service's connections, all processes together, against the tightest server limit."""
    pool = target.backend.pool_limits()
    assert pool is not None
    workers = target.settings.web_concurrency
    need = workers * sum(pool)
    tightest = min(limits)
    limit, limit_text = tightest.connections, tightest.meaning
    needed_text = (
        f"{workers} process(es) x {sum(pool)} (DB_POOL_SIZE {pool[0]} + DB_MAX_OVERFLOW "
        f"{pool[1]}) = {need} connections"
    )
    per_process = max(limit // workers, 1)
    fix = (
        f"keep DB_POOL_SIZE + DB_MAX_OVERFLOW at {per_process} or less per process "
        f"(or fewer WEB_CONCURRENCY processes), or raise {tightest.setting}"
    )
    if need > limit:
        return Finding("problem", f"{needed_text}, more than {limit_text} ({limit})", fix)
    if need + open_now > limit:
        return Finding(
            "warning",
            f"{needed_text} fit {limit_text} ({limit}), but not beside the {open_now} "
            "other connections open now",
            f"if those stay, {fix}",
        )
    return Finding(
        "ok", f"{needed_text} of {limit_text} ({limit}); {open_now} other connections open now"
    )


def schema_revision(connection: Connection, target: Target) -> Finding:
    current = current_revision(connection)
    head = head_revision()
    if current is None:
        if sa.inspect(connection).has_table("items"):
            return Finding(
                "problem",
                "an items table exists without an Alembic revision: not made by these migrations",
                "point DATABASE_URL at another database; if the table matches a revision, "
                "`alembic stamp <revision>` adopts it",
            )
        return schema_not_at_head("empty: no tables yet", target.settings.migrate_on_start)
    if current == head:
        return Finding("ok", f"at the newest revision, {head}")
    script = ScriptDirectory.from_config(alembic_config())
    try:
        script.get_revision(current)
    except CommandError:
        return Finding(
            "problem",
            f"at revision {current}, which this version of the service does not know "
            f"(its newest is {head}): a newer version migrated it",
            "deploy that newer version, or downgrade the schema with it first "
            f"(`alembic downgrade {head}` from its checkout)",
        )
    behind = len(list(script.iterate_revisions(head, current)))
    return schema_not_at_head(
        f"behind: at revision {current}, {behind} behind the newest, {head}",
        target.settings.migrate_on_start,
    )


def schema_not_at_head(found: str, migrate_on_start: bool) -> Finding:
    if migrate_on_start:
        return Finding(
            "warning",
            f"{found} (the service migrates it when it starts)",
            "run `alembic upgrade head`, or start the service",
        )
    return Finding(
        "problem",
        f"{found}, and MIGRATE_ON_START is off: /health/ready and every request answer 503",
        "run `alembic upgrade head` before starting the service",
    )


# What the service promises to keep exactly, through its own column types.
EMOJI_NAME = "Pizza \N{SLICE OF PIZZA}, clef \N{MUSICAL SYMBOL G CLEF}"
TOP_PRICE = Decimal("999999999.99")
WITH_MICROSECONDS = datetime(2026, 1, 31, 23, 59, 59, 999999, tzinfo=UTC)
SKUS = ("ABC", "ABC ", "abc")


def round_trip_table() -> sa.Table:
    return sa.Table(
        scratch_name(),
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(255)),
        sa.Column("price", sa.Numeric(12, 2)),
        sa.Column("at", UTCDateTime()),
        sa.Column("sku", ExactString(64), unique=True),
        prefixes=["TEMPORARY"],
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
    )


def round_trip(connection: Connection, target: Target) -> Finding:
    table = round_trip_table()
    try:
        table.create(connection)
    except sa.exc.DBAPIError as error:
        if is_read_only_error(error):
            return Finding("warning", "not run: the server is read-only")
        return Finding(
            "warning",
            f"not run: cannot create a temporary table: {error_message(error)}",
            "allow temporary tables (PostgreSQL: GRANT TEMPORARY ON DATABASE; MySQL/MariaDB: "
            "GRANT CREATE TEMPORARY TABLES); only this check uses them",
        )
    try:
        with warnings.catch_warnings():
            # SQLite has no decimal type: SQLAlchemy converts through float, exact
            # for prices (at most 11 significant digits), and says so.
            warnings.filterwarnings("ignore", "Dialect sqlite", sa.exc.SAWarning)
            return values_kept(connection, table)
    finally:
        # After a failed statement PostgreSQL refuses every other one until the
        # transaction ends (which drops the table there, hence IF EXISTS).
        connection.rollback()
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS {table.name}")


def values_kept(connection: Connection, table: sa.Table) -> Finding:
    sent = [
        {"id": n, "name": EMOJI_NAME, "price": TOP_PRICE, "at": WITH_MICROSECONDS, "sku": sku}
        for n, sku in enumerate(SKUS)
    ]
    for row in sent:
        try:
            connection.execute(table.insert(), row)
        except sa.exc.DBAPIError as error:
            refused = (
                f"sku {row['sku']!r} beside {SKUS[0]!r} under a unique index"
                if isinstance(error, sa.exc.IntegrityError)
                else "emoji, 999999999.99 and microseconds"
            )
            return Finding(
                "problem",
                f"could not store {refused}: {error_message(error)}",
                "create the database with UTF-8 text (MySQL: utf8mb4) and use the service's "
                "migrations",
            )
    stored = connection.execute(sa.select(table).order_by(table.c.id)).mappings().all()
    changed = [
        f"{column} {value!r} came back as {got[column]!r}"
        for row, got in zip(sent, stored, strict=True)
        for column, value in row.items()
        if got[column] != value
    ]
    if changed:
        return Finding(
            "problem",
            "values changed: " + "; ".join(dict.fromkeys(changed)),
            "create the database with UTF-8 text (MySQL: utf8mb4) and use the service's migrations",
        )
    return Finding(
        "ok",
        "emoji, 999999999.99 as NUMERIC(12,2), microseconds, and skus 'ABC', 'ABC ', 'abc' "
        "as three values under a unique index: all kept exactly",
    )


# --- PostgreSQL ---------------------------------------------------------------------------


def postgres_server(connection: Connection, target: Target) -> Finding:
    return version_finding("postgresql", server_version(connection))


def postgres_read_write(connection: Connection, target: Target) -> Finding:
    in_recovery, default_read_only, read_only = connection.execute(
        sa.text(
            "SELECT pg_is_in_recovery(), current_setting('default_transaction_read_only'), "
            "current_setting('transaction_read_only')"
        )
    ).one()
    if in_recovery:
        return Finding(
            "problem",
            "a standby (in recovery): it accepts no writes",
            "point DATABASE_URL at the primary, or list every host and add "
            "target_session_attrs=read-write so that the driver picks the primary",
        )
    if "on" in (default_read_only, read_only):
        database = quoted(connection, scalar(connection, "SELECT current_database()"))
        return Finding(
            "problem",
            "the primary, but default_transaction_read_only is on for this database or "
            "account: every write fails",
            f"ALTER DATABASE {database} SET default_transaction_read_only = off (or ALTER ROLE "
            "..., wherever it is set)",
        )
    return Finding("ok", "the primary: accepts writes")


def through_pooler(connection: Connection) -> bool:
    """Whether a pooler (PgBouncer, RDS Proxy, ...) sits between the driver and the server.

    A pooler hands its clients a backend id of its own making (BackendKeyData,
    which cancel requests use), never the id of the server process that runs
    the statements.
    """
    dbapi_connection = cast(Any, connection.connection.dbapi_connection)
    client_side = dbapi_connection.get_backend_pid()
    return bool(client_side != scalar(connection, "SELECT pg_backend_pid()"))


def postgres_pooler(connection: Connection, target: Target) -> Finding:
    if not through_pooler(connection):
        return Finding("ok", "none: connected to the server itself")
    return Finding(
        "warning",
        "reached through a connection pooler (PgBouncer or similar: the backend id the driver "
        "sees is not the server's)",
        "migrations hold a session lock (pg_advisory_lock): with pool_mode = transaction, run "
        "`alembic upgrade head` against the server directly and set MIGRATE_ON_START=false",
    )


def postgres_encoding(connection: Connection, target: Target) -> Finding:
    encoding = scalar(connection, "SHOW server_encoding")
    if encoding == "UTF8":
        return Finding("ok", "UTF8")
    return Finding(
        "problem",
        f"{encoding}: text outside it (emoji, most scripts) cannot be stored",
        "create the database with ENCODING 'UTF8' TEMPLATE template0 and move the data there",
    )


def first_failing_step(
    connection: Connection, steps: list[tuple[str, str]]
) -> tuple[str, sa.exc.DBAPIError] | None:
    for label, statement in steps:
        try:
            connection.exec_driver_sql(statement)
        except sa.exc.DBAPIError as error:
            return label, error
    return None


def migration_steps(name: str, schema: str | None = None) -> list[tuple[str, str]]:
    """What migrations and the service do to a table, one statement each."""
    table = name if schema is None else f"{schema}.{name}"
    return [
        ("CREATE TABLE", f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, sku VARCHAR(64))"),
        ("CREATE INDEX", f"CREATE INDEX ix_{name} ON {table} (sku)"),
        ("ALTER TABLE", f"ALTER TABLE {table} ADD COLUMN note VARCHAR(10)"),
        ("INSERT", f"INSERT INTO {table} (id, sku) VALUES (1, 'a')"),
        ("UPDATE", f"UPDATE {table} SET note = 'b' WHERE id = 1"),
        ("SELECT", f"SELECT note FROM {table}"),
        ("DELETE", f"DELETE FROM {table} WHERE id = 1"),
        ("DROP TABLE", f"DROP TABLE {table}"),
    ]


def postgres_privileges(connection: Connection, target: Target) -> Finding:
    user, schema, database = connection.execute(
        sa.text("SELECT current_user, current_schema(), current_database()")
    ).one()
    if schema is None:
        return Finding(
            "problem",
            "no schema on the search_path exists: tables have nowhere to go",
            f"ALTER ROLE {quoted(connection, user)} SET search_path = public (or CREATE SCHEMA)",
        )
    user, schema = quoted(connection, user), quoted(connection, schema)
    savepoint = connection.begin_nested()
    try:
        failed = first_failing_step(connection, migration_steps(scratch_name(), schema))
    finally:
        savepoint.rollback()
    if failed is None:
        migrating = [Finding("ok", f"{user} may create, index, alter and drop tables in {schema}")]
    elif is_read_only_error(failed[1]):
        return Finding("warning", "not checked: the server is read-only")
    else:
        label, error = failed
        migrating = [
            Finding(
                "problem",
                f"{user} cannot {label} in schema {schema} of database {database}: "
                f"{error_message(error)}",
                f"GRANT USAGE, CREATE ON SCHEMA {schema} TO {user} (as the schema's owner)"
                if label == "CREATE TABLE"
                else "migrate with the account that owns the schema",
            )
        ]
    owners = owners_elsewhere(connection)
    if owners:
        tables = ", ".join(owners)
        others = ", ".join(sorted(set(owners.values())))
        migrating.append(
            Finding(
                "problem",
                f"{tables} belong to {others}: only their owner may alter or drop them, "
                "as migrations do",
                f"run migrations as {others}, or ALTER TABLE ... OWNER TO {user} (as {others})",
            )
        )
    return combined(
        [for_migrations(combined(migrating), target), *row_privileges(connection, user)]
    )


def for_migrations(finding: Finding, target: Target) -> Finding:
    """A problem only migrations meet: a warning when the service does not migrate."""
    if finding.status != "problem" or target.settings.migrate_on_start:
        return finding
    return Finding(
        "warning",
        f"{finding.found} (MIGRATE_ON_START is off: only the account that migrates needs this)",
        "run this check with the URL of the account that runs `alembic upgrade head`",
    )


def row_privileges(connection: Connection, user: str) -> list[Finding]:
    """What the service does to its existing tables that this account may not do."""
    if scalar(connection, "SELECT to_regclass('items')") is None:
        return []
    missing = [
        f"GRANT {privilege} ON {table} TO {user}"
        for table, privilege in connection.execute(
            sa.text(
                "SELECT t, p FROM (VALUES ('items', 'SELECT, INSERT, UPDATE, DELETE'), "
                "('alembic_version', 'SELECT')) AS wanted(t, ps), "
                "unnest(string_to_array(ps, ', ')) AS p "
                "WHERE NOT has_table_privilege(to_regclass(t), p)"
            )
        )
    ]
    sequence = scalar(connection, "SELECT pg_get_serial_sequence('items', 'id')")
    if sequence is not None and not scalar(
        connection, "SELECT has_sequence_privilege(:sequence, 'USAGE')", sequence=sequence
    ):
        missing.append(f"GRANT USAGE ON SEQUENCE {sequence} TO {user}")
    if not missing:
        return [Finding("ok", f"{user} may read and write the items")]
    return [
        Finding(
            "problem",
            f"{user} may not read and write the items as the service does",
            "; ".join(missing),
        )
    ]


def owners_elsewhere(connection: Connection) -> dict[str, str]:
    """The service's tables that belong to a role the current user cannot act as."""
    rows = connection.execute(
        sa.text(
            "SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() "
            "AND c.relname IN ('items', 'alembic_version') "
            "AND NOT pg_has_role(current_user, c.relowner, 'USAGE') ORDER BY c.relname"
        )
    )
    return {str(table): str(owner) for table, owner in rows}


def postgres_trigram_extension(connection: Connection, target: Target) -> Finding:
    installed = scalar(connection, "SELECT extversion FROM pg_extension WHERE extname = 'pg_trgm'")
    if installed is not None:
        return Finding("ok", f"installed (version {installed})")
    available = scalar(
        connection, "SELECT default_version FROM pg_available_extensions WHERE name = 'pg_trgm'"
    )
    if available is None:
        return Finding(
            "problem",
            "not installed, and not available on this server: the search index "
            "(migration 0007) needs it",
            "install PostgreSQL's contrib package on the server (Debian: postgresql-contrib), "
            "or ask your provider to allow pg_trgm",
        )
    savepoint = connection.begin_nested()
    try:
        failed = first_failing_step(connection, [("CREATE EXTENSION", "CREATE EXTENSION pg_trgm")])
    finally:
        savepoint.rollback()
    if failed is None:
        return Finding("ok", f"available (version {available}); migration 0007 creates it")
    error = failed[1]
    if is_read_only_error(error):
        return Finding("warning", "not checked: the server is read-only")
    user, database, may_create = connection.execute(
        sa.text(
            "SELECT current_user, current_database(), "
            "has_database_privilege(current_database(), 'CREATE')"
        )
    ).one()
    user, database = quoted(connection, user), quoted(connection, database)
    superuser_fix = f"have a superuser run CREATE EXTENSION pg_trgm in database {database}"
    problem = Finding(
        "problem",
        f"available, but {user} may not create it: {error_message(error)}",
        superuser_fix
        if may_create
        else f"GRANT CREATE ON DATABASE {database} TO {user} (pg_trgm is a trusted "
        f"extension), or {superuser_fix}",
    )
    return for_migrations(problem, target)


def postgres_connection_budget(connection: Connection, target: Target) -> Finding:
    if through_pooler(connection):
        return Finding(
            "ok",
            "through a pooler: the service's connections count against its max_client_conn, "
            "not the server's max_connections",
        )
    row = connection.execute(
        sa.text(
            "SELECT current_setting('max_connections')::int, "
            "current_setting('superuser_reserved_connections')::int "
            "+ coalesce(current_setting('reserved_connections', true)::int, 0), "
            "r.rolsuper, r.rolconnlimit, d.datconnlimit, "
            "(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
            "AND pid <> pg_backend_pid()) "
            "FROM pg_roles r, pg_database d "
            "WHERE r.rolname = current_user AND d.datname = current_database()"
        )
    ).one()
    max_connections, reserved, superuser, role_limit, database_limit, open_now = row
    limits = [Limit(max_connections, "max_connections", "max_connections")]
    if not superuser:
        limits.append(
            Limit(
                max_connections - reserved,
                f"max_connections less {reserved} reserved",
                "max_connections",
            )
        )
    if role_limit >= 0:
        limits.append(
            Limit(role_limit, "the account's CONNECTION LIMIT", "ALTER ROLE ... CONNECTION LIMIT")
        )
    if database_limit >= 0:
        limits.append(
            Limit(
                database_limit,
                "the database's CONNECTION LIMIT",
                "ALTER DATABASE ... CONNECTION LIMIT",
            )
        )
    return connection_budget(target, limits, open_now)


# --- MySQL and MariaDB --------------------------------------------------------------------


def galera_state(connection: Connection) -> dict[str, str]:
    """The node's wsrep variables and status; empty unless it is a Galera node."""
    variables = shown(connection, "SHOW GLOBAL VARIABLES", "wsrep_%")
    if variables.get("wsrep_on") != "ON" and variables.get("wsrep_provider", "none") == "none":
        return {}
    return variables | shown(connection, "SHOW GLOBAL STATUS", "wsrep_%")


def mysql_server(connection: Connection, target: Target) -> Finding:
    backend = target.backend.server_name(connection)
    galera = ", a Galera node" if galera_state(connection) else ""
    return version_finding(backend, server_version(connection), galera)


def mysql_read_write(connection: Connection, target: Target) -> Finding:
    settings = shown(connection, "SHOW GLOBAL VARIABLES", "%read_only")
    on = {
        name: value
        for name, value in settings.items()
        if name in ("read_only", "super_read_only", "innodb_read_only", "transaction_read_only")
        and value not in ("OFF", "0")
    }
    if on:
        return Finding(
            "problem",
            ", ".join(f"{name} = {value}" for name, value in on.items())
            + ": a replica, or a server that refuses writes",
            "point DATABASE_URL at the primary (or, if this is it, SET GLOBAL read_only = OFF)",
        )
    return Finding("ok", "accepts writes")


def mysql_character_set(connection: Connection, target: Target) -> Finding:
    has_utf8mb4 = bool(shown(connection, "SHOW CHARACTER SET", "utf8mb4"))
    has_binary_collation = bool(shown(connection, "SHOW COLLATION", "utf8mb4_bin"))
    in_use = scalar(connection, "SELECT @@character_set_connection")
    if not (has_utf8mb4 and has_binary_collation):
        return Finding(
            "problem",
            "utf8mb4 or its collation utf8mb4_bin is missing: no emoji",
            "use MySQL 8 or MariaDB 10.5 or newer",
        )
    if in_use != "utf8mb4":
        return Finding(
            "problem",
            f"connections use {in_use}, not utf8mb4: 4-byte characters would be refused",
            "let the driver's charset=utf8mb4 through (a proxy may override it; "
            "ProxySQL: mysql-default_charset=utf8mb4)",
        )
    return Finding("ok", "utf8mb4 available and used by connections")


def mysql_sql_mode(connection: Connection, target: Target) -> Finding:
    session_mode = str(scalar(connection, "SELECT @@SESSION.sql_mode"))
    server_mode = scalar(connection, "SELECT @@GLOBAL.sql_mode")
    if {"STRICT_TRANS_TABLES", "STRICT_ALL_TABLES"} & set(session_mode.split(",")):
        return Finding(
            "ok", f"strict for the service's connections (server default: {server_mode})"
        )
    return Finding(
        "problem",
        f"connections are not strict ({session_mode}): too long or out-of-range values "
        "would be cut instead of refused",
        "let the service's SET SESSION sql_mode through (a proxy may drop it), or "
        "SET GLOBAL sql_mode = 'TRADITIONAL,NO_ENGINE_SUBSTITUTION'",
    )


def mysql_tables(connection: Connection, target: Target) -> Finding:
    default = scalar(connection, "SELECT @@default_storage_engine")
    items = connection.execute(
        sa.text(
            "SELECT ENGINE, TABLE_COLLATION FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'items'"
        )
    ).first()
    engine, collation = items or (None, None)
    findings = [
        Finding(
            "problem",
            f"{what} is {value}: no transactions (and no Galera replication)",
            f"{fix} (and in the server's configuration)",
        )
        for what, value, fix in (
            ("default_storage_engine", default, "SET GLOBAL default_storage_engine = InnoDB"),
            ("the items table", engine, "ALTER TABLE items ENGINE = InnoDB"),
        )
        if value not in (None, "InnoDB")
    ]
    # The round trip's temporary table cannot tell what an existing table was made with.
    if collation not in (None, "utf8mb4_bin"):
        findings.append(
            Finding(
                "problem",
                f"the items table is {collation}: names are not kept and compared exactly",
                "ALTER TABLE items CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
            )
        )
    return combined(findings) if findings else Finding("ok", "InnoDB, utf8mb4_bin")


def mysql_idle_timeout(connection: Connection, target: Target) -> Finding:
    wait_timeout = int(scalar(connection, "SELECT @@SESSION.wait_timeout"))
    recycle = POOL_RECYCLE_SECONDS
    if wait_timeout <= recycle:
        return Finding(
            "warning",
            f"wait_timeout is {wait_timeout} s, not more than the pool's recycle time ({recycle} "
            "s): the server closes idle connections first; the pre-ping reconnects, at a cost",
            f"SET GLOBAL wait_timeout = {2 * recycle} or more (and in the server's configuration)",
        )
    return Finding(
        "ok", f"wait_timeout {wait_timeout} s, above the pool's recycle time, {recycle} s"
    )


def mysql_table_names(connection: Connection, target: Target) -> Finding:
    setting = scalar(connection, "SELECT @@lower_case_table_names")
    return Finding(
        "ok", f"lower_case_table_names = {setting} (the service's names are all lower case)"
    )


def galera_cluster(connection: Connection, target: Target) -> Finding | None:
    wsrep = galera_state(connection)
    if not wsrep:
        return None
    size = int(wsrep.get("wsrep_cluster_size", "0"))
    state = wsrep.get("wsrep_local_state_comment", "unknown")
    findings = [Finding("ok", f"{size} node(s)")]
    if size < 3:
        findings.append(
            Finding(
                "warning",
                "fewer than 3 nodes: losing one leaves no majority, and the rest stop",
                "add a node, or an arbitrator (garbd)",
            )
        )
    if wsrep.get("wsrep_cluster_status") != "Primary":
        findings.append(
            Finding(
                "problem",
                f"cluster status {wsrep.get('wsrep_cluster_status')}, not Primary: this node is "
                "cut off from the majority",
                "connect to a node of the primary component, or restore quorum",
            )
        )
    if wsrep.get("wsrep_ready") != "ON":
        findings.append(
            Finding(
                "problem",
                "wsrep_ready is OFF: the node refuses queries",
                "wait, or use another node",
            )
        )
    if state in ("Donor/Desynced", "Desynced"):
        findings.append(Finding("warning", f"{state}: may lag or block while it serves a joiner"))
    elif state != "Synced":
        findings.append(
            Finding(
                "problem", f"{state}, not Synced", "wait until it is Synced, or use another node"
            )
        )
    else:
        findings.append(Finding("ok", "Synced, ready, Primary"))
    return combined(findings)


def galera_settings(connection: Connection, target: Target) -> Finding | None:
    wsrep = galera_state(connection)
    if not wsrep:
        return None
    required = {"wsrep_on": "ON", "binlog_format": "ROW", "innodb_autoinc_lock_mode": "2"}
    found = global_variables(connection, *required)
    findings = [
        Finding("ok", f"{name} {wanted}")
        if found.get(name) == wanted
        else Finding(
            "problem",
            f"{name} is {found.get(name)}, Galera needs {wanted}",
            f"{name} = {wanted} in the server's configuration",
        )
        for name, wanted in required.items()
    ]
    findings.append(sync_wait(connection))
    return combined(findings)


def sync_wait(connection: Connection) -> Finding:
    """Whether reads can wait for the cluster (wsrep_sync_wait), and whether they do."""
    configured = int(scalar(connection, "SELECT @@SESSION.wsrep_sync_wait"))
    try:
        connection.exec_driver_sql("SET SESSION wsrep_sync_wait = 1")
    except sa.exc.DBAPIError as error:
        return Finding(
            "problem",
            f"wsrep_sync_wait cannot be set: {error_message(error)}",
            "use a Galera version that has wsrep_sync_wait (MariaDB 10.1 or newer)",
        )
    connection.exec_driver_sql(f"SET SESSION wsrep_sync_wait = {configured}")
    if configured & 1:
        return Finding("ok", f"wsrep_sync_wait {configured}")
    return Finding(
        "warning",
        f"wsrep_sync_wait {configured}: a read through another node may miss a write "
        "acknowledged a moment before",
        "SET GLOBAL wsrep_sync_wait = 1 (and in the server's configuration)",
    )


def mysql_privileges(connection: Connection, target: Target) -> Finding:
    database, account = connection.execute(sa.text("SELECT DATABASE(), CURRENT_USER()")).one()
    if database is None:
        return Finding("problem", "no database chosen", "add it to DATABASE_URL: mysql://.../items")
    user, _, host = str(account).rpartition("@")
    grant = (
        "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, DROP "
        f"ON {quoted(connection, database)}.* TO '{user}'@'{host}'"
    )
    table = scratch_name()
    # Tried first, on a table that does not exist: never create what cannot be dropped.
    failed = first_failing_step(connection, [("DROP TABLE", f"DROP TABLE IF EXISTS {table}")])
    if failed is None:
        try:
            failed = first_failing_step(connection, migration_steps(table))
        finally:
            connection.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
    if failed is None:
        return Finding("ok", f"{account} may create, index, alter and drop tables in {database}")
    label, error = failed
    if is_read_only_error(error):
        return Finding("warning", "not checked: the server is read-only")
    problem = Finding(
        "problem", f"{account} cannot {label} in {database}: {error_message(error)}", grant
    )
    # The service itself only reads and writes rows.
    return (
        problem
        if label in ("INSERT", "UPDATE", "SELECT", "DELETE")
        else for_migrations(problem, target)
    )


def mysql_connection_budget(connection: Connection, target: Target) -> Finding:
    max_connections, per_account = connection.execute(
        sa.text("SELECT @@GLOBAL.max_connections, @@SESSION.max_user_connections")
    ).one()
    # Unlike the process list, this counts other accounts' connections too.
    connected = shown(connection, "SHOW GLOBAL STATUS", "Threads_connected")["Threads_connected"]
    limits = [Limit(int(max_connections), "max_connections", "max_connections")]
    if per_account:
        limits.append(
            Limit(int(per_account), "max_user_connections", "the account's MAX_USER_CONNECTIONS")
        )
    return connection_budget(target, limits, int(connected) - 1)


# --- SQLite -------------------------------------------------------------------------------


def sqlite_path(url: URL) -> Path | None:
    """The database file, None for `sqlite://` (memory)."""
    if url.database in (None, "", ":memory:"):
        return None
    return Path(str(url.database)).absolute()


def sqlite_file(url: URL, settings: Settings) -> Finding:
    path = sqlite_path(url)
    if path is None:
        if settings.web_concurrency > 1:
            return Finding(
                "problem",
                f"in memory, with {settings.web_concurrency} worker processes: each would have "
                "a database of its own",
                "use a file: sqlite:////var/lib/items/items.db",
            )
        return Finding(
            "warning",
            "in memory: every item is gone when the process stops",
            "use a file to keep them: sqlite:////var/lib/items/items.db",
        )
    directory = path.parent
    if not directory.is_dir():
        return Finding(
            "problem",
            f"{directory} {'is not a directory' if directory.exists() else 'does not exist'}: "
            "the database file cannot be created there",
            f"mkdir -p {directory} (writable by the service's user), or fix the path",
        )
    findings = [file_writable(path) if path.exists() else Finding("ok", f"{path} will be created")]
    cannot_create = cannot_create_files_in(directory)
    if cannot_create:
        findings.append(
            Finding(
                "problem",
                f"cannot create files in {directory} ({cannot_create}): SQLite's WAL keeps "
                f"{path.name}-wal and {path.name}-shm beside the database",
                f"make {directory} writable by the service's user",
            )
        )
    filesystem = filesystem_type(directory)
    if filesystem in NETWORK_FILESYSTEMS:
        findings.append(
            Finding(
                "warning",
                f"on a network filesystem ({filesystem}): SQLite's locks and WAL need a local disk",
                "keep the file on a local disk",
            )
        )
    return combined(findings)


def file_writable(path: Path) -> Finding:
    if not path.is_file():
        return Finding("problem", f"{path} is not a file", "point DATABASE_URL at a file")
    try:
        with path.open("r+b"):
            pass
    except OSError as error:
        return Finding(
            "problem",
            f"{path} cannot be opened for writing: {error.strerror}",
            f"make {path} readable and writable by the service's user",
        )
    return Finding("ok", f"{path} exists, {path.stat().st_size} bytes")


def cannot_create_files_in(directory: Path) -> str | None:
    """Why this process cannot create a file in `directory`, None if it can.

    Tried for real, since root passes every permission test that asks.
    """
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".items-check-"):
            return None
    except OSError as error:
        return error.strerror or str(error)


def filesystem_type(directory: Path) -> str | None:
    """The type of the filesystem holding `directory`, from /proc/self/mounts (Linux)."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return None
    resolved = directory.resolve()
    # The deepest mount point above the directory; of equal ones, the last mounted.
    holding = [
        (len(point.parts), index, kind)
        for index, (point, kind) in enumerate(
            (Path(fields[1].replace("\\040", " ")), fields[2])
            for fields in (line.split() for line in mounts)
        )
        if resolved.is_relative_to(point)
    ]
    return max(holding)[2] if holding else None


def sqlite_library(connection: Connection, target: Target) -> Finding:
    version = server_version(connection)
    returning = "yes" if version >= SQLITE_RETURNING else "no (updates take two statements)"
    try:
        connection.exec_driver_sql("SELECT json_valid('{}')")
        json_functions = "yes"
    except sa.exc.DBAPIError:
        json_functions = "no"
    return version_finding(
        "sqlite",
        version,
        f", the library Python uses; RETURNING {returning}, JSON {json_functions}",
    )


def no_connection_limit(connection: Connection, target: Target) -> Finding:
    return Finding("ok", "not applicable: SQLite works inside the process")


# --- running them -------------------------------------------------------------------------

MYSQL_CHECKS: list[tuple[str, Check]] = [
    ("server", mysql_server),
    ("read-write", mysql_read_write),
    ("character set", mysql_character_set),
    ("sql mode", mysql_sql_mode),
    ("tables", mysql_tables),
    ("idle timeout", mysql_idle_timeout),
    ("table names", mysql_table_names),
    ("galera cluster", galera_cluster),
    ("galera settings", galera_settings),
    ("privileges", mysql_privileges),
    ("connections", mysql_connection_budget),
    ("schema", schema_revision),
    ("round trip", round_trip),
]
CHECKS: dict[str, list[tuple[str, Check]]] = {
    "postgresql": [
        ("server", postgres_server),
        ("read-write", postgres_read_write),
        ("pooler", postgres_pooler),
        ("encoding", postgres_encoding),
        ("pg_trgm", postgres_trigram_extension),
        ("privileges", postgres_privileges),
        ("connections", postgres_connection_budget),
        ("schema", schema_revision),
        ("round trip", round_trip),
    ],
    "mysql": MYSQL_CHECKS,
    "mariadb": MYSQL_CHECKS,
    "sqlite": [
        ("server", sqlite_library),
        ("connections", no_connection_limit),
        ("schema", schema_revision),
        ("round trip", round_trip),
    ],
}


def run_checks(url: URL, settings: Settings) -> list[Result]:
    results: list[Result] = []
    engine_url = url
    if url.get_backend_name() == "sqlite":
        results.append(result("file", sqlite_file(url, settings)))
        path = sqlite_path(url)
        if path is not None and not path.exists():
            # Opening it would create it: check an empty database in memory instead.
            engine_url = url.set(database=":memory:")
    backend = backend_for(url, settings)
    engine = create_engine(engine_url, settings)
    try:
        connected, server = connection_result(
            engine, backend, in_memory_instead=engine_url is not url
        )
        results.append(connected)
        if server is None:
            return results
        target = Target(url, settings, backend)
        for name, check in CHECKS[server]:
            finding = checked(engine, check, target)
            if finding is not None:
                results.append(result(name, finding))
    finally:
        engine.dispose()
    return results


def result(name: str, finding: Finding) -> Result:
    return Result(name, **asdict(finding))


def connection_result(
    engine: Engine, backend: Backend, *, in_memory_instead: bool
) -> tuple[Result, str | None]:
    """The connection's result, and the server's name (None if it cannot be reached)."""
    url = backend.url
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
            server = backend.server_name(connection)
    except sa.exc.DBAPIError as error:
        if getattr(error.orig, "args", (None,))[0] == GALERA_NOT_READY:
            fix = CONNECT_FIX["galera"]
        else:
            fix = CONNECT_FIX["sqlite" if url.get_backend_name() == "sqlite" else "server"]
        return Result(
            "connection",
            "problem",
            f"cannot connect to {safe_url(url)}: {error_message(error)}",
            fix,
        ), None
    if in_memory_instead:
        return Result(
            "connection",
            "ok",
            f"{safe_url(url)} does not exist yet: the checks below ran on an empty database in "
            "memory, with the same settings",
        ), server
    return Result("connection", "ok", safe_url(url)), server


def checked(engine: Engine, check: Check, target: Target) -> Finding | None:
    try:
        with engine.connect() as connection:
            return check(connection, target)
    except sa.exc.DBAPIError as error:
        return Finding("warning", f"could not check: {error_message(error)}")


def overall(results: list[Result]) -> Status:
    return max((r.status for r in results), key=SEVERITY.__getitem__, default="ok")


def as_text(results: list[Result]) -> str:
    return "\n".join(
        f"{r.status:<8} {r.name}: {r.found}" + (f"; fix: {r.fix}" if r.fix else "") for r in results
    )


def as_json(url: URL, results: list[Result]) -> str:
    report = {
        "status": overall(results),
        "database": safe_url(url),
        "checks": [asdict(r) for r in results],
    }
    return json.dumps(report, indent=2, ensure_ascii=False)


def without_password(text: str, password: str | None) -> str:
    # The drivers' messages never quote it, but they are not ours to vouch for.
    # A very short password would turn up inside ordinary words.
    if password is None or len(password) < 4:
        return text
    return text.replace(password, "***")


def main(arguments: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="items-service check",
        description="Check that the database in DATABASE_URL will behave; exit 1 on a problem.",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    options = parser.parse_args(arguments)
    # Logged SQL would be mixed into the report.
    settings = Settings().model_copy(update={"db_echo": False})
    try:
        url = parse_database_url(settings.database_url.get_secret_value())
        results = run_checks(url, settings)
    except DatabaseURLError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    report = as_json(url, results) if options.json else as_text(results)
    print(without_password(report, url.password))
    return 1 if overall(results) == "problem" else 0
