"""Log lines, plain for a terminal or one JSON object each (LOG_FORMAT), that
name the request they were written for.

The request id lives in a context variable set by the middleware: every line
logged while the request is handled, by any logger, carries it. Calls that
the data layer runs on worker threads do not carry the context along.
"""

import asyncio
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii as _string
from typing import Any

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

# An access line's fields (its record's `access`): method, route, status, duration in ms.
AccessFields = tuple[str, str, int, float]
QUOTE = '"'
# Strings JSONFormatter keeps escaped.
MOST_ESCAPED = 1000


class PlainFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(levelname)s: %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802
        # Before a traceback, which follows the message.
        line = super().formatMessage(record)
        current = request_id.get()
        return line if current is None else f"{line} [{current}]"


class JSONFormatter(logging.Formatter):
    """One JSON object a line, written field by field: `json.dumps` of a dict
    takes several times as long, on every request. Strings are escaped to
    ASCII, so that no text a client sent (a lone surrogate in a path) can make
    a line that is not valid UTF-8."""

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._second_text = ""
        # Logger names, methods and routes, met again and again: each escaped once.
        self._escaped: dict[str, str] = {}

    def format(self, record: logging.LogRecord) -> str:
        current = request_id.get()
        escaped = self._escaped
        line = (
            f'{{"time": "{self._time(record.created)}", "level": "{record.levelname}", '
            f'"logger": {escaped.get(record.name) or self._escape(record.name)}, '
            f'"message": {_string(record.getMessage())}, '
            # Nothing to escape: the middleware sets only ids it made or found sane.
            f'"request_id": {"null" if current is None else QUOTE + current + QUOTE}'
        )
        access: AccessFields | None = getattr(record, "access", None)
        if access is not None:
            method, route, status, duration_ms = access
            line += (
                f', "method": {escaped.get(method) or self._escape(method)}, '
                f'"route": {escaped.get(route) or self._escape(route)}, '
                f'"status": {status}, "duration_ms": {duration_ms:.3f}'
            )
        if record.exc_info:
            line += f', "exception": {_string(self.formatException(record.exc_info))}'
        return line + "}"

    def _escape(self, text: str) -> str:
        escaped = _string(text)
        # A client's made-up methods must not make it grow without end.
        if len(self._escaped) < MOST_ESCAPED:
            self._escaped[text] = escaped
        return escaped

    def _time(self, created: float) -> str:
        """ISO 8601 in UTC to the millisecond; the second's part made once a second."""
        second = int(created)
        if second != self._second:
            self._second = second
            self._second_text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return "%s.%03dZ" % (self._second_text, int((created - second) * 1000))  # noqa: UP031


FORMATTERS = {"plain": PlainFormatter, "json": JSONFormatter}


class StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Lines to standard output. Access lines logged on the event loop are
    written together when the loop's turn ends: one write for the lines of
    many requests rather than one each (the service's images run with
    PYTHONUNBUFFERED). Every other line is written at once, after any access
    lines still waiting, so the order is kept. A worker killed outright loses
    the access lines of its last turn, a few milliseconds' worth.
    """

    def __init__(self) -> None:
        super().__init__(sys.stdout)
        self._lines: list[str] = []
        self._flush_planned = False

    def emit(self, record: logging.LogRecord) -> None:
        # Called holding the handler's lock.
        try:
            self._lines.append(self.format(record))
        except Exception:
            self.handleError(record)
            return
        if getattr(record, "access", None) is None:
            self.flush()
            return
        if self._flush_planned:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._flush_planned = True
        loop.call_soon(self.flush)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._flush_planned = False
            if self._lines:
                self.stream.write("\n".join(self._lines) + "\n")
                self._lines.clear()
            self.stream.flush()


def stdout_handler() -> StdoutHandler:
    """The one handler of `logging_config`, made in every worker as it applies it.

    No format of the service's shows a record's thread, process or the line
    that logged it: not looking them up makes each record cheaper (the
    logging HOWTO's "Optimization"), a saving on every request's access line.
    """
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # noqa: SLF001
    return StdoutHandler()


def logging_config(log_format: str) -> dict[str, Any]:
    """For `logging.config.dictConfig`, and uvicorn's `log_config`, which applies it
    in every worker: every logger, uvicorn's too, through one handler on stdout."""
    formatter = FORMATTERS[log_format]
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"service": {"()": f"{formatter.__module__}.{formatter.__qualname__}"}},
        "handlers": {"stdout": {"()": f"{__name__}.stdout_handler", "formatter": "service"}},
        "root": {"level": "INFO", "handlers": ["stdout"]},
        "loggers": {
            # uvicorn's own handlers would write its lines in its format.
            "uvicorn": {"level": "INFO", "handlers": [], "propagate": True},
            "uvicorn.error": {"level": "INFO", "handlers": [], "propagate": True},
            # The middleware writes the access lines (`service.access`).
            "uvicorn.access": {"handlers": [], "propagate": False},
            # With a handler of its own, SQLAlchemy adds none in its format for DB_ECHO.
            "sqlalchemy.engine.Engine": {"handlers": ["stdout"], "propagate": False},
        },
    }
