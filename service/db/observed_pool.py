"""The pool reporting to an `Observer`: connections in use, idle and beyond its
size as each is taken or given back, and the callers that had to wait for one."""

import time

import sqlalchemy as sa
from sqlalchemy.engine import Engine
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


def report_pool_use(engine: Engine, observer: Observer) -> None:
    def taken(*_: object) -> None:
        pool = engine.pool
        assert isinstance(pool, QueuePool)
        observer.pool_changed(pool.checkedout(), pool.checkedin(), max(pool.overflow(), 0))

    def given_back(*_: object) -> None:
        # Called before the connection is back in the pool.
        pool = engine.pool
        assert isinstance(pool, QueuePool)
        observer.pool_changed(pool.checkedout() - 1, pool.checkedin() + 1, max(pool.overflow(), 0))

    sa.event.listen(engine, "checkout", taken)
    sa.event.listen(engine, "checkin", given_back)
