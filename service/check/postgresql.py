"""PostgreSQL: a primary that accepts writes, whether a pooler is in the way, UTF8,
pg_trgm, privileges, and connections within the server's limits."""

from dataclasses import replace
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from service.check import encryption
from service.check.connection_budget import Limit, connection_budget
from service.check.findings import (
    Finding,
    combined,
    error_message,
    is_read_only_error,
    quoted,
    scalar,
    scratch_name,
)
from service.check.privileges import first_failing_step, for_migrations, migration_steps
from service.check.versions import server_version, version_finding
from service.db.backends import Backend
from service.models import SERVED_TABLES, metadata

ROW_PRIVILEGES = ["SELECT", "INSERT", "UPDATE", "DELETE"]


def server(connection: Connection, backend: Backend) -> Finding:
    return version_finding("postgresql", server_version(connection))


def read_write(connection: Connection, backend: Backend) -> Finding:
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


def pooler(connection: Connection, backend: Backend) -> Finding:
    if not through_pooler(connection):
        return Finding("ok", "none: connected to the server itself")
    # The service keeps no session state: its migration lock lasts one
    # transaction, it sets nothing per session, and psycopg2 prepares nothing.
    return Finding(
        "ok",
        "a connection pooler (PgBouncer or similar: the backend id the driver sees is not "
        "the server's); transaction pooling is fine",
    )


def encrypted(connection: Connection, backend: Backend) -> Finding | None:
    finding = encryption.encrypted(connection, backend)
    if finding is None or not through_pooler(connection):
        return finding
    return replace(
        finding,
        found=f"{finding.found}; this is the hop to the pooler, whose own connections to "
        "the server its settings encrypt or not (PgBouncer: server_tls_sslmode)",
    )


def encoding(connection: Connection, backend: Backend) -> Finding:
    server_encoding = scalar(connection, "SHOW server_encoding")
    if server_encoding == "UTF8":
        return Finding("ok", "UTF8")
    return Finding(
        "problem",
        f"{server_encoding}: text outside it (emoji, most scripts) cannot be stored",
        "create the database with ENCODING 'UTF8' TEMPLATE template0 and move the data there",
    )


def privileges(connection: Connection, backend: Backend) -> Finding:
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
        [for_migrations(combined(migrating), backend), *row_privileges(connection, user)]
    )


def row_privileges(connection: Connection, user: str) -> list[Finding]:
    """What the service does to its existing tables that this account may not do."""
    tables = [
        table
        for table in SERVED_TABLES
        if scalar(connection, "SELECT to_regclass(:table)", table=table) is not None
    ]
    if not tables:
        return []
    wanted = {table: ROW_PRIVILEGES for table in tables} | {"alembic_version": ["SELECT"]}
    missing = []
    for table, privileges in wanted.items():
        lacking = [
            privilege
            for privilege in privileges
            if scalar(
                connection,
                "SELECT has_table_privilege(to_regclass(:table), :privilege)",
                table=table,
                privilege=privilege,
            )
            is False
        ]
        if lacking:
            missing.append(f"GRANT {', '.join(lacking)} ON {table} TO {user}")
    for table in tables:
        sequence = scalar(connection, "SELECT pg_get_serial_sequence(:table, 'id')", table=table)
        if sequence is not None and not scalar(
            connection, "SELECT has_sequence_privilege(:sequence, 'USAGE')", sequence=sequence
        ):
            missing.append(f"GRANT USAGE ON SEQUENCE {sequence} TO {user}")
    served = ", ".join(tables)
    if not missing:
        return [Finding("ok", f"{user} may read and write {served}")]
    return [
        Finding(
            "problem",
            f"{user} may not read and write {served} as the service does",
            "; ".join(missing),
        )
    ]


def owners_elsewhere(connection: Connection) -> dict[str, str]:
    """The service's tables that belong to a role the current user cannot act as."""
    rows = connection.execute(
        sa.text(
            "SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() "
            "AND c.relname = ANY(:tables) "
            "AND NOT pg_has_role(current_user, c.relowner, 'USAGE') ORDER BY c.relname"
        ),
        {"tables": [*metadata.tables, "alembic_version"]},
    )
    return {str(table): str(owner) for table, owner in rows}


def trigram_extension(connection: Connection, backend: Backend) -> Finding:
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
    return for_migrations(problem, backend)


def connection_limits(connection: Connection, backend: Backend) -> Finding:
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
    return connection_budget(backend, limits, open_now)
