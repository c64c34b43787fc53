"""`python -m bench.side_by_side`: one endpoint, the floors and the service in turn, by rounds.

`python -m bench` measures each floor before and after the backends, minutes
apart, and this machine's speed can move by tens of percent in that time.
Here every server is started first and wrk then drives each in turn, round
after round, so that each ratio compares runs seconds apart; the medians
over the rounds are printed last. On each backend the tutorial's way
(`bench.tutorial`) runs too, on the service's database, and for PostgreSQL and
MariaDB each run's database CPU per request is measured beside its requests
per second: the server's processes' CPU time over the run, divided by the
requests. With `--baseline DIR`, the service of another checkout (an earlier
version) runs beside this one on each backend, on a database of its own
seeded alike, as "<backend> before".
Run from the repository root, e.g.
`python -m bench.side_by_side --endpoint list-100 --rounds 5 --baseline ../baseline`,
or `--endpoint all` for every endpoint, the servers started once.
"""

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

from bench import servers, wrk
from bench.databases import (
    BACKENDS,
    SEARCH_TERM,
    fresh_database,
    seed,
    seed_orders,
    seeded_ids,
    server_cpu,
)
from service.orders.models import Order

ALL_ENDPOINTS = (*wrk.ENDPOINTS, *wrk.ORDER_ENDPOINTS)
# A server to drive, the values its wrk command is filled with, and (for a
# database server) how to read the CPU time it has used.
Target = tuple[servers.Server, dict[str, str], Callable[[], float] | None]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.side_by_side", description=__doc__)
    names = [e.name for e in ALL_ENDPOINTS]
    parser.add_argument(
        "--endpoint", nargs="+", choices=[*names, "all"], default=["list-100"], help="or all"
    )
    parser.add_argument(
        "--backend", nargs="+", choices=(*BACKENDS, "all"), default=["all"], help="or all"
    )
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=6, help="seconds per server per round")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--baseline", type=Path, help="a checkout to run beside this one")
    parser.add_argument(
        "--tutorial",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the tutorial's way on each backend too",
    )
    args = parser.parse_args()
    wanted = names if "all" in args.endpoint else args.endpoint
    endpoints = [e for e in ALL_ENDPOINTS if e.name in wanted]
    backends = BACKENDS if "all" in args.backend else tuple(args.backend)
    logs = Path(tempfile.mkdtemp(prefix="items_bench_logs_"))
    print(f"server logs in {logs}", file=sys.stderr)

    print(f"## python -m bench.side_by_side {' '.join(sys.argv[1:])}\n")
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; wrk -t2 -c{args.connections} "
        f"-d{args.duration}s on each server in turn, {args.rounds} rounds; {args.items} seeded "
        "items (and as many orders). Cells: req/s (ratio to floor a, floor b) [database "
        "CPU µs per request: the server's processes' CPU time over the run, less what it "
        "spent idle over as long (measured each round), / requests]."
    )
    with ExitStack() as stack:
        targets = start_targets(stack, backends, args, logs)
        for endpoint in endpoints:
            # The earlier version has no orders to read.
            driven = {
                name: target
                for name, target in targets.items()
                if not (endpoint.of_orders and name.endswith(" before"))
            }
            rates, database_cpu, latencies = measure(endpoint, driven, args)
            print_medians(rates, database_cpu, latencies)


def start_targets(
    stack: ExitStack, backends: tuple[str, ...], args: argparse.Namespace, logs: Path
) -> dict[str, Target]:
    """Both floors; on each backend the service and the tutorial's way on one
    seeded database, and the baseline's service (if any) on one of its own."""
    floor_values = {"first": "1", "last": str(args.items), "q": SEARCH_TERM}
    floor_values |= {"first_order": "1", "last_order": str(args.items)}
    targets: dict[str, Target] = {
        "floor a": (
            stack.enter_context(servers.floor_tutorial(logs / "a.log")),
            floor_values,
            None,
        ),
        "floor b": (
            stack.enter_context(servers.floor_service_settings(logs / "b.log")),
            floor_values,
            None,
        ),
    }
    for backend in backends:
        url = stack.enter_context(fresh_database(backend))
        server = stack.enter_context(servers.service(url, logs / f"{backend}.log"))
        values = seeded_values(url, args.items, orders=True)
        targets[backend] = (server, values, server_cpu(url))
        if args.tutorial:
            log = logs / f"{backend}_tutorial.log"
            tutorial = stack.enter_context(servers.tutorial(url, log))
            targets[f"{backend} tutorial"] = (tutorial, values, server_cpu(url))
        if args.baseline is not None:
            url = stack.enter_context(fresh_database(backend))
            log = logs / f"{backend}_before.log"
            before = stack.enter_context(servers.service(url, log, args.baseline.resolve()))
            values = seeded_values(url, args.items, orders=False)
            targets[f"{backend} before"] = (before, values, server_cpu(url))
    return targets


def measure(
    endpoint: wrk.Endpoint,
    targets: dict[str, Target],
    args: argparse.Namespace,
    *,
    alternate: bool = False,
) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, list[wrk.Result]]]:
    """Drive each target in turn, round after round, in the opposite order
    every other round if `alternate`; print each round."""
    print(f"\n### {endpoint.name}\n")
    print("| round | " + " | ".join(targets) + " |")
    print("|---|" + "---|" * len(targets))
    rates: dict[str, list[float]] = {name: [] for name in targets}
    database_cpu: dict[str, list[float]] = {name: [] for name in targets}
    results: dict[str, list[wrk.Result]] = {name: [] for name in targets}
    for round_number in range(1, args.rounds + 1):
        idle = idle_cpu_rates(targets, args.duration)
        order = list(targets.items())
        if alternate and round_number % 2 == 0:
            order.reverse()
        for name, (server, values, cpu) in order:
            before, started = (cpu() if cpu else 0.0), time.monotonic()
            result, _ = wrk.run(server.base, endpoint, values, args.duration, args.connections)
            rates[name].append(result.requests_per_second)
            results[name].append(result)
            if cpu and result.requests:
                # Less what the server spends when no one asks it anything
                # (autovacuum, checkpoints, statistics) over the same time.
                used = cpu() - before - idle[cpu] * (time.monotonic() - started)
                database_cpu[name].append(used / result.requests * 1e6)
        cells = [
            f"{rates[name][-1]:.0f}{this_round_ratios(rates, name)}"
            + (f" [{database_cpu[name][-1]:.0f}]" if database_cpu[name] else "")
            for name in targets
        ]
        print(f"| {round_number} | " + " | ".join(cells) + " |", flush=True)
    return rates, database_cpu, results


def idle_cpu_rates(targets: dict[str, Target], seconds: float) -> dict[Callable[[], float], float]:
    """Each database server's CPU seconds per second while nothing is asked of it."""
    readers = {cpu for _, _, cpu in targets.values() if cpu is not None}
    before = {cpu: cpu() for cpu in readers}
    started = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    return {cpu: (cpu() - before[cpu]) / elapsed for cpu in readers}


def print_medians(
    rates: dict[str, list[float]],
    cpu: dict[str, list[float]],
    results: dict[str, list[wrk.Result]],
    cpu_column: str = "database CPU µs/req",
) -> None:
    """`cpu` is the CPU µs per request of each round, the column headed `cpu_column`."""
    print("\nMedians over the rounds, and the median of each round's ratios:\n")
    print(
        f"| server | req/s | × floor a | × floor b | {cpu_column} "
        "| p50 ms | p90 ms | p99 ms | p99.9 ms | p99 / p50 | errors |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    floors = "floor a" in rates and "floor b" in rates
    for name, values in rates.items():
        a_cell = b_cell = "-"
        if floors:
            in_rounds = [
                (value / rates["floor a"][i], value / rates["floor b"][i])
                for i, value in enumerate(values)
            ]
            a_cell = f"{statistics.median(ratio for ratio, _ in in_rounds):.3f}"
            b_cell = f"{statistics.median(ratio for _, ratio in in_rounds):.3f}"
        cpu_cell = f"{statistics.median(cpu[name]):.0f}" if cpu[name] else "-"
        runs = results[name]
        p50, p90, p99, p999 = (
            statistics.median(getattr(run, field) for run in runs)
            for field in ("p50_ms", "p90_ms", "p99_ms", "p999_ms")
        )
        fairness = tail_over_median(runs)
        errors = sum(run.non_2xx + run.socket_errors for run in runs)
        print(
            f"| {name} | {statistics.median(values):.0f} | {a_cell} | {b_cell} | {cpu_cell} "
            f"| {p50:.1f} | {p90:.1f} | {p99:.1f} | {p999:.1f} | {fairness:.1f} | {errors} |"
        )
    befores = [name for name in rates if name.endswith(" before")]
    if befores:
        print("\nThis checkout against the baseline, the median of each round's ratio:\n")
        print("| backend | req/s, now / before | p99 / p50 now | p99 / p50 before |")
        print("|---|---|---|---|")
    for before in befores:
        now = before.removesuffix(" before")
        ratio = statistics.median(a / b for a, b in zip(rates[now], rates[before], strict=True))
        print(
            f"| {now} | {ratio:.3f} | {tail_over_median(results[now]):.1f} "
            f"| {tail_over_median(results[before]):.1f} |"
        )


def tail_over_median(runs: list[wrk.Result]) -> float:
    """The median over `runs` of each run's p99 / p50."""
    return statistics.median(run.p99_ms / run.p50_ms for run in runs if run.p50_ms)


def seeded_values(url: str, items: int, *, orders: bool) -> dict[str, str]:
    """Seed the database at `url` (`items` items, and as many orders if `orders`)
    and return the values wrk's commands are filled with."""
    seed(url, items)
    first, last = seeded_ids(url)
    values = {"first": str(first), "last": str(last), "q": SEARCH_TERM}
    if orders:
        seed_orders(url, items)
        first_order, last_order = seeded_ids(url, Order.id)
        values |= {"first_order": str(first_order), "last_order": str(last_order)}
    return values


def this_round_ratios(rates: dict[str, list[float]], name: str) -> str:
    """The latest round's ratios of a service to both floors, as ` (1.10 a, 0.80 b)`;
    nothing where the floors are not driven."""
    if name.startswith("floor") or "floor a" not in rates or "floor b" not in rates:
        return ""
    value = rates[name][-1]
    return f" ({value / rates['floor a'][-1]:.2f} a, {value / rates['floor b'][-1]:.2f} b)"


if __name__ == "__main__":
    main()
