"""Browsers: calls from pages of other origins, allowed only from those `CORS_ORIGINS` names.

With none named (the default) no CORS header is ever sent, and browsers keep
other origins' pages out. Allowing an origin lets its pages send requests and
read the answers; writes still need a token, which the page must hold.
"""

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

ALLOWED_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
ALLOWED_HEADERS = ["Authorization", "Content-Type", "X-Request-ID"]
# The headers a page may read besides the plain ones: where a new row is, the next
# page, when to retry, the id to quote in a bug report.
EXPOSED_HEADERS = ["Location", "Link", "Retry-After", "X-Request-ID"]
# How long a browser may keep a preflight's answer.
PREFLIGHT_MAX_AGE_SECONDS = 600


def allow_origins(app: FastAPI, origins: tuple[str, ...]) -> None:
    """Answer cross-origin calls and their preflights from `origins`; none: add nothing."""
    if not origins:
        return
    # Added last, so it runs first: a preflight never reaches the routes.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(origins),
        allow_methods=ALLOWED_METHODS,
        allow_headers=ALLOWED_HEADERS,
        expose_headers=EXPOSED_HEADERS,
        max_age=PREFLIGHT_MAX_AGE_SECONDS,
    )
