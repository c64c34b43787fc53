"""Send one fixed sequence of requests to the service on SQLite, PostgreSQL and
MySQL/MariaDB, and diff the answers (ids and timestamps normalised).

    python -m bench.compare       # exit status 1 if any backend differs

Servers come from TEST_POSTGRES_URL and TEST_MYSQL_URL, as for the test suite;
each backend gets a new database (bench.databases.fresh_database), dropped afterwards.
"""

import difflib
import json
import re
import sys
from typing import Any

from fastapi.testclient import TestClient

from bench.databases import BACKENDS, fresh_database
from service.app import create_app
from service.db.engine import create_engine
from service.db.urls import parse_database_url
from service.migrations import upgrade_to_head
from service.settings import Settings

NUL = "\x00"
REQUESTS: list[tuple[str, str, Any]] = [
    ("POST", "/items/", {"name": "Widget", "description": "A fine widget", "price": 19.99}),
    ("POST", "/items/", {"name": "Café crème 🍕", "price": "0.10", "sku": "ABC"}),
    ("POST", "/items/", {"name": "STRASSE 100%", "price": 999999999.99, "sku": "ABC "}),
    ("POST", "/items/", {"name": "snake_case\\path", "price": 0, "sku": "abc"}),
    ("POST", "/items/", {"name": "dup", "price": 1, "sku": "ABC"}),
    ("POST", "/items/", {"name": "bad", "price": 1.005}),
    ("POST", "/items/", {"name": "bad", "price": -1}),
    ("POST", "/items/", {"name": f"nul{NUL}", "price": 1}),
    ("POST", "/items/", {"name": "x" * 256, "price": 1}),
    ("POST", "/items/", {"name": "🍔" * 255, "price": 1, "description": "d" * 2000}),
    ("GET", "/items/", None),
    ("GET", "/items/?limit=2", None),
    ("GET", "/items/?q=CAFÉ", None),
    ("GET", "/items/?q=cafe", None),
    ("GET", "/items/?q=straße", None),
    ("GET", "/items/?q=%25", None),
    ("GET", "/items/?q=_", None),
    ("GET", "/items/?q=%5C", None),
    ("GET", "/items/?q=🍕", None),
    ("GET", "/items/?min_price=0.1&max_price=19.99", None),
    ("GET", "/items/?skip=-1", None),
    ("GET", "/items/?limit=1001", None),
    ("GET", "/items/?after_id=99999999999", None),
    ("GET", "/items/1", None),
    ("GET", "/items/999999", None),
    ("GET", "/items/99999999999999999999999", None),
    ("GET", "/items/abc", None),
    ("PATCH", "/items/1", {"price": 17.5}),
    ("PATCH", "/items/1", {}),
    ("PATCH", "/items/1", {"name": None}),
    ("PATCH", "/items/1", {"sku": "ABC"}),
    ("PUT", "/items/1", {"name": "Widget 2", "price": 18}),
    ("PUT", "/items/1", {"name": "Widget 2"}),
    ("DELETE", "/items/1", None),
    ("DELETE", "/items/1", None),
    ("GET", "/items/1", None),
    ("GET", "/items/", None),
    ("POST", "/items/", "not json"),
    ("GET", "/health", None),
]

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def transcript(backend: str) -> list[str]:
    with fresh_database(backend) as url:
        settings = Settings(_env_file=None, database_url=url, migrate_on_start=False)  # type: ignore[call-arg]
        engine = create_engine(parse_database_url(url), settings)
        upgrade_to_head(engine)
        engine.dispose()
        ids: dict[int, str] = {}

        def token(match: re.Match[str]) -> str:
            return match[1] + ids.get(int(match[2]), match[2])

        def normalise(value: Any) -> Any:
            # Ids differ where a failed insert used up a sequence value (PostgreSQL, MySQL).
            if isinstance(value, dict):
                return {k: ids.get(v, v) if k == "id" else normalise(v) for k, v in value.items()}
            if isinstance(value, list):
                return [normalise(item) for item in value]
            if isinstance(value, str):
                value = TIMESTAMP.sub("<timestamp>", value)
                return re.sub(r"(/items/|after_id=)(\d+)", token, value)
            return value

        lines = []
        with TestClient(create_app(settings)) as client:
            for method, path, body in REQUESTS:
                if isinstance(body, str):
                    response = client.request(
                        method, path, content=body, headers={"content-type": "application/json"}
                    )
                else:
                    response = client.request(method, path, json=body)
                if method == "POST" and response.status_code == 201:
                    ids.setdefault(response.json()["id"], f"<id{len(ids) + 1}>")
                headers = {
                    k: response.headers[k]
                    for k in ("location", "link", "retry-after")
                    if k in response.headers
                }
                body = response.json() if response.content else None
                answer = {"status": response.status_code, "headers": headers, "body": body}
                lines.append(
                    f"{method} {path} -> {json.dumps(normalise(answer), ensure_ascii=False)}"
                )
        return lines


def main() -> int:
    transcripts = {backend: transcript(backend) for backend in BACKENDS}
    reference = transcripts["sqlite"]
    print(f"{len(REQUESTS)} requests per backend")
    differences = 0
    for backend, lines in list(transcripts.items())[1:]:
        diff = list(difflib.unified_diff(reference, lines, "sqlite", backend, lineterm="", n=0))
        differences += len(diff)
        print(f"{backend}: {'identical to sqlite' if not diff else 'DIFFERS'}")
        print("\n".join(diff))
    if "-v" in sys.argv:
        print("\n".join(reference))
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
