"""Several processes at once: the schema is migrated exactly once, and worker
processes (WEB_CONCURRENCY) share the database."""

import re
import subprocess
import sys
from pathlib import Path

import httpx2 as httpx

from servers import free_port, running_service, service_env, wait_until_answers


def test_processes_starting_together_migrate_once(tmp_path: Path, empty_database: str) -> None:
    ports = [free_port() for _ in range(4)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "service"],
            cwd=tmp_path,
            env=service_env(DATABASE_URL=empty_database, PORT=str(port)),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for port in ports
    ]
    try:
        for port, process in zip(ports, processes, strict=True):
            wait_until_answers(f"http://127.0.0.1:{port}/health/ready", process)
        created = httpx.post(f"http://127.0.0.1:{ports[0]}/items/", json={"name": "a", "price": 1})
        for port in ports:
            assert httpx.get(f"http://127.0.0.1:{port}/items/").json() == [created.json()]
    finally:
        for process in processes:
            process.terminate()
        outputs = "".join(process.communicate(timeout=15)[0] for process in processes)
    upgrades = re.findall(r"Running upgrade (\w*) -> (\w+)", outputs)
    assert upgrades == [("", "0001"), ("0001", "0002"), ("0002", "0003"), ("0003", "0004"),
                        ("0004", "0005"), ("0005", "0006"), ("0006", "0007"),
                        ("0007", "0008"), ("0008", "0009"), ("0009", "0010"),
                        ("0010", "0011"), ("0011", "0012"), ("0012", "0013")]  # fmt: skip


def test_several_worker_processes_serve_one_database(tmp_path: Path, empty_database: str) -> None:
    with running_service(tmp_path, DATABASE_URL=empty_database, WEB_CONCURRENCY="2") as (
        base,
        output,
    ):
        created = [
            httpx.post(f"{base}/items/", json={"name": f"n{n}", "price": n}).json()
            for n in range(20)
        ]
        for _ in range(10):
            assert httpx.get(f"{base}/items/").json() == created
    assert len(re.findall(r"Started server process \[\d+\]", output[0])) == 2
