"""The one module that knows which database it is talking to.

`create_engine` turns `DATABASE_URL` into an Engine with the options that
backend needs; everything else in the service is backend-agnostic.
"""

import asyncio
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar, TypeVarTuple

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from service.group_commit import GroupCommitWriter
from service.settings import Settings

ACCEPTED_URL_FORMS = (
    "sqlite:///relative/path.db, sqlite:////absolute/path.db, sqlite://, "
    "postgresql://, postgresql+psycopg2://, postgres://, "
    "mysql://, mysql+mysqldb://, mariadb://, mariadb+mysqldb://"
)

# Every accepted scheme, and the SQLAlchemy driver name it means here.
# SQLAlchemy 2.1 maps a bare `postgresql://` to psycopg 3; this project ships psycopg2.
_DRIVERS = {
    "sqlite": "sqlite+pysqlite",
    "postgres": "postgresql+psycopg2",
    "postgresql": "postgresql+psycopg2",
    "postgresql+psycopg2": "postgresql+psycopg2",
    "mysql": "mysql+mysqldb",
    "mysql+mysqldb": "mysql+mysqldb",
    "mariadb": "mariadb+mysqldb",
    "mariadb+mysqldb": "mariadb+mysqldb",
}
_EXTRAS = {"postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql"}

# Server-side idle timeouts default to 8 hours on MySQL; hosted servers often cut sooner.
MYSQL_POOL_RECYCLE_SECONDS = 1800
# Database calls run on worker threads, as many as the pool has connections
# (see `pool_limits`), each with its own connection kept open: overflow
# connections would be opened and closed again under load, which profiling
# showed as a real cost. A network database spends most of a call answering,
# so 40 threads keep it busy.
DEFAULT_POOL_SIZE = 40
# SQLite works inside this process, and its driver lets go of the GIL for every
# row it steps through and takes it back: with 40 threads they queue for it row
# by row. Two threads served a list of 100 items 70% faster than 40, with a
# third of the p99 (bench/results.md).
SQLITE_DEFAULT_POOL_SIZE = 2
DEFAULT_MAX_OVERFLOW = 0
DEFAULT_POOL_TIMEOUT = 10.0
# Pre-ping skips a connection used this recently, as HikariCP does
# (aliveBypassWindowMs): under load that saves a round trip per request, and
# a connection idle for longer is still checked before use.
PING_AFTER_IDLE_SECONDS = 0.5


T = TypeVar("T")
Args = TypeVarTuple("Args")


class DatabaseURLError(ValueError):
    """`DATABASE_URL` cannot be served. The message never contains the password."""


def parse_database_url(raw: str) -> URL:
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError):
        # The parser's own message repeats the URL, password included: never show it.
        raise DatabaseURLError(
            f"DATABASE_URL is not a valid database URL. Accepted forms: {ACCEPTED_URL_FORMS}"
        ) from None
    driver = _DRIVERS.get(url.drivername)
    if driver is None:
        raise DatabaseURLError(
            f"DATABASE_URL scheme '{url.drivername}://' is not supported. "
            f"Accepted forms: {ACCEPTED_URL_FORMS}"
        )
    return url.set(drivername=driver)


def safe_url(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def create_engine(url: URL, settings: Settings, *, autocommit: bool = False) -> Engine:
    """The engine for `url`, with what its backend needs.

    `autocommit=True` is for the service, whose every write is one statement:
    each statement commits by itself, so no request pays for BEGIN and
    COMMIT or ROLLBACK round trips (a SQLite file's writer thread opens its
    own transactions, see `group_commit`). Migrations keep real transactions.
    """
    backend = url.get_backend_name()
    if backend == "sqlite":
        options = _sqlite_options(url, settings)
    elif backend == "postgresql":
        options = _pool_options(url, settings) | {
            "connect_args": {"connect_timeout": settings.db_connect_timeout},
        }
    else:
        options = _pool_options(url, settings) | {
            "pool_recycle": MYSQL_POOL_RECYCLE_SECONDS,
            "connect_args": {
                # MySQL's `utf8` holds only 3-byte characters; emoji need utf8mb4.
                "charset": "utf8mb4",
                "connect_timeout": settings.db_connect_timeout,
                # Strict mode: out-of-range or too-long values fail instead of being cut.
                "init_command": "SET SESSION sql_mode = 'TRADITIONAL,NO_ENGINE_SUBSTITUTION'",
            },
        }
    if autocommit:
        # Nothing is ever left open to roll back when a connection returns, and
        # mysqlclient would send each rollback() to the server: a round trip per request.
        options |= {
            "isolation_level": "AUTOCOMMIT",
            "pool_reset_on_return": None,
            "skip_autocommit_rollback": True,
        }
    try:
        engine = sa.create_engine(url, echo=settings.db_echo, **options)
    except ImportError:
        raise DatabaseURLError(
            f"The {backend} driver is not installed: "
            f"pip install 'items-service[{_EXTRAS.get(backend, backend)}]'"
        ) from None
    if backend == "sqlite":
        _enable_sqlite_pragmas(engine, in_memory=_is_sqlite_memory(url))
    else:
        _pre_ping_idle_connections(engine, PING_AFTER_IDLE_SECONDS)
    return engine


def pool_limits(url: URL, settings: Settings) -> tuple[int, int] | None:
    """The pool's size and overflow for `url`, one connection per worker thread
    (a SQLite file's pool has two more, see `_sqlite_options`); None for
    `sqlite://`, one shared connection."""
    if url.get_backend_name() == "sqlite":
        if _is_sqlite_memory(url):
            return None
        default_size = SQLITE_DEFAULT_POOL_SIZE
    else:
        default_size = DEFAULT_POOL_SIZE
    overflow = settings.db_max_overflow
    return (
        settings.db_pool_size or default_size,
        DEFAULT_MAX_OVERFLOW if overflow is None else overflow,
    )


def worker_threads(url: URL, settings: Settings) -> int:
    """Threads for the service's database calls: one per pooled connection,
    so a thread never waits for a connection and none sits idle.
    `sqlite://` has one connection, shared."""
    limits = pool_limits(url, settings)
    return 1 if limits is None else sum(limits)


class Database:
    """The service's engine, and the worker threads its blocking calls run on.

    A thin hop over asyncio's `run_in_executor`: profiling showed AnyIO's
    `to_thread` (cancel scopes, a capacity limiter, a context copy per call)
    costing a fifth of the event loop's time on a primary-key read.
    """

    def __init__(self, engine: Engine, threads: int) -> None:
        self.engine = engine
        self.threads = threads
        self.short_reads_on_loop = short_reads_on_loop(engine.url)
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="database")
        self._writer = GroupCommitWriter(engine) if one_writer_thread(engine.url) else None

    async def run(self, call: Callable[[Engine, *Args], T], *args: *Args) -> T:
        """`call(engine, *args)` on a worker thread."""
        return await self._start(call, *args)

    async def write(self, call: Callable[[Connection, *Args], T], *args: *Args) -> T:
        """`call(connection, *args)`, a write: on the writer thread, committed
        with the other writes of the moment, where `one_writer_thread` says so;
        else on a worker thread, committed by itself."""
        if self._writer is not None:
            return await self._writer.write(call, *args)
        return await self._start(_on_connection, call, *args)

    def start_short_read(
        self, call: Callable[[Engine, *Args], T], *args: *Args
    ) -> asyncio.Future[T]:
        """Start `call(engine, *args)`, a short read by index seeks: right here on
        the event loop where `short_reads_on_loop` says so (the future returned
        is then done), else on a worker thread."""
        if not self.short_reads_on_loop:
            return self._start(call, *args)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        try:
            future.set_result(call(self.engine, *args))
        except Exception as error:
            future.set_exception(error)
        return future

    def _start(self, call: Callable[[Engine, *Args], T], *args: *Args) -> asyncio.Future[T]:
        """`call(engine, *args)` started on a worker thread."""
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._executor, call, self.engine, *args)

    def close(self) -> None:
        self._executor.shutdown()
        if self._writer is not None:
            self._writer.close()
        self.engine.dispose()


def _on_connection(engine: Engine, call: Callable[[Connection, *Args], T], *args: *Args) -> T:
    with engine.connect() as connection:
        return call(connection, *args)


def short_reads_on_loop(url: URL) -> bool:
    """Whether short reads are cheaper on the event loop than on a worker thread.

    For a SQLite file, yes. SQLite works inside this process, and its driver
    lets go of the GIL and takes it back for every row it steps through: from
    a worker thread, each of those is a hand-over with the event loop. On the
    loop there is no one to hand over to: get-one (its reads gathered by
    `batched_reads`) served 35% more requests, measured side by side (wrk, 32
    connections; 45-60% before reads were gathered). In WAL mode a
    reader never waits for a writer, and the pool has a connection that no
    worker thread takes (`_sqlite_options`), so the loop never waits either.
    Lists stay on worker threads: on the loop a list of 100 served 35-50%
    more requests, but each turn of a busy loop then lasts as long as the
    lists it serves (20 ms for 32 lists of 100), and uvloop's libuv accepts
    one new connection per turn (libuv PR #3696): 32 connections opened at
    once waited up to 330 ms for their first answer.
    Network databases answer over a socket: waiting for that on the loop
    would stall every other request, so they keep worker threads.
    `sqlite://` shares one connection with its worker thread: it does too.
    """
    return url.get_backend_name() == "sqlite" and not _is_sqlite_memory(url)


def one_writer_thread(url: URL) -> bool:
    """Whether writes go to one thread of their own, committed in groups
    (`group_commit`).

    For a SQLite file, yes. SQLite lets one connection write at a time; a
    second writer sleeps on the busy timeout until the first is done, for 1,
    2, 5, 10 ms and longer. Two worker threads writing at once did that often
    enough, on one CPU (`python -m service` pins itself to one), for create's
    p99 to reach 131-385 ms against a p50 of 32. On a thread of their own,
    writes wait in order instead, and lists never queue behind a write
    waiting for the lock. Committing the writes waiting together, one disk
    sync and one wake-up of the event loop for the group, doubled what
    creates and patches served (side by side, 3 rounds: create 1,524 ->
    3,065 req/s, patch 1,368 -> 2,575). `sqlite://` has one connection and
    one thread for everything.
    Network databases take concurrent writers, and commit by themselves.
    """
    return url.get_backend_name() == "sqlite" and not _is_sqlite_memory(url)


def _pool_options(url: URL, settings: Settings) -> dict[str, Any]:
    limits = pool_limits(url, settings)
    assert limits is not None
    return {
        "pool_size": limits[0],
        "max_overflow": limits[1],
        "pool_timeout": settings.db_pool_timeout or DEFAULT_POOL_TIMEOUT,
    }


def _is_sqlite_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:")


def _sqlite_options(url: URL, settings: Settings) -> dict[str, Any]:
    # Handlers run in a thread pool, so a connection is used by more than one thread.
    connect_args = {"check_same_thread": False}
    if _is_sqlite_memory(url):
        # Every connection to `sqlite://` would be a new, empty database: share one.
        return {"connect_args": connect_args, "poolclass": StaticPool}
    options = _pool_options(url, settings)
    if short_reads_on_loop(url):
        # One connection more than the worker threads take: the one for short
        # reads on the event loop, which then never waits.
        options["pool_size"] += 1
    if one_writer_thread(url):
        # And one for the writer thread.
        options["pool_size"] += 1
    # The busy timeout makes a write wait for other processes' writers instead of failing.
    return options | {"connect_args": connect_args | {"timeout": 15}}


def _enable_sqlite_pragmas(engine: Engine, *, in_memory: bool) -> None:
    @sa.event.listens_for(engine, "connect")
    def set_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        if not in_memory:
            # WAL lets readers work while one writer commits.
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()


def _pre_ping_idle_connections(engine: Engine, idle_seconds: float) -> None:
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


def backend_name(engine: Engine | Connection) -> str:
    dialect = engine.dialect
    if dialect.name in ("mysql", "mariadb"):
        return "mariadb" if getattr(dialect, "is_mariadb", False) else "mysql"
    return dialect.name


@contextmanager
def migration_lock(connection: Connection) -> Iterator[None]:
    """Hold a database-wide lock so that processes starting together migrate once."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.exec_driver_sql("SELECT pg_advisory_lock(7242017)")
        try:
            yield
        finally:
            connection.exec_driver_sql("SELECT pg_advisory_unlock(7242017)")
    elif dialect in ("mysql", "mariadb"):
        connection.exec_driver_sql("SELECT GET_LOCK('items_service_migrations', 300)")
        try:
            yield
        finally:
            connection.exec_driver_sql("SELECT RELEASE_LOCK('items_service_migrations')")
    else:
        # SQLite: an immediate transaction holds the write lock for the whole
        # migration; a second process waits for it on the busy timeout.
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        yield
