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
    # Searches read through an index of trigrams, except on PostgreSQL (pg_trgm):
    # on SQLite through the rows FTS5 finds, in key order; on MySQL/MariaDB
    # the long texts through the rows of one trigram that hold a second, the
    # short through a range.
    through_fts5 = "FROM item_name_fts JOIN items ON item_name_fts.rowid = items.id"
    through_two = "FROM item_name_trigrams (INNER )?JOIN item_name_trigrams AS also ON"
    by_range = "IN (SELECT item_name_trigrams.item_id"
    expected = {"postgresql": (0, 0, 0), "sqlite": (5, 0, 0), "mysql": (0, 3, 2)}[BACKEND]
    through_one_and_two = len(re.findall(through_two, report))
    reads = (report.count(through_fts5), through_one_and_two, report.count(by_range))
    assert reads == expected, report
