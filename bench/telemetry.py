"""`python -m bench.telemetry`: what metrics and JSON logs cost, side by side.

On each backend, one seeded database and, for one worker then for two,
`--instances` servers with `METRICS=true LOG_FORMAT=json` ("on") and as many
with both off (plain logs, no metrics: the defaults), the n-th of each with
PYTHONHASHSEED=n. Several servers of each setting: two servers of the same
code and settings differ by a few percent in requests per second on this
machine, for as long as they run (bench/results.md, "python -m
bench.telemetry"), so one server per setting cannot tell a cost of 3% from
that. The n-th servers of the settings start off first for odd n, off
last for even n. Every server writes its access lines to a file, as in
production. wrk drives each in turn, round after round, in the opposite order
every other round. For each worker count, the median of each round's on / off
ratio of the settings' mean requests per second, which must stay above 0.97,
with the lowest and highest round; and of their mean CPU time per request,
which this machine's load moves less. Before them, the middleware alone: CPU
µs per request in a process of its own, without a server or a database. A
scrape of each "on" service after the load is timed too: its time must not
grow with the requests served.
With `--control`, as many servers again with the off settings ("control"),
driven among the others: control / off is what the method reads when
nothing differs, the yardstick for on / off in the same run.
Run from the repository root, e.g.
`python -m bench.telemetry --backend sqlite postgresql --rounds 5 --duration 3`.
"""

import argparse
import functools
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench import servers, wrk
from bench.databases import BACKENDS, fresh_database
from bench.side_by_side import Target, measure, print_medians, seeded_values

ENDPOINTS = ("get-one", "create")
MULTIPROCESS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"
WORKERS = (1, 2)
MODES = {
    "off": {"METRICS": "false", "LOG_FORMAT": "plain"},
    "on": {"METRICS": "true", "LOG_FORMAT": "json"},
}
# Connections a database server takes from the pools of the servers running at
# once (PostgreSQL allows 100): each process keeps DB_POOL_SIZE open.
CONNECTIONS_HELD = 80
# Metrics and JSON logs on may cost at most this much of the requests per second.
MOST_LOST = 0.03


@dataclass
class OnOff:
    """A setting (on, or control) over off for one backend, endpoint and worker
    count: the median, lowest and highest of the rounds' ratios of requests
    per second, and the ratio of their sums over every round; the median of
    the rounds' ratios of CPU time per request."""

    backend: str
    endpoint: str
    workers: int
    setting: str
    rate: float
    lowest: float
    highest: float
    every_round: float
    cpu: float


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.telemetry", description=__doc__)
    parser.add_argument("--endpoint", nargs="+", choices=ENDPOINTS, default=list(ENDPOINTS))
    parser.add_argument("--backend", nargs="+", choices=BACKENDS, default=["sqlite"])
    parser.add_argument("--workers", nargs="+", type=int, choices=WORKERS, default=list(WORKERS))
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=3, help="seconds per server per round")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--instances", type=int, default=4, help="servers of each setting")
    parser.add_argument(
        "--restarts", type=int, default=200, help="workers come and gone before timing scrapes"
    )
    parser.add_argument(
        "--control", action="store_true", help="as many servers again with the off settings"
    )
    args = parser.parse_args()
    modes = MODES | {"control": MODES["off"]} if args.control else MODES
    endpoints = [e for e in wrk.ENDPOINTS if e.name in args.endpoint]
    logs = Path(tempfile.mkdtemp(prefix="items_bench_telemetry_"))
    print(f"server logs in {logs}", file=sys.stderr)
    print(f"## python -m bench.telemetry {' '.join(sys.argv[1:])}\n")
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; wrk -t2 -c{args.connections} "
        f"-d{args.duration}s on each server in turn, {args.rounds} rounds, in the opposite "
        f"order every other round; {args.instances} servers of each setting, one worker's "
        f"then two workers'; {args.items} seeded items; "
        f"DB_POOL_SIZE={pool_size(args.instances, len(modes))} on PostgreSQL and MariaDB. on: "
        "METRICS=true LOG_FORMAT=json; off: neither (the defaults)"
        f"{'; control: as off' if args.control else ''}. Cells: req/s [the service's CPU µs "
        "per request: its processes' CPU time "
        "over the run, less what they spent idle over as long, / requests; SQLite's work "
        "included, not a server's]."
    )
    print_middleware_cost()
    print_scrapes_after_restarts(args.restarts)
    summary: list[OnOff] = []
    for backend in args.backend:
        with fresh_database(backend) as url:
            values: dict[str, str] = {}
            for workers in args.workers:
                print(f"\n### {backend}, {workers} worker{'s' if workers > 1 else ''}")
                with ExitStack() as stack:
                    targets = start_targets(stack, url, backend, workers, args, logs, values, modes)
                    for endpoint in endpoints:
                        rates, cpu, results = measure(endpoint, targets, args, alternate=True)
                        print_medians(rates, cpu, results, "service CPU µs/req")
                        rows = [
                            on_off(
                                backend, endpoint.name, workers, rates, cpu, args.instances, mode
                            )
                            for mode in modes
                            if mode != "off"
                        ]
                        summary += rows
                        print_on_off(rows)
                    print_scrape_times(targets)
    print("\n### Each setting over off, every backend\n")
    print_on_off(summary)


def start_targets(
    stack: ExitStack,
    url: str,
    backend: str,
    workers: int,
    args: argparse.Namespace,
    logs: Path,
    values: dict[str, str],
    modes: dict[str, dict[str, str]],
) -> dict[str, Target]:
    """`args.instances` servers of `workers` workers on `url` for each of `modes`,
    named like "on 1"; `values` are what wrk's commands are filled with, given
    here (seeding the database) if empty."""
    targets: dict[str, Target] = {}
    for instance in range(1, args.instances + 1):
        # In the opposite order for every other instance: no setting always starts last.
        settings = list(modes.items())
        for mode, variables in settings if instance % 2 else reversed(settings):
            name = f"{mode} {instance}"
            log = logs / f"{backend}_{workers}w_{mode}_{instance}.log"
            # The same hash seed for the n-th server of every setting:
            # servers alike otherwise differ less with it (bench/results.md).
            variables = variables | {
                "WEB_CONCURRENCY": str(workers),
                "PYTHONHASHSEED": str(instance),
            }
            if backend != "sqlite":
                variables |= {"DB_POOL_SIZE": str(pool_size(args.instances, len(modes)))}
            server = stack.enter_context(servers.service(url, log, **variables))
            if not values:  # seeded once, after the first service has migrated it
                values.update(seeded_values(url, args.items, orders=False))
            # The service's own CPU time (its workers' included) in the CPU column:
            # it moves far less with the machine's load than requests per second.
            cpu = functools.partial(servers.process_tree_cpu_seconds, server.pid)
            targets[name] = (server, values, cpu)
    return targets


def pool_size(instances: int, settings: int) -> int:
    """DB_POOL_SIZE for each process: the servers of one worker count, of every
    setting, run at once and keep that many connections each to one database server."""
    processes = instances * max(WORKERS) * settings
    return max(2, CONNECTIONS_HELD // processes)


def on_off(
    backend: str,
    endpoint: str,
    workers: int,
    rates: dict[str, list[float]],
    cpu: dict[str, list[float]],
    instances: int,
    setting: str,
) -> OnOff:
    on, off = ([f"{mode} {n}" for n in range(1, instances + 1)] for mode in (setting, "off"))
    ratios = round_ratios(rates, on, off)
    return OnOff(
        backend,
        endpoint,
        workers,
        setting,
        statistics.median(ratios),
        min(ratios),
        max(ratios),
        sum(sum(rates[name]) for name in on) / sum(sum(rates[name]) for name in off),
        statistics.median(round_ratios(cpu, on, off)),
    )


def print_on_off(rows: list[OnOff]) -> None:
    print("\nx / off, the settings' means in each round, the median of each round's ratio:\n")
    print(
        "| backend | endpoint | workers | x | req/s, x / off | within 3% | lowest, highest round "
        "| every round's req/s summed, x / off | service CPU per request, x / off |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        within = "yes" if row.rate >= 1 - MOST_LOST else "NO"
        print(
            f"| {row.backend} | {row.endpoint} | {row.workers} | {row.setting} | {row.rate:.3f} "
            f"| {within} "
            f"| {row.lowest:.3f}, {row.highest:.3f} | {row.every_round:.3f} | {row.cpu:.3f} |"
        )


def round_ratios(values: dict[str, list[float]], these: list[str], those: list[str]) -> list[float]:
    """Each round's mean over the servers `these` over the mean over `those`."""
    rounds = len(values[these[0]])
    return [
        statistics.mean(values[name][r] for name in these)
        / statistics.mean(values[name][r] for name in those)
        for r in range(rounds)
    ]


def print_middleware_cost() -> None:
    """What the middleware costs a request in this process, without a server or
    a database: CPU µs per request through it around an app that answers at
    once, with metrics and JSON logs off, on (one worker), and on with the
    values in files (several workers). The machine's load moves it far less
    than requests per second."""
    with tempfile.TemporaryDirectory(prefix="items_bench_middleware_") as directory:
        context = multiprocessing.get_context("spawn")
        with context.Pool(1, maxtasksperchild=1) as pool:
            off = pool.apply(_middleware_cost, (False, None))
            on = pool.apply(_middleware_cost, (True, None))
        os.environ[MULTIPROCESS_DIRECTORY] = directory
        with context.Pool(1, maxtasksperchild=1) as pool:
            files = pool.apply(_middleware_cost, (True, directory))
        del os.environ[MULTIPROCESS_DIRECTORY]
    print("\n### The middleware alone: CPU µs per request, best of 5 runs of 20,000\n")
    print("| off | on, one worker | on, several workers (values in files) |")
    print("|---|---|---|")
    print(f"| {off:.1f} | {on:.1f} (+{on - off:.1f}) | {files:.1f} (+{files - off:.1f}) |")


def _middleware_cost(on: bool, directory: str | None) -> float:
    import asyncio  # noqa: PLC0415
    import logging  # noqa: PLC0415

    from service.telemetry.logs import FORMATTERS  # noqa: PLC0415
    from service.telemetry.metrics import Metrics  # noqa: PLC0415
    from service.telemetry.middleware import Telemetry  # noqa: PLC0415

    handler = logging.FileHandler(os.devnull)
    handler.setFormatter(FORMATTERS["json" if on else "plain"]())
    logging.getLogger().handlers = [handler]
    logging.getLogger().setLevel(logging.INFO)
    route = type("Route", (), {"path_format": "/items/{item_id}"})()

    async def app(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
        scope["route"] = route
        await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b"{}"})  # type: ignore[operator]

    async def send(message: object) -> None:
        pass

    metrics = Metrics() if on else None
    middleware = Telemetry(app, access_log=True, metrics=metrics)

    async def run(times: int) -> None:
        if metrics is not None:
            metrics.watch(None)
        for n in range(times):
            scope = {
                "type": "http", "method": "GET", "path": f"/items/{n}", "query_string": b"",
                "headers": [(b"host", b"test")], "client": ("127.0.0.1", 5000),
                "http_version": "1.1", "state": {},
            }  # fmt: skip
            await middleware(scope, None, send)  # type: ignore[arg-type]
            # A turn of the loop for each request, the least a server's turn
            # answers: what is written once a turn (the access lines) is
            # written for each.
            await asyncio.sleep(0)
        if metrics is not None:
            metrics.stop()

    best = float("inf")
    for _ in range(5):
        started = time.process_time()
        asyncio.run(run(20_000))
        best = min(best, (time.process_time() - started) / 20_000 * 1e6)
    return best


def print_scrapes_after_restarts(restarts: int) -> None:
    """A scrape after `restarts` workers have served requests and died, as
    prometheus-client reads their files and as the service does (their counts
    merged at the first scrape after they died)."""
    with tempfile.TemporaryDirectory(prefix="items_bench_scrapes_") as directory:
        os.environ[MULTIPROCESS_DIRECTORY] = directory
        # Spawned: a fresh interpreter imports prometheus-client in multiprocess mode.
        context = multiprocessing.get_context("spawn")
        # A process of its own for each task, which exits after it.
        with context.Pool(2, maxtasksperchild=1) as pool:
            pool.map(_serve_and_die, range(restarts), chunksize=1)
            plain, retiring, retired = pool.apply(_time_scrapes)
        del os.environ[MULTIPROCESS_DIRECTORY]
    print(f"\n### GET /metrics after {restarts} workers came and went\n")
    print("| scrape | ms |")
    print("|---|---|")
    print(f"| prometheus-client's MultiProcessCollector, every file kept | {plain:.1f} |")
    print(f"| the service's, first scrape after they died (merging) | {retiring:.1f} |")
    print(f"| the service's, the next scrapes (median of 20) | {retired:.1f} |")


def _serve_and_die(_: int) -> None:
    from service.telemetry.metrics import Metrics  # noqa: PLC0415

    metrics = Metrics()
    for n in range(200):
        metrics.request_finished("GET", f"/route/{n % 20}", 200, 0.001 * (n % 7))


def _time_scrapes() -> tuple[float, float, float]:
    from prometheus_client import CollectorRegistry, generate_latest  # noqa: PLC0415
    from prometheus_client.multiprocess import MultiProcessCollector  # noqa: PLC0415

    from service.telemetry.metrics import Metrics  # noqa: PLC0415

    directory = Path(os.environ[MULTIPROCESS_DIRECTORY])
    registry = CollectorRegistry()
    MultiProcessCollector(registry, str(directory))
    started = time.perf_counter()
    generate_latest(registry)
    plain = (time.perf_counter() - started) * 1000
    service = Metrics()
    started = time.perf_counter()
    service.render()
    retiring = (time.perf_counter() - started) * 1000
    times = []
    for _ in range(20):
        started = time.perf_counter()
        service.render()
        times.append((time.perf_counter() - started) * 1000)
    return plain, retiring, statistics.median(times)


def print_scrape_times(targets: dict[str, Target]) -> None:
    print("\nGET /metrics after the load, the median of 20 scrapes:\n")
    print("| server | ms per scrape | bytes |")
    print("|---|---|---|")
    for name, (server, _, _) in targets.items():
        if name.startswith("on "):
            times = []
            for _ in range(20):
                started = time.perf_counter()
                with urllib.request.urlopen(f"{server.base}/metrics") as response:
                    size = len(response.read())
                times.append((time.perf_counter() - started) * 1000)
            print(f"| {name} | {statistics.median(times):.1f} | {size} |")


if __name__ == "__main__":
    main()
