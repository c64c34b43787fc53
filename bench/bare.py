"""The bare-ASGI baseline: the service's paths and JSON bodies from a plain
ASGI app, no framework and no database, under `python -m service`'s server
settings: what the server and the machine alone cost a request.

    python -m bench.bare    # PORT, HOST as the service takes them
"""

import json
from typing import Any

import uvicorn

from bench.floor import ITEM, ORDER, ORDERS_PAGE, PAGE, service_server_settings


def _body(value: Any) -> bytes:
    return json.dumps(value, default=lambda when: when.isoformat()).encode()


_ANSWERS = {
    ("GET", "/health"): (200, _body({"status": "ok"})),
    ("GET", "/items/"): (200, _body(PAGE)),
    ("GET", "/items/{id}"): (200, _body(ITEM)),
    ("POST", "/items/"): (201, _body(ITEM)),
    ("PATCH", "/items/{id}"): (200, _body(ITEM)),
    ("GET", "/orders/"): (200, _body(ORDERS_PAGE)),
    ("GET", "/orders/{id}"): (200, _body(ORDER)),
}
_NOT_FOUND = (404, b'{"detail":"Not Found"}')


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    head, _, last = path.rpartition("/")
    shape = f"{head}/{{id}}" if last.isdigit() else path
    status, body = _ANSWERS.get((scope["method"], shape), _NOT_FOUND)
    more = True
    while more:  # the request's body, read and dropped
        more = (await receive()).get("more_body", False)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    from service.__main__ import pin_to_one_cpu

    settings = service_server_settings()
    settings.pop("factory", None)
    if settings["workers"] == 1:
        pin_to_one_cpu()
    uvicorn.run("bench.bare:app", **settings)


if __name__ == "__main__":
    main()
