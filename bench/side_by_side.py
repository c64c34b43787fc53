"""`python -m bench.side_by_side`: one endpoint, the floors and the service in turn, by rounds.

`python -m bench` measures each floor before and after the backends, minutes
apart, and this machine's speed can move by tens of percent in that time.
Here every server is started first and wrk then drives each in turn, round
after round, so that each ratio compares runs seconds apart; the medians
over the rounds are printed last. With `--baseline DIR`, the service of
another checkout (an earlier version) runs beside this one on each backend,
on a database of its own seeded alike, as "<backend> before".
Run from the repository root, e.g.
`python -m bench.side_by_side --endpoint list-100 --rounds 5 --baseline ../baseline`.
"""

import argparse
import statistics
import sys
import tempfile
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
)
from service.orders.models import Order

ALL_ENDPOINTS = (*wrk.ENDPOINTS, *wrk.ORDER_ENDPOINTS)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.side_by_side", description=__doc__)
    parser.add_argument("--endpoint", choices=[e.name for e in ALL_ENDPOINTS], default="list-100")
    parser.add_argument("--backend", choices=(*BACKENDS, "all"), default="all")
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=6, help="seconds per server per round")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--baseline", type=Path, help="a checkout to run beside this one")
    args = parser.parse_args()
    endpoint = next(e for e in ALL_ENDPOINTS if e.name == args.endpoint)
    backends = BACKENDS if args.backend == "all" else (args.backend,)
    logs = Path(tempfile.mkdtemp(prefix="items_bench_logs_"))
    print(f"server logs in {logs}", file=sys.stderr)

    floor_values = {"first": "1", "last": str(args.items), "q": SEARCH_TERM}
    floor_values |= {"first_order": "1", "last_order": str(args.items)}
    with ExitStack() as stack:
        # Name -> (server, the values its wrk command is filled with).
        targets = {
            "floor a": (stack.enter_context(servers.floor_tutorial(logs / "a.log")), floor_values),
            "floor b": (
                stack.enter_context(servers.floor_service_settings(logs / "b.log")),
                floor_values,
            ),
        }
        for backend in backends:
            roots = {backend: servers.ROOT}
            # The earlier version has no orders to read.
            if args.baseline is not None and not endpoint.of_orders:
                roots[f"{backend} before"] = args.baseline.resolve()
            for name, root in roots.items():
                url = stack.enter_context(fresh_database(backend))
                log = logs / f"{name.replace(' ', '_')}.log"
                server = stack.enter_context(servers.service(url, log, root))
                values = seeded_values(url, args.items, orders=root == servers.ROOT)
                targets[name] = (server, values)

        print(f"## python -m bench.side_by_side {' '.join(sys.argv[1:])}\n")
        print(
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {endpoint.name}; wrk -t2 "
            f"-c{args.connections} -d{args.duration}s on each server in turn, "
            f"{args.rounds} rounds; {args.items} seeded items.\n"
        )
        print("| round | " + " | ".join(f"{name} req/s" for name in targets) + " |")
        print("|---|" + "---|" * len(targets))
        rates: dict[str, list[float]] = {name: [] for name in targets}
        for round_number in range(1, args.rounds + 1):
            for name, (server, values) in targets.items():
                result, _ = wrk.run(server.base, endpoint, values, args.duration, args.connections)
                rates[name].append(result.requests_per_second)
            cells = [f"{rates[name][-1]:.0f}{this_round_ratios(rates, name)}" for name in targets]
            print(f"| {round_number} | " + " | ".join(cells) + " |", flush=True)

    print("\nMedians over the rounds, and the median of each round's ratios:\n")
    print("| server | req/s | × floor a | × floor b |")
    print("|---|---|---|---|")
    for name, values in rates.items():
        in_rounds = [
            (value / rates["floor a"][i], value / rates["floor b"][i])
            for i, value in enumerate(values)
        ]
        a = statistics.median(ratio for ratio, _ in in_rounds)
        b = statistics.median(ratio for _, ratio in in_rounds)
        print(f"| {name} | {statistics.median(values):.0f} | {a:.3f} | {b:.3f} |")


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
    """The latest round's ratios of a service to both floors, as ` (1.10 a, 0.80 b)`."""
    if name.startswith("floor"):
        return ""
    value = rates[name][-1]
    return f" ({value / rates['floor a'][-1]:.2f} a, {value / rates['floor b'][-1]:.2f} b)"


if __name__ == "__main__":
    main()
