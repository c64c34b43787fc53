"""`python -m bench.before_after`: this checkout against another, several servers of each.

Two servers of the same code, started alike, differ by up to a tenth in
requests per second on this machine (bench/results.md, "An answer in one
write"): one server of each version cannot tell a change of a few percent
from the two servers' own difference. Here `--instances` servers of each
version run, each version on a seeded database of its own, and wrk drives
every server in turn, round after round, in the opposite order every other
round. A round's ratio is that of the two versions' mean requests per
second, and of their mean CPU time per request (the service's processes,
SQLite's work included, not a database server's); printed last, the median
of each over the rounds. Run from the repository root, e.g. `python -m
bench.before_after --baseline ../before --backend sqlite postgresql
--endpoint get-one --instances 3`.
"""

import argparse
import statistics
import sys
import tempfile
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

from bench import servers, wrk
from bench.databases import BACKENDS, fresh_database
from bench.side_by_side import seeded_values

ROOT = Path(__file__).resolve().parent.parent
# Connections per process on a network database: every server's pool fits.
POOL_SIZE = "8"

# A server as started: its version, itself, and the values wrk fills its requests with.
Started = tuple[str, servers.Server, dict[str, str]]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.before_after", description=__doc__)
    parser.add_argument("--baseline", type=Path, required=True, help="the other checkout")
    parser.add_argument("--backend", nargs="+", choices=BACKENDS, default=["sqlite"])
    endpoints = [e.name for e in wrk.ENDPOINTS]
    parser.add_argument("--endpoint", nargs="+", choices=endpoints, default=["get-one"])
    parser.add_argument("--instances", type=int, default=3, help="servers of each version")
    parser.add_argument("--workers", type=int, default=1, help="WEB_CONCURRENCY")
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5, help="seconds per server per round")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="items_bench_before_after_"))
    print(f"server logs in {logs}", file=sys.stderr)
    print(f"## python -m bench.before_after {' '.join(sys.argv[1:])}\n")
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; wrk -t2 -c{args.connections} "
        f"-d{args.duration}s on each server in turn, {args.rounds} rounds; {args.instances} "
        f"servers of each version, WEB_CONCURRENCY={args.workers}. Cells: req/s [the "
        "service's CPU µs per request]."
    )
    summary = []
    for backend in args.backend:
        with ExitStack() as stack:
            started = start_servers(stack, backend, args, logs)
            for name in args.endpoint:
                endpoint = next(e for e in wrk.ENDPOINTS if e.name == name)
                rates, cpu = measure(f"{backend}, {name}", started, endpoint, args)
                summary.append((backend, name, rates, cpu))
    print("\n### This checkout against the baseline, the median of each round's ratio\n")
    print("| backend | endpoint | req/s, now / before | CPU per request, now / before |")
    print("|---|---|---|---|")
    for backend, name, rates, cpu in summary:
        print(f"| {backend} | {name} | {rates:.3f} | {cpu:.3f} |")


def start_servers(
    stack: ExitStack, backend: str, args: argparse.Namespace, logs: Path
) -> list[Started]:
    """`--instances` servers of each version, alternating, each version on a
    database of its own."""
    variables = {"WEB_CONCURRENCY": str(args.workers)}
    if backend != "sqlite":
        variables["DB_POOL_SIZE"] = POOL_SIZE
    started: list[Started] = []
    for version, root in (("before", args.baseline.resolve()), ("now", ROOT)):
        url = stack.enter_context(fresh_database(backend))
        values: dict[str, str] = {}
        for number in range(args.instances):
            log = logs / f"{backend}_{version}_{number}.log"
            server = stack.enter_context(servers.service(url, log, root, **variables))
            if not values:  # seeded once the first server has migrated it
                values = seeded_values(url, args.items, orders=False)
            started.append((version, server, values))
    # Alternating, so that neither version is always driven first.
    befores, nows = started[: args.instances], started[args.instances :]
    return [server for pair in zip(befores, nows, strict=True) for server in pair]


def measure(
    what: str, started: list[Started], endpoint: wrk.Endpoint, args: argparse.Namespace
) -> tuple[float, float]:
    """Drive every server in turn, round after round; the medians of each
    round's now / before ratios of requests per second and CPU per request."""
    print(f"\n### {what}\n")
    print("| round | before | now | now / before | CPU, now / before |")
    print("|---|---|---|---|---|")
    rate_ratios, cpu_ratios = [], []
    for round_number in range(1, args.rounds + 1):
        order = started if round_number % 2 else started[::-1]
        rates: dict[str, list[float]] = {"before": [], "now": []}
        cpu: dict[str, list[float]] = {"before": [], "now": []}
        for version, server, values in order:
            used = servers.process_tree_cpu_seconds(server.pid)
            result, _ = wrk.run(server.base, endpoint, values, args.duration, args.connections)
            used = servers.process_tree_cpu_seconds(server.pid) - used
            rates[version].append(result.requests_per_second)
            cpu[version].append(used / max(result.requests, 1) * 1e6)
        rate_ratios.append(statistics.mean(rates["now"]) / statistics.mean(rates["before"]))
        cpu_ratios.append(statistics.mean(cpu["now"]) / statistics.mean(cpu["before"]))
        cells = [
            ", ".join(f"{r:.0f} [{c:.0f}]" for r, c in zip(rates[v], cpu[v], strict=True))
            for v in ("before", "now")
        ]
        print(
            f"| {round_number} | {cells[0]} | {cells[1]} | {rate_ratios[-1]:.3f} "
            f"| {cpu_ratios[-1]:.3f} |",
            flush=True,
        )
    return statistics.median(rate_ratios), statistics.median(cpu_ratios)


if __name__ == "__main__":
    main()
