"""Every request: its id (`X-Request-ID`), its access line, and its metrics.

A pure ASGI middleware: Starlette's `BaseHTTPMiddleware` runs the app in a task
of its own and streams the answer through a queue, which costs a fair share
of a short request's time.
"""

import itertools
import logging
import os
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.telemetry.logs import request_id
from service.telemetry.metrics import Metrics

access_logger = logging.getLogger("service.access")

REQUEST_ID_HEADER = b"x-request-id"
# An id a client sends is kept if it is this: anything else could forge log
# lines or carry a secret into them, and is replaced.
SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,128}")
# The route label of a request that matched no route: never the raw path.
UNMATCHED = "unmatched"
SERVER_ERROR_BODY = b'{"detail":"Internal Server Error"}'
# Methods outside these are one label, `_OTHER`, as OpenTelemetry has it: a
# client could otherwise make a new series with every request.
KNOWN_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE")
)


class RequestIds:
    """Ids for requests that bring none: 32 hex digits, this process's random
    half and a count, unique across workers and restarts and far cheaper
    than a `uuid4` each."""

    def __init__(self) -> None:
        self._start()
        # A worker forked from a process that made ids must not repeat them.
        os.register_at_fork(after_in_child=self._start)

    def _start(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._count = itertools.count(1)

    def new(self) -> str:
        return f"{self._prefix}{next(self._count):016x}"


request_ids = RequestIds()


class Telemetry:
    """Takes the request's id from `X-Request-ID` when it is sane, or makes one;
    sends it back on every answer, a 500 included; writes the access line
    (`access_log`) and records the request in `metrics`, if given."""

    def __init__(self, app: ASGIApp, *, access_log: bool, metrics: Metrics | None) -> None:
        self.app = app
        self.access_log = access_log
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # From when its bytes were read (`service.serving`), waits for the loop included.
        started = scope.get("state", {}).get("arrived_at") or time.monotonic()
        given = None
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER:
                given = value
                break
        if given is not None and SANE_REQUEST_ID.fullmatch(given):
            id_bytes = given
            current = given.decode()
        else:
            current = request_ids.new()
            id_bytes = current.encode()
        # Never reset: uvicorn logs an error the app raised after the middleware
        # has returned, in the same task, and each request has a task of its own.
        request_id.set(current)
        method: str = scope["method"] if scope["method"] in KNOWN_METHODS else "_OTHER"
        status = 500
        response_started = recorded = False
        metrics = self.metrics
        if metrics is not None:
            metrics.in_flight[method] += 1

        def record() -> None:
            nonlocal recorded
            recorded = True
            if metrics is not None:
                metrics.in_flight[method] -= 1
                route = getattr(scope.get("route"), "path_format", UNMATCHED)
                metrics.request_finished(method, route, status, time.monotonic() - started)

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (REQUEST_ID_HEADER, id_bytes)]
            elif not message.get("more_body", False) and not recorded:
                # Before the last byte leaves: a client that has its answer
                # finds it counted by this worker, and by the others' scrapes,
                # which wait for this worker to write it down.
                record()
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Starlette's outermost middleware would answer it without the id.
            if not response_started:
                await send_with_id(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [(b"content-type", b"application/json")],
                    }
                )
                await send_with_id({"type": "http.response.body", "body": SERVER_ERROR_BODY})
            raise
        finally:
            if not recorded:
                record()
            if self.access_log:
                self._log(scope, status, started)

    def _log(self, scope: Scope, status: int, started: float) -> None:
        route = getattr(scope.get("route"), "path_format", UNMATCHED)
        duration_ms = (time.monotonic() - started) * 1000
        client = scope.get("client")
        where = f"{client[0]}:{client[1]}" if client else "-"
        path = scope.get("root_path", "") + scope["path"]
        if scope.get("query_string"):
            path += "?" + scope["query_string"].decode("latin-1")
        access_logger.info(
            '%s - "%s %s HTTP/%s" %d %.2f ms',
            where,
            scope["method"],
            path,
            scope.get("http_version", "1.1"),
            status,
            duration_ms,
            extra={"access": (scope["method"], route, status, duration_ms)},
        )
