"""Reads of one row by key, gathered while the event loop turns and made as one query."""

import asyncio
import contextvars
import functools
from collections.abc import Callable
from typing import Generic, TypeVar

from sqlalchemy.engine import Engine

from service.db.observer import NO_OBSERVER, Observer

K = TypeVar("K")
V = TypeVar("V")
# Starts `read_many(engine, keys)` and returns its future.
Start = Callable[[Callable[[Engine, list[K]], dict[K, V]], list[K]], asyncio.Future[dict[K, V]]]

# Each key is a bound parameter: more keys than this wait for the next query.
MAX_KEYS_PER_QUERY = 100


class BatchedReads(Generic[K, V]):
    """`await reads.get(key)`: one row, read together with the other rows asked for meanwhile.

    Every key asked for during one turn of the event loop is read by one call
    of `read_many(engine, keys)`, which returns the rows it found by key;
    `start(read_many, keys)` starts that call (`Database.start_short_read`). Under
    load, most of what a read by primary key costs the service is not the
    database's work but the trip to a worker thread and SQLAlchemy's work per
    statement; here a batch pays them once. A read still starts after its
    request arrived, so it sees every write acknowledged before.
    """

    def __init__(
        self,
        start: Start[K, V],
        read_many: Callable[[Engine, list[K]], dict[K, V]],
        observer: Observer = NO_OBSERVER,
    ) -> None:
        self._start = start
        self._read_many = read_many
        self._observer = observer
        self._waiting: dict[K, list[asyncio.Future[V | None]]] = {}

    async def get(self, key: K) -> V | None:
        """The row with `key`, or None if there is none."""
        loop = asyncio.get_running_loop()
        if not self._waiting:
            # After the requests that arrived with this one have asked for
            # theirs; outside any one request's context (its request id).
            loop.call_soon(self._read_waiting, context=contextvars.Context())
        future: asyncio.Future[V | None] = loop.create_future()
        self._waiting.setdefault(key, []).append(future)
        if len(self._waiting) == MAX_KEYS_PER_QUERY:
            contextvars.Context().run(self._read_waiting)
        return await future

    def _read_waiting(self) -> None:
        batch, self._waiting = self._waiting, {}
        if batch:
            self._observer.read_batch(len(batch))
            found = self._start(self._read_many, list(batch))
            found.add_done_callback(functools.partial(_answer, batch))


def _answer(
    batch: dict[K, list[asyncio.Future[V | None]]], found: asyncio.Future[dict[K, V]]
) -> None:
    error = found.exception()
    rows = {} if error is not None else found.result()
    for key, futures in batch.items():
        for future in futures:
            if future.done():  # its request was cancelled
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(rows.get(key))
