"""Writes to a SQLite file on one thread, committed together.

A SQLite file takes one writer at a time, and each commit in WAL mode with
`synchronous = FULL` (SQLite's default) waits for the disk to sync the log.
The writer thread takes every write waiting when it is free, runs them in one
transaction, each inside a savepoint of its own, and commits them together:
one sync for the group. A write that fails rolls back to its savepoint and
fails alone; the others still commit. Each caller hears back only after the
commit has returned, so nothing is acknowledged before it is on disk.
"""

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar, TypeVarTuple

from sqlalchemy.engine import Connection, Engine

from service.db.observer import NO_OBSERVER, Observer

T = TypeVar("T")
Args = TypeVarTuple("Args")

# A write waiting for the writer thread: where to answer, what to run, and
# since when it waits (time.perf_counter).
_Write = tuple[
    asyncio.AbstractEventLoop, asyncio.Future[Any], Callable[..., Any], tuple[Any, ...], float
]


class GroupCommitWriter:
    """One thread that runs writes, `call(connection, *args)`, in groups, one transaction each."""

    def __init__(self, engine: Engine, observer: Observer = NO_OBSERVER) -> None:
        self.engine = engine
        self._observer = observer
        self._waiting: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
        # A daemon: should the app stop without `close` (a forced exit), the
        # thread must not keep the process alive. A group cut short is not
        # committed, and no one has been told it was.
        self._thread = threading.Thread(target=self._run, name="database-writes", daemon=True)
        self._thread.start()

    async def write(self, call: Callable[[Connection, *Args], T], *args: *Args) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._waiting.put((loop, future, call, args, time.perf_counter()))
        return await future

    def close(self) -> None:
        """Finish the writes already waiting, then stop the thread."""
        self._waiting.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            first = self._waiting.get()
            if first is None:
                return
            group = [first]
            while True:
                try:
                    write = self._waiting.get_nowait()
                except queue.Empty:
                    break
                if write is None:
                    self._commit(group)
                    return
                group.append(write)
            self._commit(group)

    def _commit(self, group: list[_Write]) -> None:
        self._observer.commit_group(len(group), time.perf_counter() - group[0][4])
        outcomes: list[tuple[bool, Any]] = []
        try:
            with self.engine.connect() as connection:
                # The engine autocommits: this transaction is the writer's own.
                # IMMEDIATE takes the write lock now, waiting on the busy timeout.
                connection.exec_driver_sql("BEGIN IMMEDIATE")
                try:
                    for _loop, _future, call, args, _since in group:
                        outcomes.append(_in_savepoint(connection, call, args))
                    connection.exec_driver_sql("COMMIT")
                except BaseException:
                    _roll_back(connection)
                    raise
        except Exception as error:
            # Nothing of the group was committed: each write fails with it.
            outcomes = [(False, error)] * len(group)
        _answer(group, outcomes)


def _in_savepoint(
    connection: Connection, call: Callable[..., Any], args: tuple[Any, ...]
) -> tuple[bool, Any]:
    connection.exec_driver_sql("SAVEPOINT write")
    try:
        result = call(connection, *args)
    except Exception as error:
        if not _in_transaction(connection):
            # SQLite rolled back the whole transaction (disk full, I/O error):
            # the group fails together.
            raise
        connection.exec_driver_sql("ROLLBACK TO write")
        connection.exec_driver_sql("RELEASE write")
        return False, error
    connection.exec_driver_sql("RELEASE write")
    return True, result


def _roll_back(connection: Connection) -> None:
    if _in_transaction(connection):
        connection.exec_driver_sql("ROLLBACK")


def _in_transaction(connection: Connection) -> bool:
    """Whether SQLite itself has a transaction open on `connection`."""
    sqlite_connection = connection.connection.driver_connection
    return sqlite_connection is not None and bool(sqlite_connection.in_transaction)


def _answer(group: list[_Write], outcomes: list[tuple[bool, Any]]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
    for write, (succeeded, value) in zip(group, outcomes, strict=True):
        loop, future = write[0], write[1]
        by_loop.setdefault(loop, []).append((future, succeeded, value))
    for loop, answers in by_loop.items():
        # A closed loop raises RuntimeError: no one is waiting for those answers.
        with contextlib.suppress(RuntimeError):
            # One wake-up of the loop for the whole group.
            loop.call_soon_threadsafe(_set_outcomes, answers)


def _set_outcomes(answers: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, succeeded, value in answers:
        if future.cancelled():
            continue
        if succeeded:
            future.set_result(value)
        else:
            future.set_exception(value)
