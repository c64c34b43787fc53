"""A copy of one database onto another, and its verification.

The source is read in one consistent image (`Server.begin_snapshot`), each
table in foreign-key order, streamed in key order and written range by range
(`RANGE_IDS`), one transaction each: a copy that was killed resumes after
the last range the target committed. A marker on the target (`MARKER`) says
which source it is a copy of until the copy has verified, so that a rerun
may resume it and any other copy is refused.
"""

import json
import queue
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa
from alembic.util import CommandError

from alembic import command
from service.copy.servers import AFTER_ALL, Connection, Server, SQLiteServer
from service.copy.tables import (
    RANGE_IDS,
    Digest,
    Row,
    Table,
    by_range,
    copied_tables,
    line_of,
    range_of,
    range_text,
)
from service.db.model import TEXT_OPTIONS
from service.db.urls import safe_url
from service.migrations import alembic_config, current_revision, head_revision

# Differences named per table; past these, the rest are counted.
DIFFERENCES_SHOWN = 10
# Batches read ahead of the one being written.
QUEUED = 2
# Deferred statements run at a time: a GIN index's build takes one core for
# longer than the rest together.
BUILDERS = 2

_marker_metadata = sa.MetaData()
MARKER = sa.Table(
    "items_service_copy",
    _marker_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("source", sa.String(1000), nullable=False),
    # What the copy dropped to build in bulk once the rows are in: a JSON list
    # of the statements that build it; NULL once they have run.
    sa.Column("deferred", sa.Text),
    **TEXT_OPTIONS,
)


class CopyRefused(Exception):
    """The copy cannot start; the message says why and what to do, without a password."""


class Report(Protocol):
    """Where a copy tells how it is going."""

    def started(self, step: str, table: str, rows: int) -> None: ...

    def advanced(self, rows: int) -> None: ...

    def finished(self) -> None: ...


@dataclass
class Digests:
    """Each table's digest of each id range that holds rows."""

    ranges: dict[str, dict[int, Digest]] = field(default_factory=dict)

    def add(self, table: Table, number: int, digest: Digest) -> None:
        self.ranges.setdefault(table.name, {})[number] = digest

    def of(self, table: Table) -> dict[int, Digest]:
        return self.ranges.setdefault(table.name, {})


def source_identity(server: Server) -> str:
    """The source as the marker records it: its URL without the password, and a
    SQLite file by its absolute path."""
    url = server.backend.url
    if isinstance(server, SQLiteServer) and url.database:
        url = url.set(database=str(Path(url.database).resolve()))
    return safe_url(url)


def refuse_in_memory(server: Server, role: str) -> None:
    if server.backend.database_lives_in_engine:
        raise CopyRefused(
            f"the {role} is sqlite://, a database in memory that no other process sees: "
            "name a SQLite file (sqlite:///path/items.db)"
        )


def check_source(source: Server) -> str:
    """The source's revision, which must be the one this service's models describe."""
    refuse_in_memory(source, "source")
    if isinstance(source, SQLiteServer) and not source.exists():
        raise CopyRefused(f"the source {safe_url(source.backend.url)} does not exist")
    with source.engine.connect() as connection:
        revision = current_revision(connection)
    head = head_revision()
    if revision != head:
        found = "has no schema" if revision is None else f"is at revision {revision}"
        raise CopyRefused(
            f"the source {found}; this version of items-service copies its newest, {head}: "
            "migrate the source first (start the service on it, or `alembic upgrade head`), "
            "or use the version of items-service that serves it"
        )
    assert revision is not None
    return revision


def prepare_target(target: Server, source: Server, revision: str) -> None:
    """Check that the target is empty or a copy of this source in progress, then
    migrate it to the source's revision and mark it as this source's copy."""
    refuse_in_memory(target, "target")
    identity = source_identity(source)
    if identity == source_identity(target):
        raise CopyRefused("the source and the target are the same database")
    with target.engine.connect() as connection:
        inspector = sa.inspect(connection)
        marked = None
        if inspector.has_table(MARKER.name):
            marked = connection.execute(sa.select(MARKER.c.source)).scalar()
        holding = [
            table.name
            for table in copied_tables()
            if inspector.has_table(table.name)
            and connection.execute(sa.text(f"SELECT 1 FROM {table.name} LIMIT 1")).first()
        ]
    if marked is not None and marked != identity:
        raise CopyRefused(
            f"the target holds a copy of {marked} that has not finished: to finish it, "
            f"run the copy again with --from that database; or copy into an empty database"
        )
    if marked is None and holding:
        raise CopyRefused(
            f"the target already holds rows ({', '.join(holding)}) and is no copy in "
            "progress: copy into an empty database (`--verify` compares the two)"
        )
    config = alembic_config()
    config.attributes["connection"] = target.engine
    config.attributes["configure_logger"] = False
    try:
        command.upgrade(config, revision)
    except CommandError as error:
        raise CopyRefused(
            f"the target's schema cannot be brought to the source's revision {revision}: "
            f"{error}; copy into an empty database"
        ) from None
    with target.engine.begin() as connection:
        MARKER.create(connection, checkfirst=True)
        if marked is None:
            later = target.defer(connection.connection, copied_tables())
            connection.execute(
                sa.insert(MARKER).values(id=1, source=identity, deferred=json.dumps(later))
            )


def deferred(target: Server) -> dict[str, list[str]]:
    """By table, what the copy builds once the table's rows are in (`Server.defer`)."""
    with target.engine.connect() as connection:
        statements: dict[str, list[str]] = json.loads(
            connection.execute(sa.select(MARKER.c.deferred)).scalar() or "{}"
        )
    return statements


class Builder:
    """Builds what was deferred, table by table as their rows are in, on
    connections and threads of its own (`BUILDERS` statements at a time):
    while the next table is copied, and the copy verified."""

    def __init__(self, target: Server) -> None:
        self.target = target
        self.statements: queue.Queue[str | None] = queue.Queue()
        self.error: BaseException | None = None
        self.count = 0
        self.threads = [
            threading.Thread(target=self.run, name="copy-builder", daemon=True)
            for _ in range(BUILDERS)
        ]
        for thread in self.threads:
            thread.start()

    def run(self) -> None:
        with closing(self.target.connect()) as connection:
            while (statement := self.statements.get()) is not None:
                if self.error is None:
                    try:
                        self.target.build(connection, statement)
                    except BaseException as error:
                        self.error = error

    def submit(self, statements: list[str]) -> None:
        for statement in statements:
            self.count += 1
            self.statements.put(statement)

    def finish(self, report: Report, last: list[str]) -> None:
        """Wait for what was submitted, then run `last`."""
        if self.count or last:
            report.started("build", "indexes and constraints", self.count + len(last))
        for _ in self.threads:
            self.statements.put(None)
        for thread in self.threads:
            thread.join()
        if self.error is not None:
            raise self.error
        if last:
            with closing(self.target.connect()) as connection:
                for statement in last:
                    self.target.build(connection, statement)
        if self.count or last:
            report.advanced(self.count + len(last))
            report.finished()


def unmark(target: Server) -> None:
    # On the engine's connection: a synchronous commit, which returns once the
    # copy's own asynchronous commits are on disk too (`ASYNCHRONOUS_COMMIT`).
    with target.engine.begin() as connection:
        MARKER.drop(connection, checkfirst=True)


def is_marked(target: Server) -> bool:
    with target.engine.connect() as connection:
        return sa.inspect(connection).has_table(MARKER.name)


@contextmanager
def snapshot(server: Server) -> Iterator[Connection]:
    connection = server.connect()
    try:
        server.begin_snapshot(connection)
        yield connection
    finally:
        connection.rollback()
        connection.close()


class BackgroundWriter:
    """Writes a table's batches (rows, or lines where the target takes them) on a
    thread of its own while the next are read and digested, so that this
    process's work overlaps the target's; at most `QUEUED` batches wait. The
    first error stops the writing, and is raised."""

    def __init__(self, target: Server, connection: Connection, table: Table) -> None:
        self.target, self.connection, self.table = target, connection, table
        self.batches: queue.Queue[list[Row] | bytes | None] = queue.Queue(maxsize=QUEUED)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self.run, name="copy-writer", daemon=True)

    def __enter__(self) -> "BackgroundWriter":
        self.thread.start()
        return self

    def run(self) -> None:
        while (batch := self.batches.get()) is not None:
            if self.error is None:
                try:
                    if isinstance(batch, bytes):
                        self.target.write_lines(self.connection, self.table, batch)
                    else:
                        self.target.write(self.connection, self.table, batch)
                except BaseException as error:
                    self.error = error

    def write(self, batch: list[Row] | bytes) -> None:
        if self.error is not None:
            raise self.error
        self.batches.put(batch)

    def __exit__(self, *exception: object) -> None:
        self.batches.put(None)
        self.thread.join()
        if self.error is not None and exception[0] is None:
            raise self.error


def copy_rows(
    source: Server,
    reading: Connection,
    target: Server,
    report: Report,
    builder: Builder,
    later: dict[str, list[str]],
) -> tuple[Digests, dict[str, int]]:
    """Copy every table's rows the target lacks, each table's deferred statements
    (`later`) handed to `builder` once its rows are in; the digests of the
    ranges copied, and where each table's copy began (a resumed copy, after 0)."""
    digests = Digests()
    starts: dict[str, int] = {}
    with closing(target.connect()) as writing:
        for table in copied_tables():
            copied = target.max_key(writing, table)
            # Ranges commit whole: the one holding the highest key copied is complete.
            start = (range_of(copied) + 1) * RANGE_IDS if copied else 0
            starts[table.name] = start
            rows = int(
                source.scalar(
                    reading,
                    f"SELECT count(*) FROM {table.name} WHERE {table.key} >= {source.placeholder}",
                    start,
                )
            )
            report.started("copy", table.name, rows)
            with BackgroundWriter(target, writing, table) as writer:
                if target.takes_lines:
                    for lines in source.lines(reading, table, start):
                        writer.write(lines.text)
                        digests.add(table, lines.number, lines.digest())
                        report.advanced(lines.rows)
                else:
                    line = line_of(table)
                    for number, batch in by_range(source.rows(reading, table, start)):
                        writer.write(batch)
                        text = "".join(map(line, batch)).encode()
                        digests.add(table, number, Digest.of(len(batch), text))
                        report.advanced(len(batch))
            report.finished()
            builder.submit(later.get(table.name, []))
        for table in copied_tables():
            target.set_id_counter(writing, table, source.high_water(reading, table))
    return digests, starts


def read_digests(
    server: Server,
    connection: Connection,
    table: Table,
    digests: Digests,
    report: Report,
    step: str,
    stop: int | None = None,
) -> None:
    """Add the digests of `table`'s ranges below `stop` (all, if None)."""
    if stop == 0:
        return
    rows = server.count(connection, table)
    report.started(step, table.name, rows)
    if stop is None:
        for number, digest in server.range_digests(connection, table):
            digests.add(table, number, digest)
            report.advanced(digest.rows)
    else:
        for lines in server.lines(connection, table, 0, stop):
            digests.add(table, lines.number, lines.digest())
            report.advanced(lines.rows)
    report.finished()


def differences(
    source: Server,
    reading: Connection,
    target: Server,
    source_digests: Digests,
    report: Report,
) -> list[str]:
    """Where the target differs from the source's image: by table, id range and
    column; the id counters; a copy not finished."""
    found: list[str] = []
    target_digests = Digests()
    with snapshot(target) as checking:
        # On a Galera cluster each node keeps a counter of its own, rounded to
        # its auto_increment_offset, and a connection reads the one of the node
        # it reached: the counters are not compared there.
        per_node = source.counters_per_node(reading) or target.counters_per_node(checking)
        for table in copied_tables():
            read_digests(target, checking, table, target_digests, report, "verify target")
            ours, theirs = source_digests.of(table), target_digests.of(table)
            differing = sorted(
                n for n in ours.keys() | theirs.keys() if ours.get(n) != theirs.get(n)
            )
            for number in differing[:DIFFERENCES_SHOWN]:
                found.append(range_difference(source, reading, target, checking, table, number))
            if len(differing) > DIFFERENCES_SHOWN:
                found.append(
                    f"{table.name}: {len(differing) - DIFFERENCES_SHOWN} more id ranges differ"
                )
            expected = source.high_water(reading, table)
            counter = target.high_water(checking, table)
            if counter != expected and not per_node:
                found.append(
                    f"{table.name}: the next id would be {counter + 1} on the target, "
                    f"{expected + 1} on the source"
                )
    return found


def range_difference(
    source: Server,
    reading: Connection,
    target: Server,
    checking: Connection,
    table: Table,
    number: int,
) -> str:
    """What differs in one id range, read again from both: the first row missing,
    extra or different, and the columns that differ in it."""
    start, stop = number * RANGE_IDS, (number + 1) * RANGE_IDS
    ours = {row[0]: row for row in source.rows(reading, table, start, stop)}
    theirs = {row[0]: row for row in target.rows(checking, table, start, stop)}
    where = (
        f"{table.name} {range_text(number)}: {len(ours)} rows on the source, "
        f"{len(theirs)} on the target"
    )
    for key in sorted(ours.keys() | theirs.keys()):  # type: ignore[type-var]
        mine, other = ours.get(key), theirs.get(key)
        if other is None:
            return f"{where}; id {key} is missing from the target"
        if mine is None:
            return f"{where}; id {key} is on the target only"
        if mine != other:
            columns = [
                column.name
                for column, a, b in zip(table.columns, mine, other, strict=True)
                if a != b
            ]
            return f"{where}; column {', '.join(columns)} differs (first at id {key})"
    return f"{where}; the rows are the same when read again: was the target written to meanwhile?"


def copy(source: Server, target: Server, report: Report) -> list[str]:
    """Copy `source` onto `target` (empty, or this source's copy in progress) and
    verify it; the differences found (none: the copy is done)."""
    revision = check_source(source)
    prepare_target(target, source, revision)
    later = deferred(target)
    builder = Builder(target)
    with snapshot(source) as reading:
        digests, starts = copy_rows(source, reading, target, report, builder, later)
        for table in copied_tables():
            # A resumed copy: the ranges copied before it, read again.
            read_digests(
                source, reading, table, digests, report, "verify source", stop=starts[table.name]
            )
        found = differences(source, reading, target, digests, report)
    builder.finish(report, later.get(AFTER_ALL, []))
    if not found:
        unmark(target)
    return found


def verify(source: Server, target: Server, report: Report) -> list[str]:
    """The differences between `target` and `source`, changing neither."""
    revision = check_source(source)
    refuse_in_memory(target, "target")
    if isinstance(target, SQLiteServer) and not target.exists():
        raise CopyRefused(f"the target {safe_url(target.backend.url)} does not exist")
    with target.engine.connect() as connection:
        target_revision = current_revision(connection)
    if target_revision != revision:
        return [f"the target's schema is at revision {target_revision}, the source's at {revision}"]
    found = []
    if is_marked(target):
        found.append("the copy onto the target has not finished: run it again to finish it")
    with snapshot(source) as reading:
        digests = Digests()
        for table in copied_tables():
            read_digests(source, reading, table, digests, report, "verify source")
        found += differences(source, reading, target, digests, report)
    return found
