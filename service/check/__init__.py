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
from dataclasses import asdict

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from service.check import encryption, galera, mysql, postgresql, sqlite
from service.check.findings import SEVERITY, Check, Finding, Result, Status, error_message
from service.check.round_trip import round_trip
from service.check.schema_revision import schema_revision
from service.db.backends import Backend, Kind, backend_for
from service.db.engine import create_engine
from service.db.urls import DatabaseURLError, parse_database_url, safe_url
from service.settings import Settings, load_settings

# The checks for each kind of server, in the order they are reported.
CHECKS: dict[Kind, list[tuple[str, Check]]] = {
    Kind.MYSQL: [
        ("encryption", encryption.encrypted),
        ("server", mysql.server),
        ("read-write", mysql.read_write),
        ("character set", mysql.character_set),
        ("sql mode", mysql.sql_mode),
        ("tables", mysql.tables),
        ("idle timeout", mysql.idle_timeout),
        ("table names", mysql.table_names),
        ("galera cluster", galera.cluster),
        ("galera settings", galera.settings),
        ("privileges", mysql.privileges),
        ("connections", mysql.connection_limits),
        ("schema", schema_revision),
        ("round trip", round_trip),
    ],
    Kind.POSTGRESQL: [
        ("encryption", postgresql.encrypted),
        ("server", postgresql.server),
        ("read-write", postgresql.read_write),
        ("pooler", postgresql.pooler),
        ("encoding", postgresql.encoding),
        ("pg_trgm", postgresql.trigram_extension),
        ("privileges", postgresql.privileges),
        ("connections", postgresql.connection_limits),
        ("schema", schema_revision),
        ("round trip", round_trip),
    ],
    Kind.SQLITE: [
        ("server", sqlite.library),
        ("full-text search", sqlite.full_text_search),
        ("connections", sqlite.no_connection_limit),
        ("schema", schema_revision),
        ("round trip", round_trip),
    ],
}

CONNECT_FIX = {
    "sqlite": "check that the file is a SQLite database this process may read and write",
    "server": "check that the server is running and reachable from here (host, port, "
    "firewall), and the user name, password and database name in DATABASE_URL",
    "galera": "this Galera node is cut off from the cluster's majority: connect to a node "
    "that is Synced, or restore quorum",
}


def run_checks(url: URL, settings: Settings) -> list[Result]:
    results: list[Result] = []
    engine_url = url
    backend = backend_for(url, settings)
    if backend.kind is Kind.SQLITE:
        results.append(result("file", sqlite.database_file(url, settings)))
        engine_url = sqlite.url_to_open(url)
    engine = create_engine(engine_url, settings)
    try:
        connected = connection_result(engine, backend, in_memory_instead=engine_url is not url)
        results.append(connected)
        if connected.status == "problem":
            return results
        for name, check in CHECKS[backend.kind]:
            finding = checked(engine, check, backend)
            if finding is not None:
                results.append(result(name, finding))
    finally:
        engine.dispose()
    return results


def result(name: str, finding: Finding) -> Result:
    return Result(name, **asdict(finding))


def connection_result(engine: Engine, backend: Backend, *, in_memory_instead: bool) -> Result:
    url = backend.url
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    except sa.exc.DBAPIError as error:
        tls_fix = backend.tls_fix(error)
        if tls_fix is not None:
            fix = tls_fix
        elif error.orig is not None and backend.server_cannot_serve(error.orig):
            fix = CONNECT_FIX["galera"]
        else:
            fix = CONNECT_FIX["sqlite" if backend.kind is Kind.SQLITE else "server"]
        return Result(
            "connection",
            "problem",
            f"cannot connect to {safe_url(url)}: {error_message(error)}",
            fix,
        )
    if in_memory_instead:
        return Result(
            "connection",
            "ok",
            f"{safe_url(url)} does not exist yet: the checks below ran on an empty database in "
            "memory, with the same settings",
        )
    return Result("connection", "ok", safe_url(url))


def checked(engine: Engine, check: Check, backend: Backend) -> Finding | None:
    try:
        with engine.connect() as connection:
            return check(connection, backend)
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the results as JSON")


def run(options: argparse.Namespace) -> int:
    # Logged SQL would be mixed into the report.
    settings = load_settings().model_copy(update={"db_echo": False})
    try:
        url = parse_database_url(settings.database_url.get_secret_value())
        results = run_checks(url, settings)
    except DatabaseURLError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    report = as_json(url, results) if options.json else as_text(results)
    print(without_password(report, url.password))
    return 1 if overall(results) == "problem" else 0
