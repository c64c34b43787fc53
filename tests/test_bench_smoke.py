"""The benchmark's own code still fits the service (the benchmark itself stays out of CI)."""

import re

from bench import plans
from bench.databases import SEARCHES
from conftest import BACKEND, settings_for
from service.db.engine import create_engine
from service.db.urls import parse_database_url


def test_query_plans_come_from_the_sql_the_service_sends(database_url: str) -> None:
    engine = create_engine(parse_database_url(database_url), settings_for(database_url))
    try:
        report = plans.explain(engine, depth=10)
    finally:
        engine.dispose()
    titles = ["after_id at depth 10", "skip 10", "min_price=10&max_price=10.5"]
    titles += [f"q={q!r} ({found})" for found, q in SEARCHES.items()]
    for title in titles:
        assert f"-- {title}" in report
    # Searches read through the trigram table, except on PostgreSQL: the long
    # texts through the rows of one trigram that hold a second, the short
    # through a range.
    by_trigram, by_range = (0, 0) if BACKEND == "postgresql" else (3, 2)
    through_two = "FROM item_name_trigrams (INNER )?JOIN item_name_trigrams AS also ON"
    assert len(re.findall(through_two, report)) == by_trigram, report
    assert report.count("IN (SELECT item_name_trigrams.item_id") == by_range, report
