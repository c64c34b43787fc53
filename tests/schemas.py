"""A database's schema as plain data, to compare two databases: every table,
column, constraint, index (and whether it is valid), trigger and function,
as the server itself states it."""

import re
from typing import Any

import sqlalchemy as sa

from alembic import command
from conftest import settings_for
from service import migrations
from service.db.backends import Kind, kind_of
from service.db.engine import create_engine
from service.db.urls import parse_database_url

# What Alembic and env.py keep beside the schema: their rows say where a
# database has been, not what it is.
BOOKKEEPING = {"alembic_version", migrations.COMPATIBILITY.name}


def migrate(url: str, revision: str = "head", *, down: bool = False) -> None:
    """Upgrade (or, with `down`, downgrade) the database at `url` to `revision`,
    as the service does."""
    engine = create_engine(parse_database_url(url), settings_for(url))
    config = migrations.alembic_config()
    config.attributes["connection"] = engine
    config.attributes["configure_logger"] = False
    try:
        (command.downgrade if down else command.upgrade)(config, revision)
    finally:
        engine.dispose()


def schema_of(url: str) -> dict[str, Any]:
    engine = sa.create_engine(parse_database_url(url))
    try:
        with engine.connect() as connection:
            kind = kind_of(connection.dialect)
            if kind is Kind.SQLITE:
                return _sqlite(connection)
            if kind is Kind.POSTGRESQL:
                return _postgresql(connection)
            return _mysql(connection)
    finally:
        engine.dispose()


def _rows(connection: sa.Connection, query: str) -> list[tuple[Any, ...]]:
    return sorted(tuple(row) for row in connection.exec_driver_sql(query))


def _sqlite(connection: sa.Connection) -> dict[str, Any]:
    # A table copied in batch mode lists its constraints in no fixed order:
    # tables are compared as the inspector reads them, the rest as written.
    rows = _rows(connection, "SELECT type, name, tbl_name, sql FROM sqlite_master")
    schema = sa.inspect(connection)
    tables = {
        name: {
            "columns": [
                (column["name"], str(column["type"]), column["nullable"], column["default"])
                for column in schema.get_columns(name)
            ],
            "primary key": schema.get_pk_constraint(name)["constrained_columns"],
            "foreign keys": sorted(map(repr, schema.get_foreign_keys(name))),
            "unique": sorted(map(repr, schema.get_unique_constraints(name))),
            "checks": sorted(map(repr, schema.get_check_constraints(name))),
        }
        for _, name, _, sql in rows
        if sql is not None and sql.startswith("CREATE TABLE") and name not in BOOKKEEPING
    }
    others = [row for row in rows if row[1] not in tables and row[2] not in BOOKKEEPING]
    return {"tables": tables, "objects": others}


def _postgresql(connection: sa.Connection) -> dict[str, Any]:
    def public(query: str) -> list[tuple[Any, ...]]:
        return _rows(connection, query)

    return {
        "columns": public(
            "SELECT table_name, column_name, data_type, character_maximum_length, "
            "numeric_precision, numeric_scale, is_nullable, column_default "
            "FROM information_schema.columns WHERE table_schema = 'public'"
        ),
        "constraints": public(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), convalidated "
            "FROM pg_constraint WHERE connamespace = 'public'::regnamespace"
        ),
        "indexes": public(
            "SELECT c.relname, pg_get_indexdef(i.indexrelid), i.indisvalid, i.indisready "
            "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relnamespace = 'public'::regnamespace"
        ),
        "functions": public(
            "SELECT proname, pg_get_functiondef(oid) FROM pg_proc "
            "WHERE pronamespace = 'public'::regnamespace AND prokind = 'f' "
            "AND proname NOT IN (SELECT p.proname FROM pg_proc p JOIN pg_depend d "
            "ON d.objid = p.oid AND d.deptype = 'e')"
        ),
        "triggers": public(
            "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal"
        ),
        "extensions": public("SELECT extname FROM pg_extension"),
    }


def _mysql(connection: sa.Connection) -> dict[str, Any]:
    tables = [name for (name,) in _rows(connection, "SHOW TABLES") if name not in BOOKKEEPING]
    created = {}
    for table in tables:
        definition = connection.exec_driver_sql(f"SHOW CREATE TABLE `{table}`").one()[1]
        # The next id depends on the rows stored, not on the schema.
        created[table] = re.sub(r" AUTO_INCREMENT=\d+", "", definition)
    return {
        "tables": created,
        "triggers": _rows(
            connection,
            "SELECT TRIGGER_NAME, EVENT_MANIPULATION, ACTION_TIMING, ACTION_ORDER, "
            "ACTION_STATEMENT FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()",
        ),
    }


def differences(schema: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """What one schema has that the other lacks, part by part: empty if alike."""
    found = []
    for part in sorted(set(schema) | set(expected)):
        mine, theirs = schema.get(part, []), expected.get(part, [])
        if isinstance(mine, dict):
            mine, theirs = sorted(mine.items()), sorted(theirs.items())
        found += [f"{part}: only here: {each}" for each in mine if each not in theirs]
        found += [f"{part}: only expected: {each}" for each in theirs if each not in mine]
    return found
