"""`python -m bench.tls`: what TLS to the database costs the service, side by side.

For PostgreSQL and MariaDB: a private server serving a certificate made for
the run (tests/certificates.py, tests/private_servers.py), one database on it,
and the service twice on that database: in plain text, and over TLS with the
server's certificate and name verified. wrk drives each in turn, round after
round, beside the floors, as `bench.side_by_side` does; printed last, per
backend, the median of each round's TLS / plain ratio. The pool keeps its
connections, so what TLS costs here is encrypting each request and answer;
its handshakes are paid once per pooled connection.
Run from the repository root, e.g.
`python -m bench.tls --endpoint get-one list-100 create --rounds 5`.
"""

import argparse
import statistics
import sys
import tempfile
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from bench import servers
from bench.databases import SEARCH_TERM, server_cpu
from bench.side_by_side import ALL_ENDPOINTS, Target, measure, print_medians, seeded_values

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("postgresql", "mysql")
DATABASE = "items_bench_tls"
# The URL's options for each: plain text, and TLS verified ({ca}: the CA's file).
OPTIONS = {
    "postgresql": ("sslmode=disable", "sslmode=verify-full&sslrootcert={ca}"),
    "mysql": ("ssl_mode=DISABLED", "ssl_mode=VERIFY_IDENTITY&ssl_ca={ca}"),
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tls", description=__doc__)
    names = [e.name for e in ALL_ENDPOINTS]
    parser.add_argument("--endpoint", nargs="+", choices=names, default=["get-one", "list-100"])
    parser.add_argument("--backend", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=6, help="seconds per server per round")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    endpoints = [e for e in ALL_ENDPOINTS if e.name in args.endpoint]
    print(f"## python -m bench.tls {' '.join(sys.argv[1:])}\n")
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; wrk -t2 -c{args.connections} "
        f"-d{args.duration}s on each server in turn, {args.rounds} rounds; {args.items} seeded "
        "items (and as many orders), on private servers of default settings. Cells as in "
        "bench.side_by_side: req/s (ratio to floor a, floor b) [database CPU µs per request]."
    )
    with ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="items_tls_")))
        print(f"server logs in {directory}", file=sys.stderr)
        targets = start_targets(stack, directory, args)
        for endpoint in endpoints:
            rates, database_cpu, results = measure(endpoint, targets, args)
            print_medians(rates, database_cpu, results)
            print_tls_ratios(rates, args.backend)


def start_targets(stack: ExitStack, directory: Path, args: argparse.Namespace) -> dict[str, Target]:
    # The test suite's certificates and private servers, as bench.upgrade uses its clusters.
    sys.path.insert(0, str(ROOT / "tests"))
    from certificates import make_certificates  # noqa: PLC0415
    from private_servers import local_server  # noqa: PLC0415

    certificates = make_certificates(directory / "certificates")
    floor_values = {"first": "1", "last": str(args.items), "q": SEARCH_TERM}
    floor_values |= {"first_order": "1", "last_order": str(args.items)}
    targets: dict[str, Target] = {
        "floor a": (
            stack.enter_context(servers.floor_tutorial(directory / "a.log")),
            floor_values,
            None,
        ),
        "floor b": (
            stack.enter_context(servers.floor_service_settings(directory / "b.log")),
            floor_values,
            None,
        ),
    }
    for backend in args.backend:
        server = local_server(backend)
        stack.callback(server.remove)
        server.use_tls(certificates.server)
        server.start()
        engine = sa.create_engine(server.url, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE {DATABASE}")
        engine.dispose()
        base = sa.make_url(server.url).set(database=DATABASE).render_as_string(False)
        plain, verified = (f"{base}?{o.format(ca=certificates.ca)}" for o in OPTIONS[backend])
        # Both on one database: the plain one migrates it, and it is seeded once.
        plain_service = stack.enter_context(servers.service(plain, directory / f"{backend}.log"))
        values = seeded_values(plain, args.items, orders=True)
        log = directory / f"{backend}_tls.log"
        tls_service = stack.enter_context(servers.service(verified, log))
        cpu = server_cpu(plain)
        targets[f"{backend} plain"] = (plain_service, values, cpu)
        targets[f"{backend} tls"] = (tls_service, values, cpu)
    return targets


def print_tls_ratios(rates: dict[str, list[float]], backends: list[str]) -> None:
    print("\nTLS / plain, the median of each round's ratio:\n")
    print("| backend | req/s, TLS / plain |")
    print("|---|---|")
    for backend in backends:
        plain, tls = rates[f"{backend} plain"], rates[f"{backend} tls"]
        ratio = statistics.median(t / p for t, p in zip(tls, plain, strict=True))
        print(f"| {backend} | {ratio:.3f} |")


if __name__ == "__main__":
    main()
