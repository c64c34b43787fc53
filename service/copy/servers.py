"""Each kind of server as a copy meets it: how it reads a consistent image in the
canonical form (`service.copy.tables`), how it writes rows fastest, and where it
keeps a table's id counter.

Statements go straight through the driver: rows travel as plain tuples, and
no value passes through SQLAlchemy's type conversions.
"""

import io
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from service.copy.tables import (
    RANGE_IDS,
    Column,
    Digest,
    Form,
    Lines,
    Row,
    Table,
    by_range,
    line_of,
    lines_by_range,
    range_of,
)
from service.db.backends import Backend, Kind
from service.db.backends.mysql import is_galera_node
from service.db.engine import engine_for

# The key of `Server.defer`'s statements to run once every table's have run.
AFTER_ALL = ""
# Rows fetched from a server-side cursor at a time.
FETCH_ROWS = 2000
# The copy's own transactions on PostgreSQL commit without waiting for their WAL
# to reach the disk. A crash of the server may then lose the last ones, whole
# (never part of one): a rerun copies or builds them again, as after a kill.
# The copy is declared done only by the commit that drops its marker, which
# is synchronous, and so returns once all the WAL before it is on disk, these
# commits' included. SET LOCAL: nothing outlives the transaction on a pooled
# server session (PgBouncer).
ASYNCHRONOUS_COMMIT = "SET LOCAL synchronous_commit = off"
# Bytes of COPY's text sent to PostgreSQL at a time.
COPY_CHUNK = 1 << 20
# PostgreSQL's memory for building an index once the rows are in.
INDEX_BUILD_MEMORY = "256MB"

Connection = Any  # the driver's own connection


class Server(ABC):
    """A database a copy reads from or writes to, through one engine."""

    # The driver's placeholder for a parameter.
    placeholder = "%s"

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.engine: Engine = engine_for(backend)

    def close(self) -> None:
        self.engine.dispose()

    def connect(self) -> Connection:
        """The driver's connection, with what the service's engine sets on it
        (behind the pool's proxy, which passes every call on); close it after use."""
        connection = self.engine.raw_connection()
        # Whatever the pool's checkout ran, no transaction is open from here.
        connection.rollback()
        return connection

    # Reading.

    @abstractmethod
    def begin_snapshot(self, connection: Connection) -> None:
        """Start a read-only transaction in which every statement sees the same
        committed image of the database."""

    @abstractmethod
    def selected(self, column: Column) -> str:
        """The expression that reads `column` in its canonical form."""

    def canonical(self, table: Table) -> Callable[[tuple[Any, ...]], Row] | None:
        """What turns a row as the driver returns it into the canonical row; None: nothing."""
        return None

    def select(self, table: Table, *, below: bool) -> str:
        columns = ", ".join(self.selected(column) for column in table.columns)
        bounds = f"{table.key} >= {self.placeholder}"
        if below:
            bounds += f" AND {table.key} < {self.placeholder}"
        return f"SELECT {columns} FROM {table.name} WHERE {bounds} ORDER BY {table.key}"

    def rows(
        self, connection: Connection, table: Table, start: int = 0, stop: int | None = None
    ) -> Iterator[Row]:
        """The rows with keys from `start` (and below `stop`), in key order, streamed."""
        parameters = (start,) if stop is None else (start, stop)
        convert = self.canonical(table)
        with closing(self.streaming_cursor(connection)) as cursor:
            cursor.execute(self.select(table, below=stop is not None), parameters)
            while batch := cursor.fetchmany(FETCH_ROWS):
                if convert is None:
                    yield from batch
                else:
                    yield from map(convert, batch)

    def line(self, table: Table) -> str | None:
        """The expression that reads a row of `table` as its line (`line_of`);
        None: the lines are written here, from the rows."""
        return None

    def lines(
        self, connection: Connection, table: Table, start: int = 0, stop: int | None = None
    ) -> Iterator[Lines]:
        """The rows of `rows`, as lines, by id range."""
        line = self.line(table)
        if line is None:
            line_of_row = line_of(table)
            for number, batch in by_range(self.rows(connection, table, start, stop)):
                yield Lines(number, len(batch), "".join(map(line_of_row, batch)).encode())
            return
        bounds = f"{table.key} >= {self.placeholder}"
        if stop is not None:
            bounds += f" AND {table.key} < {self.placeholder}"
        parameters = (start,) if stop is None else (start, stop)
        with closing(self.streaming_cursor(connection)) as cursor:
            cursor.execute(
                f"SELECT {table.key}, {line} FROM {table.name} WHERE {bounds} ORDER BY {table.key}",
                parameters,
            )
            yield from lines_by_range(_fetched(cursor))

    def range_digests(self, connection: Connection, table: Table) -> Iterator[tuple[int, Digest]]:
        """The digest of each id range of `table` that holds rows, in key order."""
        for lines in self.lines(connection, table):
            yield lines.number, lines.digest()

    def streaming_cursor(self, connection: Connection) -> Any:
        return connection.cursor()

    def scalar(self, connection: Connection, sql: str, *parameters: object) -> Any:
        with closing(connection.cursor()) as cursor:
            cursor.execute(sql, parameters)
            row = cursor.fetchone()
        return None if row is None else row[0]

    def count(self, connection: Connection, table: Table) -> int:
        return int(self.scalar(connection, f"SELECT count(*) FROM {table.name}"))

    def max_key(self, connection: Connection, table: Table) -> int:
        return int(self.scalar(connection, f"SELECT max({table.key}) FROM {table.name}") or 0)

    def high_water(self, connection: Connection, table: Table) -> int:
        """The highest id the table has ever handed out (0: none), deleted or not."""
        return max(self.id_counter(connection, table), self.max_key(connection, table))

    @abstractmethod
    def id_counter(self, connection: Connection, table: Table) -> int:
        """The highest id the table's counter has handed out (0: none)."""

    def counters_per_node(self, connection: Connection) -> bool:
        """Whether each node of the cluster hands out ids of its own (Galera:
        its counters are rounded up to the node's `auto_increment_offset`)."""
        return False

    # Writing.

    @abstractmethod
    def write(self, connection: Connection, table: Table, rows: Sequence[Row]) -> None:
        """Insert canonical rows, keys included, and commit them: one transaction."""

    # Whether `write_lines` takes rows as lines (`line_of`), faster than `write`.
    takes_lines = False

    def write_lines(self, connection: Connection, table: Table, lines: bytes) -> None:
        """Insert rows written as lines, and commit them: one transaction."""
        raise NotImplementedError

    @abstractmethod
    def set_id_counter(self, connection: Connection, table: Table, high_water: int) -> None:
        """Make the table's next id `high_water + 1`, and commit."""

    def defer(self, connection: Connection, tables: Sequence[Table]) -> dict[str, list[str]]:
        """Drop what is faster built once the rows are in (in the transaction
        that marks the copy); by table, the statements that build it again,
        and under `AFTER_ALL` those to run once all the others have."""
        return {}

    def build(self, connection: Connection, statement: str) -> None:
        """Run and commit one of the statements `defer` returned."""
        with closing(connection.cursor()) as cursor:
            cursor.execute(statement)
        connection.commit()

    def insert(self, table: Table) -> str:
        marks = ", ".join([self.placeholder] * len(table.columns))
        return f"INSERT INTO {table.name} ({', '.join(table.column_names)}) VALUES ({marks})"


class SQLiteServer(Server):
    placeholder = "?"

    def exists(self) -> bool:
        database = self.backend.url.database
        return database is not None and Path(database).is_file()

    def begin_snapshot(self, connection: Connection) -> None:
        # A read transaction: its first read fixes the image it sees (WAL).
        connection.execute("BEGIN")
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()

    def selected(self, column: Column) -> str:
        # Timestamps are stored as the canonical text already (`UTCDateTime`),
        # decimals as the nearest double, exact to its places when printed so.
        if column.form is Form.DECIMAL:
            return f"printf('%.{column.scale}f', {column.name})"
        return column.name

    def line(self, table: Table) -> str:
        fields = []
        for column in table.columns:
            name = column.name
            match column.form:
                case Form.INTEGER:
                    value = f"CAST({name} AS TEXT)"
                case Form.DECIMAL:
                    # printf reads NULL as 0.
                    value = f"CASE WHEN {name} IS NOT NULL THEN {self.selected(column)} END"
                case Form.TIMESTAMP:
                    value = name
                case Form.TEXT:
                    # Escaped where it needs to be: a GLOB costs a third of the replaces.
                    value = (
                        f"CASE WHEN {name} GLOB '*[\\' || char(9, 10, 13) || ']*' THEN "
                        f"replace(replace(replace(replace({name}, '\\', '\\\\'), "
                        "char(9), '\\t'), char(10), '\\n'), char(13), '\\r') "
                        f"ELSE {name} END"
                    )
            fields.append(f"coalesce({value}, '\\N')")
        return " || char(9) || ".join(fields) + " || char(10)"

    def id_counter(self, connection: Connection, table: Table) -> int:
        return int(
            self.scalar(connection, "SELECT seq FROM sqlite_sequence WHERE name = ?", table.name)
            or 0
        )

    def write(self, connection: Connection, table: Table, rows: Sequence[Row]) -> None:
        decimals = [n for n, column in enumerate(table.columns) if column.form is Form.DECIMAL]
        if decimals:
            # As the service stores them: the nearest double.
            rows = [_with_floats(row, decimals) for row in rows]
        connection.executemany(self.insert(table), rows)
        connection.commit()

    def set_id_counter(self, connection: Connection, table: Table, high_water: int) -> None:
        updated = connection.execute(
            "UPDATE sqlite_sequence SET seq = ? WHERE name = ?", (high_water, table.name)
        )
        if updated.rowcount == 0 and high_water > 0:
            connection.execute(
                "INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table.name, high_water)
            )
        connection.commit()


def _fetched(cursor: Any) -> Iterator[tuple[int, str]]:
    while batch := cursor.fetchmany(FETCH_ROWS):
        yield from batch


def _with_floats(row: Row, decimals: list[int]) -> tuple[Any, ...]:
    values: list[Any] = list(row)
    for n in decimals:
        if values[n] is not None:
            values[n] = float(values[n])
    return tuple(values)


class PostgreSQLServer(Server):
    def begin_snapshot(self, connection: Connection) -> None:
        # psycopg2 has begun the transaction; this sets what kind it is.
        with closing(connection.cursor()) as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")

    def selected(self, column: Column) -> str:
        if column.form in (Form.DECIMAL, Form.TIMESTAMP):
            # A numeric's text has all its places; a timestamp's leaves out the
            # fraction's trailing zeros (`canonical` adds them back).
            return f"CAST({column.name} AS TEXT)"
        return column.name

    def canonical(self, table: Table) -> Callable[[tuple[Any, ...]], Row] | None:
        times = [n for n, column in enumerate(table.columns) if column.form is Form.TIMESTAMP]
        if not times:
            return None

        def convert(row: tuple[Any, ...]) -> Row:
            values = list(row)
            for n in times:
                value = values[n]
                if value is not None and len(value) != 26:
                    values[n] = _six_places(value)
            return tuple(values)

        return convert

    def streaming_cursor(self, connection: Connection) -> Any:
        cursor = connection.cursor(name="items_service_copy")
        cursor.itersize = FETCH_ROWS
        return cursor

    def _sequence(self, connection: Connection, table: Table) -> str:
        return str(
            self.scalar(connection, "SELECT pg_get_serial_sequence(%s, %s)", table.name, table.key)
        )

    def id_counter(self, connection: Connection, table: Table) -> int:
        with closing(connection.cursor()) as cursor:
            cursor.execute(f"SELECT last_value, is_called FROM {self._sequence(connection, table)}")
            last, called = cursor.fetchone()
        return int(last) if called else int(last) - 1

    def line(self, table: Table) -> str:
        fields = []
        for column in table.columns:
            name = column.name
            match column.form:
                case Form.INTEGER | Form.DECIMAL:
                    # A numeric's text has all its places.
                    value = f"CAST({name} AS TEXT)"
                case Form.TIMESTAMP:
                    value = f"to_char({name}, 'YYYY-MM-DD HH24:MI:SS.US')"
                case Form.TEXT:
                    value = (
                        f"replace(replace(replace(replace({name}, '\\', '\\\\'), "
                        "E'\\t', '\\t'), E'\\n', '\\n'), E'\\r', '\\r')"
                    )
            fields.append(f"coalesce({value}, '\\N')")
        return " || E'\\t' || ".join(fields) + " || E'\\n'"

    def range_digests(self, connection: Connection, table: Table) -> Iterator[tuple[int, Digest]]:
        # The server hashes each range's lines: only the digests travel. One
        # range at a time, by the primary key, from the first key it holds.
        key = table.key
        digest = (
            f"SELECT count(*), encode(sha256(convert_to(coalesce(string_agg("
            f"{self.line(table)}, '' ORDER BY {key}), ''), 'UTF8')), 'hex') "
            f"FROM {table.name} WHERE {key} >= %s AND {key} < %s"
        )
        with closing(connection.cursor()) as cursor:
            start = 0
            while True:
                cursor.execute(f"SELECT min({key}) FROM {table.name} WHERE {key} >= %s", (start,))
                (first,) = cursor.fetchone()
                if first is None:
                    return
                number = range_of(first)
                start = (number + 1) * RANGE_IDS
                cursor.execute(digest, (number * RANGE_IDS, start))
                rows, hash = cursor.fetchone()
                yield number, Digest(rows, hash)

    def write(self, connection: Connection, table: Table, rows: Sequence[Row]) -> None:
        line = line_of(table)
        self.write_lines(connection, table, "".join(map(line, rows)).encode())

    takes_lines = True

    def write_lines(self, connection: Connection, table: Table, lines: bytes) -> None:
        columns = ", ".join(table.column_names)
        with closing(connection.cursor()) as cursor:
            cursor.execute(ASYNCHRONOUS_COMMIT)
            cursor.copy_expert(
                f"COPY {table.name} ({columns}) FROM STDIN", io.BytesIO(lines), size=COPY_CHUNK
            )
        connection.commit()

    def defer(self, connection: Connection, tables: Sequence[Table]) -> dict[str, list[str]]:
        # Built once over all the rows, an index costs a fraction of keeping it
        # row by row (GIN indexes of trigrams most, and a unique index of text
        # about as much as the rest of COPY), and a foreign key is checked by
        # one join instead of a lookup per row. Primary keys stay: a resumed
        # copy finds where it stopped by them, and a range written twice would
        # fail. A unique constraint added back checks every row, and the
        # verification compares them all.
        names = [table.name for table in tables]
        with closing(connection.cursor()) as cursor:
            cursor.execute(
                "SELECT indrelid::regclass::text, indexrelid::regclass::text, "
                "pg_get_indexdef(indexrelid) FROM pg_index "
                "WHERE indrelid::regclass::text = ANY(%s) AND NOT indisprimary AND NOT EXISTS "
                "(SELECT 1 FROM pg_constraint WHERE conindid = indexrelid)",
                (names,),
            )
            indexes = cursor.fetchall()
            cursor.execute(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
                "FROM pg_constraint WHERE contype IN ('u', 'f') "
                "AND conrelid::regclass::text = ANY(%s) "
                "ORDER BY contype = 'f' DESC",
                (names,),
            )
            # Foreign keys first: one may reference a unique constraint.
            constraints = cursor.fetchall()
            # A unique constraint comes back as its index, built beside the
            # others, and then the constraint made of it: ALTER TABLE ... UNIQUE
            # would lock the table's readers out while it sorts.
            unique = [
                (table, name)
                for table, name, definition in constraints
                if definition.startswith("UNIQUE ")
            ]
            cursor.execute(
                "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
                "WHERE indexrelid::regclass::text = ANY(%s)",
                ([name for _, name in unique],),
            )
            unique_indexes = dict(cursor.fetchall())
            for _, name, _ in indexes:
                cursor.execute(f"DROP INDEX {name}")
            for table, name, _ in constraints:
                cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
        deferred: dict[str, list[str]] = {}
        # GIN indexes take longest to build: begun first, they end sooner
        # (`Builder` runs more than one statement at a time).
        indexes.sort(key=lambda index: " USING gin " not in index[2])
        # Each statement does nothing if what it builds is there: a copy resumed
        # after it ran runs it again.
        for table, _, definition in indexes:
            deferred.setdefault(table, []).append(if_not_exists(definition))
        for table, name in unique:
            deferred.setdefault(table, []).append(if_not_exists(unique_indexes[name]))
            attach = f"ALTER TABLE {table} ADD CONSTRAINT {name} UNIQUE USING INDEX {name}"
            deferred.setdefault(AFTER_ALL, []).append(_unless_constraint(name, attach))
        for table, name, definition in reversed(constraints):
            if (table, name) not in unique:
                deferred.setdefault(table, []).append(
                    _unless_constraint(
                        name, f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}"
                    )
                )
        return deferred

    def build(self, connection: Connection, statement: str) -> None:
        with closing(connection.cursor()) as cursor:
            # For this transaction only: sorting in memory builds an index faster.
            cursor.execute(f"SET LOCAL maintenance_work_mem = '{INDEX_BUILD_MEMORY}'")
            cursor.execute(ASYNCHRONOUS_COMMIT)
            cursor.execute(statement)
        connection.commit()

    def set_id_counter(self, connection: Connection, table: Table, high_water: int) -> None:
        sequence = self._sequence(connection, table)
        with closing(connection.cursor()) as cursor:
            # setval(s, 1, false): the next id is 1, as in a new table.
            cursor.execute(
                "SELECT setval(%s, %s, %s)", (sequence, max(high_water, 1), high_water > 0)
            )
        connection.commit()


def if_not_exists(index_definition: str) -> str:
    return re.sub(r"^CREATE (UNIQUE )?INDEX ", r"CREATE \1INDEX IF NOT EXISTS ", index_definition)


def _unless_constraint(name: str, statement: str) -> str:
    return (
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_constraint WHERE conname = '{name}') "
        f"THEN {statement}; END IF; END $$"
    )


def _six_places(value: str) -> str:
    """`2026-01-31 12:00:00.12` or `2026-01-31 12:00:00` with six fractional digits."""
    whole, _, fraction = value.partition(".")
    return f"{whole}.{fraction:0<6}"


class MySQLServer(Server):
    def begin_snapshot(self, connection: Connection) -> None:
        with closing(connection.cursor()) as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")

    def selected(self, column: Column) -> str:
        if column.form is Form.DECIMAL:
            return f"CAST({column.name} AS CHAR)"
        if column.form is Form.TIMESTAMP:
            return f"DATE_FORMAT({column.name}, '%%Y-%%m-%%d %%H:%%i:%%s.%%f')"
        if column.as_bytes:
            return f"CONVERT({column.name} USING utf8mb4)"
        return column.name

    def streaming_cursor(self, connection: Connection) -> Any:
        from MySQLdb.cursors import SSCursor  # type: ignore[import-untyped]

        return connection.cursor(SSCursor)

    def id_counter(self, connection: Connection, table: Table) -> int:
        # SHOW CREATE TABLE gives the counter as it is now; information_schema
        # may give one cached hours ago (MySQL 8).
        with closing(connection.cursor()) as cursor:
            cursor.execute(f"SHOW CREATE TABLE {table.name}")
            definition = cursor.fetchone()[1]
        found = re.search(r"AUTO_INCREMENT=(\d+)", definition)
        return int(found[1]) - 1 if found else 0

    def counters_per_node(self, connection: Connection) -> bool:
        with closing(connection.cursor()) as cursor:
            return is_galera_node(cursor)

    def write(self, connection: Connection, table: Table, rows: Sequence[Row]) -> None:
        # mysqlclient sends executemany's rows as multi-row INSERT statements.
        with closing(connection.cursor()) as cursor:
            cursor.executemany(self.insert(table), rows)
        connection.commit()

    def set_id_counter(self, connection: Connection, table: Table, high_water: int) -> None:
        with closing(connection.cursor()) as cursor:
            cursor.execute(f"ALTER TABLE {table.name} AUTO_INCREMENT = {high_water + 1}")
        connection.commit()


def server_for(backend: Backend) -> Server:
    match backend.kind:
        case Kind.POSTGRESQL:
            return PostgreSQLServer(backend)
        case Kind.MYSQL:
            return MySQLServer(backend)
        case Kind.SQLITE:
            return SQLiteServer(backend)
