"""MariaDB Galera Cluster: what a cluster adds to the contract, in the `galera` tox env.

The rest of the suite runs there too, through HAProxy, so that consecutive
requests land on different nodes. These tests hold the service to what only a
cluster can break: reads through one node of writes acknowledged through
another, writes that lose certification, processes migrating through
different nodes at once, and a node lost under load.
"""

import random
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient

from clusters import GaleraCluster
from conftest import settings_for
from load import Load
from servers import free_port, running_service, service_env, wait_until_answers
from service import migrations
from service.app import create_app

pytestmark = pytest.mark.cluster("galera")


def on_node(cluster: GaleraCluster, node: int, database_url: str) -> str:
    """The URL of `database_url`'s database on one node, not through the balancer."""
    database = sa.make_url(database_url).database
    node_url = sa.make_url(cluster.node_urls[node]).set(database=database)
    return node_url.render_as_string(hide_password=False)


@pytest.fixture
def node_clients(
    session_cluster: GaleraCluster, database_url: str, client: TestClient
) -> Iterator[list[TestClient]]:
    """The service three times, each on one node of the cluster; tables empty."""
    apps = [
        create_app(
            settings_for(on_node(session_cluster, node, database_url), migrate_on_start=False)
        )
        for node in range(3)
    ]
    with TestClient(apps[0]) as first, TestClient(apps[1]) as second, TestClient(apps[2]) as third:
        yield [first, second, third]


def test_a_write_acknowledged_through_one_node_is_read_at_once_through_another(
    node_clients: list[TestClient],
) -> None:
    writer, reader, busy = node_clients
    stop = threading.Event()

    def other_clients_write() -> int:
        written = 0
        while not stop.is_set():
            item = busy.post("/items/", json={"name": "elsewhere", "price": 1}).json()
            busy.patch(f"/items/{item['id']}", json={"price": 2})
            written += 1
        return written

    misses = []
    with ThreadPoolExecutor(2) as others:
        background = [others.submit(other_clients_write) for _ in range(2)]
        for n in range(1000):
            created = writer.post("/items/", json={"name": f"read me {n}", "price": n})
            assert created.status_code == 201
            read = reader.get(f"/items/{created.json()['id']}")
            if read.status_code != 200 or read.json() != created.json():
                misses.append((n, read.status_code))
        stop.set()
        assert all(future.result() > 0 for future in background)
    assert misses == []


def test_conflicting_writes_are_retried_not_reported_as_outages(
    tmp_path: Path, session_cluster: GaleraCluster, database_url: str, client: TestClient
) -> None:
    with ExitStack() as stack:
        bases = [
            stack.enter_context(
                running_service(
                    tmp_path,
                    DATABASE_URL=on_node(session_cluster, node, database_url),
                    MIGRATE_ON_START="false",
                    ACCESS_LOG="false",
                )
            )[0]
            for node in (0, 1)
        ]
        items = [
            httpx.post(f"{bases[0]}/items/", json={"name": f"contended {n}", "price": 1}).json()
            for n in range(3)
        ]
        told: dict[int, list[dict[str, Any]]] = {item["id"]: [] for item in items}
        statuses: Counter[int] = Counter()
        lock = threading.Lock()

        def patch_a_lot(client_number: int) -> None:
            with httpx.Client(base_url=bases[client_number % 2], timeout=30) as http:
                for _ in range(50):
                    item = random.choice(items)
                    price = f"{random.randint(0, 99999)}.{random.randint(0, 99):02d}"
                    response = http.patch(f"/items/{item['id']}", json={"price": price})
                    with lock:
                        statuses[response.status_code] += 1
                        if response.status_code == 200:
                            told[item["id"]].append(response.json())

        with ThreadPoolExecutor(16) as clients:
            list(clients.map(patch_a_lot, range(16)))
        assert statuses == Counter({200: 16 * 50})
        for item in items:
            final = httpx.get(f"{bases[1]}/items/{item['id']}").json()
            assert final in told[item["id"]]


def test_processes_starting_together_on_different_nodes_migrate_once(
    tmp_path: Path, session_cluster: GaleraCluster
) -> None:
    name = f"items_test_migrate_{random.randint(0, 10**8)}"
    session_cluster.create_database(name)
    try:
        urls = [
            sa.make_url(session_cluster.node_urls[node]).set(database=name) for node in (0, 1, 2, 0)
        ]
        ports = [free_port() for _ in urls]
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", "service"],
                cwd=tmp_path,
                env=service_env(
                    DATABASE_URL=url.render_as_string(hide_password=False),
                    HOST="127.0.0.1",
                    PORT=str(port),
                ),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for url, port in zip(urls, ports, strict=True)
        ]
        try:
            for process, port in zip(processes, ports, strict=True):
                wait_until_answers(f"http://127.0.0.1:{port}/health/ready", process)
        finally:
            for process in processes:
                process.terminate()
            outputs = "".join(process.communicate(timeout=15)[0] for process in processes)
        upgrades = re.findall(r"Running upgrade (\w*) -> (\w+)", outputs)
        history = ScriptDirectory.from_config(migrations.alembic_config()).walk_revisions()
        assert Counter(target for _, target in upgrades) == Counter(
            script.revision for script in history
        ), outputs
    finally:
        engine = sa.create_engine(session_cluster.balancer_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE {name}")
        engine.dispose()


def test_a_node_lost_under_load_loses_no_acknowledged_write(tmp_path: Path) -> None:
    connect_timeout = 5  # the default
    with GaleraCluster() as cluster:
        cluster.create_database("items")
        url = sa.make_url(cluster.balancer_url).set(database="items")
        variables = {
            "DATABASE_URL": url.render_as_string(hide_password=False),
            "DB_CONNECT_TIMEOUT": str(connect_timeout),
            "ACCESS_LOG": "false",
        }
        with running_service(tmp_path, **variables) as (base, output):
            load = Load(base, clients=24)
            with load.running():
                time.sleep(5)
                killed_at = time.monotonic()
                eviction = cluster.kill_node(0)
                time.sleep(10)
            ended = time.monotonic()
        rejoin = cluster.start_node(0)
        survivors, rejoined = cluster.node_urls[1:], cluster.node_urls[0]
        stored = [table(node, "items") for node in (*survivors, rejoined)]

    before = load.statuses(0, killed_at)
    after = load.statuses(killed_at, ended)
    failures = load.failures()
    last_failure = max((started + taken for started, taken, *_ in failures), default=killed_at)
    reasons = Counter(re.findall(r"Database unavailable on \w+ \S+: (.*)", output[0]))
    print(
        f"\nnode lost under load: before the kill {dict(before)}; from the kill on {dict(after)};"
        f" 503 for {dict(reasons)}; the cluster evicted the node in {eviction:.1f} s; last"
        f" failure {last_failure - killed_at:.1f} s after the kill; slowest request "
        f"{load.slowest():.2f} s; {len(load.created)} "
        f"acknowledged creates checked on the survivors; rejoined in {rejoin:.1f} s"
    )
    print(output[0])  # the service's log (no access log): shown if an assertion fails
    assert set(before) | set(after) <= {200, 201, 503}, (before, after)
    assert all(retry_after for *_, status, retry_after in failures)
    # Commits wait while the cluster evicts the dead node (evs.suspect_timeout,
    # 2 s here), never as long as a connection attempt may.
    assert load.slowest() < connect_timeout
    assert sum(before.values()) > 100 and after[201] > 100  # it served, and recovered
    for rows in stored:
        by_id = {row["id"]: row for row in rows}
        for item_id, created in load.created.items():
            assert by_id[item_id]["name"] == created["name"], item_id
            assert by_id[item_id]["price"] in load.prices_sent[item_id], item_id
    assert stored[0] == stored[1] == stored[2]


def table(node_url: str, database: str) -> list[dict[str, Any]]:
    """Every item as one node stores it, read after every earlier commit applied."""
    url = sa.make_url(node_url).set(database=database)
    engine = sa.create_engine(
        url,
        poolclass=sa.pool.NullPool,
        connect_args={"init_command": "SET SESSION wsrep_sync_wait = 1"},
    )
    try:
        with engine.connect() as connection:
            rows = connection.exec_driver_sql(
                "SELECT id, name, CAST(price AS DOUBLE) AS price, updated_at FROM items ORDER BY id"
            )
            return [dict(row._mapping) for row in rows]
    finally:
        engine.dispose()
