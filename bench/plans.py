"""Query plans of the SQL the service really sends for a listing, on each backend."""

from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bench.databases import SEARCHES
from service.db.backends import backend_for
from service.items.repository import ITEMS
from service.items.schemas import ItemQuery
from service.settings import Settings

_EXPLAIN = {"sqlite": "EXPLAIN QUERY PLAN ", "postgresql": "EXPLAIN ", "mysql": "EXPLAIN "}


def queries(depth: int) -> dict[str, ItemQuery]:
    return {
        f"after_id at depth {depth}": ItemQuery(after_id=depth, limit=100),
        f"skip {depth}": ItemQuery(skip=depth, limit=100),
        **{f"q={q!r} ({found})": ItemQuery(q=q, limit=100) for found, q in SEARCHES.items()},
        "min_price=10&max_price=10.5": ItemQuery(
            min_price=Decimal("10"), max_price=Decimal("10.5"), limit=100
        ),
    }


def captured_sql(engine: Engine, query: ItemQuery) -> tuple[str, Any]:
    """The statement and parameters `ITEMS.read_page` sends to the driver."""
    sent: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    index = ITEMS.index_for(backend_for(engine.url, Settings()).capabilities)
    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        ITEMS.read_page(engine, query, index)
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    return sent[-1]


def explain(engine: Engine, depth: int) -> str:
    prefix = _EXPLAIN["mysql" if engine.dialect.name == "mariadb" else engine.dialect.name]
    lines = []
    for title, query in queries(depth).items():
        statement, parameters = captured_sql(engine, query)
        with engine.connect() as connection:
            result = connection.exec_driver_sql(prefix + statement, parameters)
            rows = [" | ".join(map(str, row)) for row in result]
            heads = " | ".join(result.keys())
        lines += [f"-- {title}", " ".join(statement.split()), f"   parameters: {parameters}"]
        lines += [f"   {heads}", *(f"   {row}" for row in rows), ""]
    return "\n".join(lines)
