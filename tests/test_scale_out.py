"""Several processes at once: the schema is migrated exactly once, and worker
processes (WEB_CONCURRENCY) share the database."""

import asyncio
import re
import subprocess
import sys
from collections import Counter
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


def test_a_burst_of_connections_is_spread_over_the_workers(
    tmp_path: Path, empty_database: str
) -> None:
    """Connections opened all at once, as a balancer or a load tester opens
    its pool, reach both workers about evenly; each then keeps its worker
    for as long as it stays open. A request id the service makes begins with
    its worker's own half."""
    connections = 64

    async def worker_of_a_new_connection(host: str, port: int) -> str:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /health HTTP/1.1\r\nhost: test\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        writer.close()
        request_id = re.search(rb"(?im)^x-request-id: *([0-9a-f]{32})\r$", head)
        assert request_id is not None, head
        return request_id[1][:16].decode()

    async def bursts(host: str, port: int) -> list[Counter[str]]:
        # The service answers once one worker has started: wait for the other.
        seen: set[str] = set()
        async with asyncio.timeout(60):
            while len(seen) < 2:
                seen.add(await worker_of_a_new_connection(host, port))
                await asyncio.sleep(0.05)
        served = []
        for _ in range(5):
            workers = [worker_of_a_new_connection(host, port) for _ in range(connections)]
            served.append(Counter(await asyncio.gather(*workers)))
        return served

    with running_service(tmp_path, DATABASE_URL=empty_database, WEB_CONCURRENCY="2") as (base, _):
        address = httpx.URL(base)
        assert address.host is not None and address.port is not None
        served = asyncio.run(bursts(address.host, address.port))
    # Evenly, 32 each; were the connections dealt at random, fewer than 16
    # would come about once in 15,000 bursts. Taken by whichever worker
    # woke first, a worker got fewer than 16 in about one burst in three.
    for burst in served:
        assert len(burst) == 2, served
        assert min(burst.values()) >= connections // 4, served
