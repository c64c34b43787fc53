"""Where and how the service's database calls run: worker threads, the writer thread, the loop."""

import asyncio
import contextvars
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, TypeVarTuple

from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import QueuePool

from service.db.backends import ErrorKind, backend_for
from service.db.batched_reads import BatchedReads
from service.db.engine import engine_for
from service.db.group_commit import GroupCommitWriter
from service.db.observer import NO_OBSERVER, Observer, RetryReason
from service.overload import deadline, refuse_if_past
from service.settings import Settings

# How often a retryable call is tried in all, and the pauses between tries: at
# random up to a bound that starts at the first and doubles up to the longest.
# On a Galera cluster where two nodes write the same rows, one node's writes
# can lose every conflict for a second or two in a row: the tries span that.
RETRY_ATTEMPTS = 10
RETRY_FIRST_PAUSE_SECONDS = 0.01
RETRY_LONGEST_PAUSE_SECONDS = 0.5

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")
Args = TypeVarTuple("Args")


class Database:
    """The service's engine, its backend, and the threads its blocking calls run on.

    Calls go to worker threads through asyncio's `run_in_executor`, in the
    caller's context (its request id): profiling showed AnyIO's `to_thread`
    (cancel scopes, a capacity limiter) costing much of the event loop's time
    on a primary-key read.
    """

    def __init__(self, url: URL, settings: Settings, observer: Observer = NO_OBSERVER) -> None:
        self.backend = backend_for(url, settings)
        self.capabilities = self.backend.capabilities
        self.observer = observer
        self.engine = engine_for(self.backend, autocommit=True, observer=observer)
        self._executor = ThreadPoolExecutor(
            self.capabilities.worker_threads, thread_name_prefix="database"
        )
        self._writer: GroupCommitWriter | None = None
        if self.capabilities.one_writer_thread:
            self._writer = GroupCommitWriter(self.engine, observer)
        self._batched_reads: dict[object, BatchedReads[Any, Any]] = {}

    async def run(self, call: Callable[[Engine, *Args], T], *args: *Args) -> T:
        """`call(engine, *args)` on a worker thread: refused (`Overloaded`) if
        the request has waited for one past MAX_QUEUE_SECONDS."""
        return await self._retrying(self._start, _unless_past, deadline(), call, *args)

    async def write(self, call: Callable[[Connection, *Args], T], *args: *Args) -> T:
        """`call(connection, *args)`, a write: on the writer thread, committed
        with the other writes of the moment, where the backend has one; else on
        a worker thread, each statement committed as it runs."""
        when = deadline()
        if self._writer is not None:
            refuse_if_past(when)
            return await self._writer.write(call, *args)
        return await self._retrying(self._start, _unless_past, when, _on_connection, call, *args)

    async def _retrying(self, start: Callable[..., asyncio.Future[T]], *call_and_args: Any) -> T:
        """Start the call again, after a short random pause, when the server said
        nothing was done and it can run again as it is (`ErrorKind.RETRYABLE`: a
        write that lost a conflict on a cluster, a server not ready to serve):
        a bounded number of times, then the error stands. Anything that may have
        committed is never run twice."""
        attempt = 1
        while True:
            try:
                return await start(*call_and_args)
            except DBAPIError as error:
                if attempt == RETRY_ATTEMPTS or self.error_kind(error) is not ErrorKind.RETRYABLE:
                    raise
                self.observer.retried(self._retry_reason(error))
            # Apart, so that the writers that collided do not collide again.
            bound = min(RETRY_FIRST_PAUSE_SECONDS * 2 ** (attempt - 1), RETRY_LONGEST_PAUSE_SECONDS)
            await asyncio.sleep(random.uniform(0, bound))
            attempt += 1

    def batched_reads(
        self, read_many: Callable[[Engine, list[K]], dict[K, V]]
    ) -> BatchedReads[K, V]:
        """Reads of one row by key through `read_many`, gathered while the loop turns."""
        reads = self._batched_reads.get(read_many)
        if reads is None:
            reads = self._batched_reads[read_many] = BatchedReads(
                self.start_short_read, read_many, self.observer
            )
        return reads

    def start_short_read(
        self, call: Callable[[Engine, *Args], T], *args: *Args
    ) -> asyncio.Future[T]:
        """Start `call(engine, *args)`, a short read by index seeks: right here on
        the event loop where the backend says so (the future returned is then
        done), else on a worker thread."""
        if not self.capabilities.short_reads_on_loop:
            return self._start(call, *args)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        try:
            future.set_result(call(self.engine, *args))
        except Exception as error:
            future.set_exception(error)
        return future

    def pool_use(self) -> tuple[int, int, int] | None:
        """The pool's connections in use, idle, and open beyond its size; None
        without a pool (`sqlite://`)."""
        pool = self.engine.pool
        if not isinstance(pool, QueuePool):
            return None
        return pool.checkedout(), pool.checkedin(), max(pool.overflow(), 0)

    def error_kind(self, error: DBAPIError) -> ErrorKind:
        kind = self.backend.error_kind(error)
        # A connection lost mid-statement may have committed: not retryable.
        if error.connection_invalidated and kind is not ErrorKind.RETRYABLE:
            return ErrorKind.UNAVAILABLE
        return kind

    def _retry_reason(self, error: DBAPIError) -> RetryReason:
        if error.orig is not None and self.backend.server_cannot_serve(error.orig):
            return RetryReason.FAILOVER
        if error.connection_invalidated:
            return RetryReason.CONNECTION_LOST
        return RetryReason.CONFLICT

    def _start(self, call: Callable[[Engine, *Args], T], *args: *Args) -> asyncio.Future[T]:
        # In the caller's context: what the call logs names its request.
        run = contextvars.copy_context().run
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._executor, run, call, self.engine, *args)

    def close(self) -> None:
        self._executor.shutdown()
        if self._writer is not None:
            self._writer.close()
        self.engine.dispose()


def _unless_past(
    engine: Engine, when: float | None, call: Callable[[Engine, *Args], T], *args: *Args
) -> T:
    refuse_if_past(when)
    return call(engine, *args)


def _on_connection(engine: Engine, call: Callable[[Connection, *Args], T], *args: *Args) -> T:
    with engine.connect() as connection:
        return call(connection, *args)
