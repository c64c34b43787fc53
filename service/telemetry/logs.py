"""Log lines, plain for a terminal or one JSON object each (LOG_FORMAT), that
name the request they were written for.

The request id lives in a context variable set by the middleware: every line
logged while the request is handled, by any logger, carries it. Calls that
the data layer runs on worker threads do not carry the context along.
"""

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

# What the middleware's access line adds to its record (`extra`), in this order.
ACCESS_FIELDS = ("method", "route", "status", "duration_ms")


class PlainFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(levelname)s: %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        current = request_id.get()
        return line if current is None else f"{line} [{current}]"


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id.get(),
        }
        for field in ACCESS_FIELDS:
            if field in record.__dict__:
                entry[field] = record.__dict__[field]
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


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
        },
    }
