"""What the data layer reports as it works, for metrics: an `Observer`.

This one ignores everything, so that with metrics off each report costs one
call of an empty method; `service.telemetry.metrics` records them. The data
layer never imports a metrics library.
"""

import enum


class RetryReason(enum.Enum):
    """Why a call that did nothing was run again."""

    # Lost to a concurrent write: Galera certification, a deadlock, a serialization failure.
    CONFLICT = "conflict"
    # The server reached cannot serve (a standby, a node not ready): another one may.
    FAILOVER = "failover"
    # The connection broke before the server did anything.
    CONNECTION_LOST = "connection_lost"


class Observer:
    def pool_waited(self, seconds: float, timed_out: bool) -> None:
        """A caller found no free connection and waited for one (in vain if `timed_out`)."""

    def retried(self, reason: RetryReason) -> None:
        """A call that did nothing is about to run again."""

    def commit_group(self, writes: int, first_waited_seconds: float) -> None:
        """A group of SQLite writes committed together; its first write waited this long."""

    def read_batch(self, keys: int) -> None:
        """One query read this many rows by key for requests that asked meanwhile."""

    def answered_unavailable(self, cause: str) -> None:
        """A request was answered 503 because of the database, or refused for its
        wait (MAX_QUEUE_SECONDS): `cause` says why."""


NO_OBSERVER = Observer()
