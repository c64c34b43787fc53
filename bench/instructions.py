"""`python -m bench.instructions`: what metrics and JSON logs cost a request,
in instructions, which this machine's load does not move.

Requests per second here move by more than the 3% telemetry may cost
(bench/results.md, "python -m bench.telemetry"). Under valgrind's callgrind,
which counts every instruction a process runs and simulates its caches, one
worker answers `--requests` requests one at a time in each setting, after
`--warm-up` more; and, in a second run, only the warm-up, whose counts are
taken away: what is left is the requests' own, start-up and shut-down
excluded. One at a time, every read batch holds one key in every setting.

The worker keeps its metrics in files, as each of several workers does.
Two runs at a time share the CPU a single worker keeps to, where a request
takes 40-65 ms under callgrind, so the worker writes its metrics down every
WRITE_DOWN_SECONDS rather than every 10 ms: every 40 to 65 requests, as a
worker under load does.

Needs valgrind (Debian's package). About twenty minutes with the defaults, two runs at a time.
Run from the repository root, e.g. `python -m bench.instructions --endpoint get-one`.
"""

import argparse
import http.client
import json
import random
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from bench import servers
from bench.databases import fresh_database
from bench.side_by_side import seeded_values
from bench.telemetry import ENDPOINTS, MODES

SETTINGS = {
    "off": MODES["off"],
    "metrics only": {"METRICS": "true", "LOG_FORMAT": "plain"},
    "JSON logs only": {"METRICS": "false", "LOG_FORMAT": "json"},
    "on": MODES["on"],
}
CREATE_BODY = json.dumps({"name": "Blue Bench Widget", "description": "Created", "price": 19.99})
# 40 to 65 requests' time under callgrind, two runs sharing a CPU.
WRITE_DOWN_SECONDS = 2.6
# The service with its metrics written down every WRITE_DOWN_SECONDS.
LAUNCH = (
    "import service.telemetry.metrics as metrics; "
    f"metrics.WRITE_SECONDS = {WRITE_DOWN_SECONDS}; "
    "from service.__main__ import main; main()"
)
# What callgrind counts (`--cache-sim=yes`), by the names it gives them.
INSTRUCTIONS, I1_MISSES, D1_READ_MISSES, D1_WRITE_MISSES = "Ir", "I1mr", "D1mr", "D1mw"


@dataclass
class Counts:
    """Per request: instructions, and first-level cache misses (instructions, data)."""

    instructions: float
    instruction_misses: float
    data_misses: float


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    parser.add_argument("--endpoint", nargs="+", choices=ENDPOINTS, default=list(ENDPOINTS))
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--warm-up", type=int, default=200)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--setting", nargs="+", choices=SETTINGS, default=list(SETTINGS))
    parser.add_argument(
        "--root",
        type=Path,
        default=servers.ROOT,
        help="the checkout whose service runs (another version)",
    )
    args = parser.parse_args()
    if "off" not in args.setting:
        parser.error("--setting must include off, which the others are compared with")
    work = Path(tempfile.mkdtemp(prefix="items_bench_instructions_"))
    print(f"callgrind's files and the servers' output in {work}", file=sys.stderr)
    print(f"## python -m bench.instructions {' '.join(sys.argv[1:])}\n")
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; the service at {args.root}; SQLite, "
        f"{args.items} seeded items; one worker, its metrics in files, written down every "
        f"{WRITE_DOWN_SECONDS} s; {args.requests} requests one at a time after {args.warm_up}, "
        "less a run of only those. Per request: instructions, and misses of the simulated "
        "first-level instruction and data caches."
    )
    jobs = [
        (endpoint, setting, requests)
        for endpoint in args.endpoint
        for setting in args.setting
        for requests in (0, args.requests)
    ]
    # Two at a time, on the one CPU each worker keeps to (WRITE_DOWN_SECONDS).
    with ThreadPoolExecutor(2) as pool:
        totals = dict(
            zip(jobs, pool.map(lambda job: counted_run(*job, args, work), jobs), strict=True)
        )
    for endpoint in args.endpoint:
        per_request = {
            setting: per_request_counts(
                totals[endpoint, setting, 0],
                totals[endpoint, setting, args.requests],
                args.requests,
            )
            for setting in args.setting
        }
        print_counts(endpoint, per_request)


def counted_run(
    endpoint: str, setting: str, requests: int, args: argparse.Namespace, work: Path
) -> dict[str, int]:
    """callgrind's totals for a worker in `setting` that answered the warm-up, then `requests`."""
    name = f"{endpoint}_{setting.replace(' ', '_')}_{requests}"
    counts = work / f"{name}.callgrind"
    with (
        fresh_database("sqlite") as url,
        counted_service(url, setting, counts, work, args.root) as server,
    ):
        values = seeded_values(url, args.items, orders=False)
        ids = random.Random(1)
        connection = http.client.HTTPConnection(urlsplit(server.base).netloc, timeout=60)
        for _ in range(args.warm_up + requests):
            if endpoint == "get-one":
                item = ids.randint(int(values["first"]), int(values["last"]))
                connection.request("GET", f"/items/{item}")
            else:
                headers = {"Content-Type": "application/json"}
                connection.request("POST", "/items/", CREATE_BODY, headers)
            response = connection.getresponse()
            response.read()
            if response.status not in (200, 201):
                raise RuntimeError(f"{endpoint} answered {response.status}")
        connection.close()
    return callgrind_totals(counts)


def counted_service(
    url: str, setting: str, counts: Path, work: Path, root: Path
) -> AbstractContextManager[servers.Server]:
    """`python -m service` of the checkout at `root`, with one worker, under callgrind;
    stopped afterwards, when callgrind writes `counts`."""
    valgrind = ("valgrind", "--tool=callgrind", "--cache-sim=yes", f"--callgrind-out-file={counts}")
    return servers.service(
        url,
        work / f"{counts.stem}.log",
        root,
        python=(*valgrind, sys.executable, "-c", LAUNCH),
        start_timeout=600,
        stop_timeout=600,
        PYTHONHASHSEED="1",
        # Its values in files, as with several workers.
        PROMETHEUS_MULTIPROC_DIR=tempfile.mkdtemp(dir=work),
        **SETTINGS[setting],
    )


def callgrind_totals(counts: Path) -> dict[str, int]:
    """The totals of a callgrind file, by event name."""
    events: list[str] = []
    for line in counts.read_text().splitlines():
        if line.startswith("events:"):
            events = line.split()[1:]
        elif line.startswith("summary:"):
            return dict(zip(events, (int(n) for n in line.split()[1:]), strict=True))
    raise RuntimeError(f"no summary in {counts}")


def per_request_counts(
    warm_up: dict[str, int], with_requests: dict[str, int], requests: int
) -> Counts:
    def each(*events: str) -> float:
        return sum(with_requests[e] - warm_up[e] for e in events) / requests

    return Counts(each(INSTRUCTIONS), each(I1_MISSES), each(D1_READ_MISSES, D1_WRITE_MISSES))


def print_counts(endpoint: str, per_request: dict[str, Counts]) -> None:
    off = per_request["off"]
    print(f"\n### {endpoint}\n")
    print(
        "| setting | instructions | / off | instruction-cache misses | / off "
        "| data-cache misses | / off |"
    )
    print("|---|---|---|---|---|---|---|")
    for setting, counts in per_request.items():
        print(
            f"| {setting} | {counts.instructions:,.0f} "
            f"| {counts.instructions / off.instructions:.3f} "
            f"| {counts.instruction_misses:,.0f} "
            f"| {counts.instruction_misses / off.instruction_misses:.3f} "
            f"| {counts.data_misses:,.0f} | {counts.data_misses / off.data_misses:.3f} |"
        )


if __name__ == "__main__":
    main()
