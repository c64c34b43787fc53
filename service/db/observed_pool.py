"""A pool that tells an `Observer` of the callers that had to wait for a connection."""

import time

import sqlalchemy as sa
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool

from service.db.observer import Observer


class ObservedQueuePool(QueuePool):
    observer: Observer

    def _do_get(self) -> ConnectionPoolEntry:
        if self._pool.qsize() or self._overflow < self._max_overflow:
            # A free connection, or room for a new one: nothing to wait for.
            return super()._do_get()
        started = time.perf_counter()
        try:
            entry = super()._do_get()
        except sa.exc.TimeoutError:
            self.observer.pool_waited(time.perf_counter() - started, timed_out=True)
            raise
        self.observer.pool_waited(time.perf_counter() - started, timed_out=False)
        return entry


def observed_pool_class(observer: Observer) -> type[QueuePool]:
    """A QueuePool reporting to `observer`; a class, as a pool recreated after
    `dispose` is made from its predecessor's class."""
    return type("ObservedQueuePool", (ObservedQueuePool,), {"observer": observer})
