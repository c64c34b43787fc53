"""Log lines, plain for a terminal or one JSON object each (LOG_FORMAT), that
name the request they were written for.

The request id lives in a context variable set by the middleware: every line
logged while the request is handled, by any logger, carries it. Calls that
the data layer runs on worker threads do not carry the context along.
"""

import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii as _string
from typing import Any

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


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

    def format(self, record: logging.LogRecord) -> str:
        current = request_id.get()
        line = (
            f'{{"time": "{self._time(record.created)}", "level": "{record.levelname}", '
            f'"logger": {_string(record.name)}, "message": {_string(record.getMessage())}, '
            f'"request_id": {"null" if current is None else _string(current)}'
        )
        fields = record.__dict__
        if "duration_ms" in fields:
            line += (
                f', "method": {_string(fields["method"])}, "route": {_string(fields["route"])}, '
                f'"status": {int(fields["status"])}, "duration_ms": {float(fields["duration_ms"])}'
            )
        if record.exc_info:
            line += f', "exception": {_string(self.formatException(record.exc_info))}'
        return line + "}"

    def _time(self, created: float) -> str:
        """ISO 8601 in UTC to the millisecond; the second's part made once a second."""
        second = int(created)
        if second != self._second:
            self._second = second
            self._second_text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._second_text}.{int((created - second) * 1000):03d}Z"


FORMATTERS = {"plain": PlainFormatter, "json": JSONFormatter}


def logging_config(log_format: str) -> dict[str, Any]:
    """For `logging.config.dictConfig`, and uvicorn's `log_config`, which applies it
    in every worker: every logger, uvicorn's too, through one handler on stdout."""
    formatter = FORMATTERS[log_format]
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"service": {"()": f"{formatter.__module__}.{formatter.__qualname__}"}},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "service",
                "stream": "ext://sys.stdout",
            }
        },
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
