"""A bound on how long a request may wait before its work starts (MAX_QUEUE_SECONDS).

When more requests arrive than the service can answer, each waits: for the
event loop, then for a worker thread. Past the bound, a request is answered
503 with `Retry-After` at once, before any of its work is done, rather than
served seconds late; its client (or its balancer) tries again or elsewhere,
and the requests behind it are served sooner. A request's wait is counted
from the moment its bytes were read (`service.serving` stamps it) until the
app receives it, and from the moment it hands a database call to the worker
threads until one takes it; a write on SQLite is checked as it is handed to
the writer thread. Past the bound, it is refused at that point. Reads of one
row by key are not checked at the thread: they are gathered, one query for
the requests of a moment (`service.db.batched_reads`), and short.
"""

import time
from contextvars import ContextVar

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from service.db.observer import Observer

# How long the request in this context may still wait, in seconds.
left_to_wait: ContextVar[float | None] = ContextVar("left_to_wait", default=None)

RETRY_AFTER_SECONDS = "1"
DETAIL = "The service is busy: retry after a second"


class Overloaded(Exception):
    """The request waited past MAX_QUEUE_SECONDS before its database call started."""


def overloaded() -> JSONResponse:
    return JSONResponse(
        {"detail": DETAIL}, status_code=503, headers={"Retry-After": RETRY_AFTER_SECONDS}
    )


def deadline() -> float | None:
    """The moment (`time.monotonic()`) past which the request in this context,
    starting to wait now, is refused; None if it never is."""
    left = left_to_wait.get()
    return None if left is None else time.monotonic() + left


def refuse_if_past(when: float | None) -> None:
    """Raise `Overloaded` if `when` (a deadline) has passed."""
    if when is not None and time.monotonic() > when:
        raise Overloaded


class MaxQueueTime:
    """Answers 503 to a request that arrives here after waiting `seconds`, and
    leaves its deadline to the database calls it makes."""

    def __init__(self, app: ASGIApp, seconds: float, observer: Observer) -> None:
        self.app = app
        self.seconds = seconds
        self.observer = observer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        now = time.monotonic()
        left = self.seconds - (now - scope.get("state", {}).get("arrived_at", now))
        if left < 0:
            self.observer.answered_unavailable("overloaded")
            await overloaded()(scope, receive, send)
            return
        token = left_to_wait.set(left)
        try:
            await self.app(scope, receive, send)
        finally:
            left_to_wait.reset(token)
