"""The benchmark's own code still fits the service (the benchmark itself stays out of CI)."""

from bench import plans
from conftest import BACKEND, settings_for
from service.db.engine import create_engine
from service.db.urls import parse_database_url


def test_query_plans_come_from_the_sql_the_service_sends(database_url: str) -> None:
    engine = create_engine(parse_database_url(database_url), settings_for(database_url))
    try:
        report = plans.explain(engine, depth=10, term="blue")
    finally:
        engine.dispose()
    for title in ("after_id at depth 10", "skip 10", "q='blue'", "min_price=10&max_price=10.5"):
        assert f"-- {title}" in report
    assert report.count("FROM items") == 5, BACKEND
