"""What every backend tells the data layer, asked once when the engine is made."""

import enum
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import DBAPIError

from service.db.backends.tls import (
    DriverOptions,
    Encryption,
    TLSRequest,
    failure_fix,
    not_encrypted,
)
from service.settings import Settings

# Pre-ping skips a connection used this recently, as HikariCP does
# (aliveBypassWindowMs): under load that saves a round trip per request, and
# a connection idle for longer is still checked before use.
PING_AFTER_IDLE_SECONDS = 0.5
DEFAULT_POOL_TIMEOUT = 10.0
DEFAULT_MAX_OVERFLOW = 0
# Set in a migration connection's `info` while each statement it runs commits
# alone (a backfill's batches, CREATE INDEX CONCURRENTLY).
STATEMENTS_COMMIT_ALONE = "statements_commit_alone"


class Kind(enum.Enum):
    """Which kind of server: the families whose SQL differs. MySQL and MariaDB
    are one (SQLAlchemy names their dialects `mysql` and `mariadb`)."""

    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"
    MYSQL = "mysql"


class SearchIndex(enum.Enum):
    """What answers `LIKE '%text%'` from an index."""

    # The server's own index (PostgreSQL's pg_trgm).
    SERVER = "server"
    # A resource's FTS5 table of trigrams (SQLite): it stores each
    # transaction's trigrams as one segment, where a table writes a page for each.
    FULL_TEXT = "full text"
    # A resource's table of trigrams (`service.db.search`), kept by triggers.
    TRIGRAM_TABLE = "trigram table"


@dataclass(frozen=True)
class Capabilities:
    """How statements run on a backend; the data layer branches on these, never on its name."""

    # Threads for database calls, one per pooled connection: none then waits for one.
    worker_threads: int
    # `UPDATE ... RETURNING` gives the row as stored, in the same statement.
    update_returning: bool
    # Writes go to one thread of their own and commit in groups (`group_commit`).
    one_writer_thread: bool
    # Reads by key run on the event loop itself, not on a worker thread.
    short_reads_on_loop: bool
    # What answers `LIKE '%text%'` from an index.
    search_index: SearchIndex


class ErrorKind(enum.Enum):
    """What a database error means for the request that met it."""

    # The server cannot be reached or cannot serve now: try again later.
    UNAVAILABLE = "unavailable"
    # Nothing was committed, and the statement can run again as it is: a write
    # lost to a concurrent one, or reached a server not ready to serve.
    RETRYABLE = "retryable"
    # A table or column is missing: the schema is not migrated.
    SCHEMA = "schema"
    # The statement broke a constraint (unique, check, foreign key, not null).
    CONSTRAINT = "constraint"
    # Anything else is a bug in the service's SQL.
    BUG = "bug"


class Broken(enum.Enum):
    UNIQUE = "unique"
    CHECK = "check"
    FOREIGN_KEY = "foreign key"
    NOT_NULL = "not null"


@dataclass(frozen=True)
class BrokenConstraint:
    """A constraint as the server's error names it: by name where it can, else by the
    columns it covers (SQLite names columns; for a foreign key, nothing at all)."""

    broken: Broken
    name: str | None = None
    columns: tuple[str, ...] = ()


class Backend(ABC):
    """One kind of database server: what its engine needs, what it can do, what its errors mean."""

    kind: Kind
    # Connections in the pool, one worker thread each, unless `DB_POOL_SIZE` says
    # otherwise; None: no pool.
    default_pool_size: int | None
    # The package extra that installs the driver: `pip install -e '.[...]'`.
    driver_extra = ""
    # The database exists only inside one engine (`sqlite://`): it must be
    # migrated on the engine that serves it.
    database_lives_in_engine = False
    # What the URL asks of TLS, and the driver's names for its options: none,
    # where no network is crossed.
    tls = TLSRequest("")
    tls_options: DriverOptions | None = None

    def __init__(self, url: URL, settings: Settings) -> None:
        self.url = url
        self.settings = settings

    @property
    @abstractmethod
    def capabilities(self) -> Capabilities: ...

    @abstractmethod
    def engine_options(self) -> dict[str, Any]:
        """Options for `sqlalchemy.create_engine`."""

    @abstractmethod
    def prepare(self, engine: Engine) -> None:
        """Attach what every connection of `engine` needs (listeners on this engine only)."""

    @abstractmethod
    def error_kind(self, error: DBAPIError) -> ErrorKind: ...

    @abstractmethod
    def broken_constraint(self, error: DBAPIError) -> BrokenConstraint | None:
        """The constraint an integrity error names; None if it is not one."""

    @abstractmethod
    def migration_lock(self, engine: Engine) -> AbstractContextManager[None]:
        """A lock held across processes while one of them migrates, on a
        connection of its own: the migration commits as it goes."""

    def start_migrating(self, connection: Connection) -> Connection:
        """The connection a migration runs on, set up for it."""
        return connection

    # What every transaction of a migration runs first.
    migration_transaction_statements: tuple[str, ...] = ()

    def begin_migration_transaction(self, connection: Connection) -> None:
        """Run `migration_transaction_statements`, unless the connection's
        statements commit alone (they begin no transaction of theirs)."""
        if not connection.info.get(STATEMENTS_COMMIT_ALONE):
            for statement in self.migration_transaction_statements:
                connection.exec_driver_sql(statement)

    def waiting_briefly(self, connection: Connection, statement: str) -> str:
        """`statement`, a DDL statement that needs its table to itself for a
        moment (a trigger made or dropped), as run so that it waits for the
        table, and every request queued behind it waits, as briefly as the
        server allows: by default, the lock timeout of every statement."""
        return statement

    # How long a migration waits after each batch it commits, so that writers
    # waiting for the lock it held get it first.
    pause_after_batch_seconds = 0.0

    def lock_timed_out(self, error: DBAPIError) -> bool:
        """Whether a migration's statement gave up waiting for a lock (or lost a
        deadlock): nothing was done, and it can run again later."""
        return False

    def server_name(self, connection: Connection) -> str:
        return connection.dialect.name

    def encryption(self, connection: Connection) -> Encryption | None:
        """What the connection does for TLS; None where no network is crossed."""
        return None

    def tls_fix(self, error: BaseException) -> str | None:
        """What to do about a connection that failed, if TLS is why."""
        return None

    def startup_problem(self) -> str | None:
        """Why the service cannot start on this database, known before connecting."""
        return None

    def server_cannot_serve(self, error: BaseException) -> bool:
        """Whether `error` says that the server the connection reached cannot serve
        it at all (read-only, not ready): the connection is then dropped, and the
        pool opens another, which may reach another server."""
        return False

    def pool_limits(self) -> tuple[int, int] | None:
        """The pool's size and overflow; None where there is no pool."""
        if self.default_pool_size is None:
            return None
        overflow = self.settings.db_max_overflow
        return (
            self.settings.db_pool_size or self.default_pool_size,
            DEFAULT_MAX_OVERFLOW if overflow is None else overflow,
        )

    def worker_threads(self) -> int:
        """One per pooled connection, so a thread never waits for a connection
        and none sits idle; one where all share a connection."""
        limits = self.pool_limits()
        return 1 if limits is None else sum(limits)

    def pool_options(self, extra_connections: int = 0) -> dict[str, Any]:
        limits = self.pool_limits()
        assert limits is not None
        return {
            "pool_size": limits[0] + extra_connections,
            "max_overflow": limits[1],
            "pool_timeout": self.settings.db_pool_timeout or DEFAULT_POOL_TIMEOUT,
        }


class NetworkBackend(Backend):
    """A server reached over a socket: a pool of connections, one worker thread each."""

    # A network database spends most of a call answering, so 40 threads keep it busy.
    default_pool_size = 40
    update_returning = False
    search_index = SearchIndex.TRIGRAM_TABLE
    tls_options: DriverOptions

    def __init__(self, url: URL, settings: Settings) -> None:
        super().__init__(url, settings)
        # Refuses, before any connection is made, what the driver would not honour.
        self.tls = self.tls_request()

    @abstractmethod
    def tls_request(self) -> TLSRequest: ...

    @abstractmethod
    def driver_encryption(self, dbapi_connection: Any) -> Encryption: ...

    @abstractmethod
    def plain_text_error(self, dbapi: Any, message: str) -> Exception:
        """The driver's own error for a connection refused for being in plain text."""

    def encryption(self, connection: Connection) -> Encryption:
        return self.driver_encryption(connection.connection.dbapi_connection)

    def tls_fix(self, error: BaseException) -> str | None:
        return failure_fix(str(getattr(error, "orig", None) or error), self.tls_options)

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            worker_threads=self.worker_threads(),
            update_returning=self.update_returning,
            one_writer_thread=False,
            # Waiting for the network on the event loop would stall every other request.
            short_reads_on_loop=False,
            search_index=self.search_index,
        )

    # Whether a server that cannot serve takes down every pooled connection
    # (they all reach it) or only the one that met it (they reach several).
    drop_every_connection_when_unusable = True

    def prepare(self, engine: Engine) -> None:
        if self.tls.required:
            refuse_plain_text(engine, self)
        pre_ping_idle_connections(engine, PING_AFTER_IDLE_SECONDS)

        @sa.event.listens_for(engine, "handle_error")
        def drop_unusable(context: sa.engine.ExceptionContext) -> None:
            if self.server_cannot_serve(context.original_exception):
                context.is_disconnect = True
                context.invalidate_pool_on_disconnect = self.drop_every_connection_when_unusable


def refuse_plain_text(engine: Engine, backend: NetworkBackend) -> None:
    """Close each new connection that is not encrypted, before anything else uses it,
    with the driver's error: a connection the server could not give."""

    @sa.event.listens_for(engine, "connect", insert=True)
    def encrypted_or_refused(dbapi_connection: Any, _record: Any) -> None:
        encryption = backend.driver_encryption(dbapi_connection)
        if encryption.protocol is None:
            message = not_encrypted(encryption, backend.tls)
            raise backend.plain_text_error(engine.dialect.loaded_dbapi, message)


def pre_ping_idle_connections(engine: Engine, idle_seconds: float) -> None:
    """Pre-ping, as `pool_pre_ping` does, a connection unused for `idle_seconds` or more.

    SQLAlchemy's documented recipe for pessimistic disconnect handling: a dead
    connection raises InvalidatePoolError at checkout, so the pool drops it and
    every connection opened before it, and connects afresh.
    """

    def mark_used(_dbapi_connection: Any, record: Any) -> None:
        record.info["used_at"] = time.monotonic()

    sa.event.listen(engine, "connect", mark_used)
    sa.event.listen(engine, "checkin", mark_used)

    @sa.event.listens_for(engine, "checkout")
    def ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("used_at", 0.0) < idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            if engine.dialect.is_disconnect(error, dbapi_connection, None):
                raise sa.exc.InvalidatePoolError(str(error)) from error
            raise


@contextmanager
def held(take: str, release: str, connection: Connection) -> Iterator[None]:
    """Run `take`, yield, then `release`, on `connection`: a lock held for the block."""
    connection.exec_driver_sql(take)
    try:
        yield
    finally:
        connection.exec_driver_sql(release)
