"""`python -m bench.telemetry`: what metrics and JSON logs cost, side by side.

On each backend, one seeded database and four services on it: one worker and
two, each with `METRICS=true LOG_FORMAT=json` ("on") and with both off (plain
logs, no metrics: the defaults). Every server writes its access lines to a
file, as in production. wrk drives each in turn, round after round, as
`bench.side_by_side` does; printed last, per worker count, the median of each
round's on / off ratio, which must stay above 0.97. A scrape of each "on"
service after the load is timed too: its time must not grow with the requests
served.
Run from the repository root, e.g.
`python -m bench.telemetry --backend sqlite postgresql --rounds 5 --duration 5`.
"""

import argparse
import statistics
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

from bench import servers, wrk
from bench.databases import BACKENDS, fresh_database
from bench.side_by_side import Target, measure, print_medians, seeded_values

ENDPOINTS = ("get-one", "create")
WORKERS = (1, 2)
MODES = {
    "off": {"METRICS": "false", "LOG_FORMAT": "plain"},
    "on": {"METRICS": "true", "LOG_FORMAT": "json"},
}
# Metrics and JSON logs on may cost at most this much of the requests per second.
MOST_LOST = 0.03


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.telemetry", description=__doc__)
    parser.add_argument("--endpoint", nargs="+", choices=ENDPOINTS, default=list(ENDPOINTS))
    parser.add_argument("--backend", nargs="+", choices=BACKENDS, default=["sqlite"])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5, help="seconds per server per round")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    endpoints = [e for e in wrk.ENDPOINTS if e.name in args.endpoint]
    logs = Path(tempfile.mkdtemp(prefix="items_bench_telemetry_"))
    print(f"server logs in {logs}", file=sys.stderr)
    print(f"## python -m bench.telemetry {' '.join(sys.argv[1:])}\n")
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; wrk -t2 -c{args.connections} "
        f"-d{args.duration}s on each server in turn, {args.rounds} rounds; {args.items} seeded "
        "items. on: METRICS=true LOG_FORMAT=json; off: neither (the defaults). Cells: req/s."
    )
    for backend in args.backend:
        print(f"\n### {backend}")
        with ExitStack() as stack:
            targets = start_targets(stack, backend, args, logs)
            for endpoint in endpoints:
                rates, database_cpu = measure(endpoint, targets, args)
                print_medians(rates, database_cpu)
                print_on_off_ratios(rates)
            print_scrape_times(targets)


def start_targets(
    stack: ExitStack, backend: str, args: argparse.Namespace, logs: Path
) -> dict[str, Target]:
    url = stack.enter_context(fresh_database(backend))
    targets: dict[str, Target] = {}
    values: dict[str, str] = {}
    for workers in WORKERS:
        for mode, variables in MODES.items():
            name = f"{workers}w {mode}"
            log = logs / f"{backend}_{workers}w_{mode}.log"
            variables = variables | {"WEB_CONCURRENCY": str(workers)}
            server = stack.enter_context(servers.service(url, log, **variables))
            if not values:  # seeded once, after the first service has migrated it
                values = seeded_values(url, args.items, orders=False)
            targets[name] = (server, values, None)
    return targets


def print_on_off_ratios(rates: dict[str, list[float]]) -> None:
    print("\non / off, the median of each round's ratio:\n")
    print("| workers | req/s, on / off | within 3% |")
    print("|---|---|---|")
    for workers in WORKERS:
        on, off = rates[f"{workers}w on"], rates[f"{workers}w off"]
        ratio = statistics.median(a / b for a, b in zip(on, off, strict=True))
        print(f"| {workers} | {ratio:.3f} | {'yes' if ratio >= 1 - MOST_LOST else 'NO'} |")


def print_scrape_times(targets: dict[str, Target]) -> None:
    print("\nGET /metrics after the load, the median of 20 scrapes:\n")
    print("| server | ms per scrape | bytes |")
    print("|---|---|---|")
    for name, (server, _, _) in targets.items():
        if name.endswith(" on"):
            times = []
            for _ in range(20):
                started = time.perf_counter()
                with urllib.request.urlopen(f"{server.base}/metrics") as response:
                    size = len(response.read())
                times.append((time.perf_counter() - started) * 1000)
            print(f"| {name} | {statistics.median(times):.1f} | {size} |")


if __name__ == "__main__":
    main()
