"""`python -m bench`: load on each endpoint of the service, side by side with floors
that have no database: FastAPI alone (a, b) and a bare ASGI app (c).

Each endpoint at each number of connections (64, 256 and 1,000 by default):
requests per second, and latency at p50, p90, p99 and p99.9 with p99 / p50,
which says how fair the waiting is. Run from the repository root, e.g.
`python -m bench --backend all --items 10000 --duration 10`.
"""

import argparse
import platform
import re
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench import servers, wrk
from bench.databases import BACKENDS, SEARCH_TERM, fresh_database, seed, seeded_ids

_STATUS = re.compile(rb'" (\d{3}) ')


def statuses_since(log: Path, offset: int) -> tuple[Counter[str], int]:
    """Status codes in the server's access log written after `offset` bytes, and the new offset."""
    data = log.read_bytes()
    return Counter(code.decode() for code in _STATUS.findall(data[offset:])), len(data)


@dataclass
class Measurement:
    result: wrk.Result
    codes: Counter[str]
    # The server process's CPU time per request, in microseconds (None where /proc is missing).
    cpu_us: float | None


def measure(
    server: servers.Server, values: dict[str, str], args: argparse.Namespace, log: Path
) -> dict[str, Measurement]:
    """Each endpoint at each number of connections, by `endpoint at connections`."""
    results = {}
    for endpoint in wrk.ENDPOINTS:
        for connections in args.connections:
            offset = log.stat().st_size
            cpu_before = server.cpu_seconds()
            result, _report = wrk.run(server.base, endpoint, values, args.duration, connections)
            cpu_after = server.cpu_seconds()
            codes, _ = statuses_since(log, offset)
            cpu_us = None
            if cpu_before is not None and cpu_after is not None and result.requests:
                cpu_us = (cpu_after - cpu_before) / result.requests * 1e6
            name = f"{endpoint.name} at {connections}"
            results[name] = Measurement(result, codes, cpu_us)
            print(f"  {name}: {result.requests_per_second:.0f} req/s", file=sys.stderr)
    return results


def other_statuses(codes: Counter[str]) -> str:
    odd = {code: count for code, count in sorted(codes.items()) if not code.startswith("2")}
    return ", ".join(f"{count}×{code}" for code, count in odd.items()) or "-"


def table(title: str, results: dict[str, Measurement], floors: dict[str, dict[str, float]]) -> None:
    print(f"\n### {title}\n")
    heads = ["endpoint at connections", "req/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms"]
    heads += ["p99 / p50", "CPU µs/req"]
    heads += ["non-2xx", "statuses", "sock err"]
    heads += [f"× floor {name}" for name in floors]
    print("| " + " | ".join(heads) + " |")
    print("|" + "---|" * len(heads))
    for name, measurement in results.items():
        result = measurement.result
        cells = [
            name,
            f"{result.requests_per_second:.0f}",
            f"{result.p50_ms:.2f}",
            f"{result.p90_ms:.2f}",
            f"{result.p99_ms:.2f}",
            f"{result.p999_ms:.2f}",
            f"{result.p99_ms / result.p50_ms:.1f}" if result.p50_ms else "-",
            "-" if measurement.cpu_us is None else f"{measurement.cpu_us:.0f}",
            str(result.non_2xx),
            other_statuses(measurement.codes),
            str(result.socket_errors),
        ]
        for floor_rates in floors.values():
            cells.append(f"{result.requests_per_second / floor_rates[name]:.3f}")
        print("| " + " | ".join(cells) + " |")


# Each floor's name, title and server.
FLOORS = {
    "a": ("`uvicorn bench.floor:app`, tutorial defaults", servers.floor_tutorial),
    "b": (
        "the floor app under `python -m service`'s uvicorn settings",
        servers.floor_service_settings,
    ),
    "c": ("a bare ASGI app (`python -m bench.bare`), the service's settings", servers.bare_asgi),
}


def measure_floors(
    values: dict[str, str], args: argparse.Namespace, logs: Path, when: str
) -> dict[str, dict[str, Measurement]]:
    floors = {}
    for name, (_title, start) in FLOORS.items():
        print(f"floor {name} ({when})", file=sys.stderr)
        log = logs / f"floor_{name}_{when}.log"
        with start(log) as server:
            floors[name] = measure(server, values, args, log)
    return floors


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--backend", choices=(*BACKENDS, "all"), default="sqlite")
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--duration", type=int, default=10, help="seconds per endpoint")
    parser.add_argument("--connections", type=int, nargs="+", default=[64, 256, 1000])
    args = parser.parse_args()
    backends = BACKENDS if args.backend == "all" else (args.backend,)
    logs = Path(tempfile.mkdtemp(prefix="items_bench_logs_"))
    print(f"server logs in {logs}", file=sys.stderr)

    print(f"## python -m bench {' '.join(sys.argv[1:])}\n")
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, 2 cores; "
        f"wrk -t2 -d{args.duration}s at {', '.join(map(str, args.connections))} connections; "
        f"{args.items} seeded items; "
        f"q={SEARCH_TERM!r} matches one item in ten."
    )
    values = {"first": "1", "last": str(args.items), "q": SEARCH_TERM}
    floors_before = measure_floors(values, args, logs, "before")
    backend_results = {}
    for backend in backends:
        print(backend, file=sys.stderr)
        log = logs / f"service_{backend}.log"
        with fresh_database(backend) as url, servers.service(url, log) as server:
            started = time.monotonic()
            seed(url, args.items)
            seconds = time.monotonic() - started
            first, last = seeded_ids(url)
            backend_values = {"first": str(first), "last": str(last), "q": SEARCH_TERM}
            backend_results[f"{backend} (seeded {args.items} items in {seconds:.1f} s)"] = measure(
                server, backend_values, args, log
            )
    floors_after = measure_floors(values, args, logs, "after")

    # This machine's speed drifts within minutes: each floor is measured before
    # and after the backends, and the ratios are to the mean of the two.
    floors = {
        name: {
            endpoint: (
                before.result.requests_per_second
                + floors_after[name][endpoint].result.requests_per_second
            )
            / 2
            for endpoint, before in floors_before[name].items()
        }
        for name in FLOORS
    }
    for name, (title, _start) in FLOORS.items():
        table(f"floor {name} before the backends: {title}", floors_before[name], {})
        table(f"floor {name} after the backends", floors_after[name], {})
    print("\nRatios below are to the mean of each floor's two runs.")
    for title, results in backend_results.items():
        table(title, results, floors)


if __name__ == "__main__":
    main()
