"""MySQL and MariaDB: writes accepted, utf8mb4 and strict mode on every connection,
every table of the service InnoDB and utf8mb4_bin, idle connections outliving the
pool's, privileges, and connections within the server's limits."""

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from service.check.connection_budget import Limit, connection_budget
from service.check.findings import (
    Finding,
    combined,
    error_message,
    is_read_only_error,
    quoted,
    scalar,
    scratch_name,
    shown,
)
from service.check.galera import galera_state
from service.check.privileges import first_failing_step, for_migrations, migration_steps
from service.check.versions import server_version, version_finding
from service.db.backends import Backend, mysql_errors
from service.db.backends.mysql import POOL_RECYCLE_SECONDS
from service.db.backends.mysql_errors import error_code
from service.models import metadata

# "You do not have the SUPER privilege and binary logging is enabled".


def server(connection: Connection, backend: Backend) -> Finding:
    galera = ", a Galera node" if galera_state(connection) else ""
    return version_finding(backend.server_name(connection), server_version(connection), galera)


def read_write(connection: Connection, backend: Backend) -> Finding:
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


def character_set(connection: Connection, backend: Backend) -> Finding:
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


def sql_mode(connection: Connection, backend: Backend) -> Finding:
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


def tables(connection: Connection, backend: Backend) -> Finding:
    default = scalar(connection, "SELECT @@default_storage_engine")
    names = [table.name for table in metadata.sorted_tables]
    found = {
        str(name): (engine, collation)
        for name, engine, collation in connection.execute(
            sa.text(
                "SELECT TABLE_NAME, ENGINE, TABLE_COLLATION FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN :names"
            ).bindparams(sa.bindparam("names", expanding=True)),
            {"names": names},
        )
    }
    # In the metadata's order; a table not made yet is for the schema check to report.
    made_with = [(name, *found[name]) for name in names if name in found]
    engines = [("default_storage_engine", default, "SET GLOBAL default_storage_engine = InnoDB")]
    engines += [
        (f"the {name} table", engine, f"ALTER TABLE {name} ENGINE = InnoDB")
        for name, engine, _ in made_with
    ]
    findings = [
        Finding(
            "problem",
            f"{what} is {value}: no transactions (and no Galera replication)",
            f"{fix} (and in the server's configuration)",
        )
        for what, value, fix in engines
        if value not in (None, "InnoDB")
    ]
    # The round trip's temporary table cannot tell what an existing table was made with.
    findings += [
        Finding(
            "problem",
            f"the {name} table is {collation}: its text is not kept and compared exactly",
            f"ALTER TABLE {name} CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        )
        for name, _, collation in made_with
        if collation not in (None, "utf8mb4_bin")
    ]
    return combined(findings) if findings else Finding("ok", "InnoDB, utf8mb4_bin")


def idle_timeout(connection: Connection, backend: Backend) -> Finding:
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


def table_names(connection: Connection, backend: Backend) -> Finding:
    setting = scalar(connection, "SELECT @@lower_case_table_names")
    return Finding(
        "ok", f"lower_case_table_names = {setting} (the service's names are all lower case)"
    )


def privileges(connection: Connection, backend: Backend) -> Finding:
    database, account = connection.execute(sa.text("SELECT DATABASE(), CURRENT_USER()")).one()
    if database is None:
        return Finding("problem", "no database chosen", "add it to DATABASE_URL: mysql://.../items")
    user, _, host = str(account).rpartition("@")
    grant = (
        "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, TRIGGER, DROP "
        f"ON {quoted(connection, database)}.* TO '{user}'@'{host}'"
    )
    table = scratch_name()
    # Tried first, on a table that does not exist: never create what cannot be dropped.
    failed = first_failing_step(connection, [("DROP TABLE", f"DROP TABLE IF EXISTS {table}")])
    if failed is None:
        try:
            steps = migration_steps(table)
            # The trigram index is kept by triggers (revision 0010).
            trigger = (
                f"CREATE TRIGGER {table}_trigger AFTER INSERT ON {table} "
                f"FOR EACH ROW SET @{table} = NEW.id"
            )
            steps.insert(2, ("CREATE TRIGGER", trigger))
            failed = first_failing_step(connection, steps)
        finally:
            connection.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
    if failed is None:
        return Finding(
            "ok", f"{account} may create, index, alter, trigger and drop tables in {database}"
        )
    label, error = failed
    if is_read_only_error(error):
        return Finding("warning", "not checked: the server is read-only")
    if (
        label == "CREATE TRIGGER"
        and error_code(error) == mysql_errors.BINLOG_CREATE_ROUTINE_NEED_SUPER
    ):
        # Binary logging or Galera replication is on, and the account has no SUPER.
        grant = "SET GLOBAL log_bin_trust_function_creators = 1 (or in the server's configuration)"
    problem = Finding(
        "problem", f"{account} cannot {label} in {database}: {error_message(error)}", grant
    )
    # The service itself only reads and writes rows.
    return (
        problem
        if label in ("INSERT", "UPDATE", "SELECT", "DELETE")
        else for_migrations(problem, backend)
    )


def connection_limits(connection: Connection, backend: Backend) -> Finding:
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
    return connection_budget(backend, limits, int(connected) - 1)
