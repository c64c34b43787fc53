"""`python -m bench.paging`: how deep paging (after_id vs skip) and filters cost on a big table.

Seeds --rows items (default 1,000,000) per backend, measures GET /items/?limit=100 at
several depths (median of --repeat requests), writes bench/paging.png and bench/plans.txt.
"""

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx2 as httpx
import matplotlib

from bench import plans, servers
from bench.databases import (
    BACKENDS,
    SEARCHES,
    engine_for,
    fresh_database,
    seed,
    seeded_ids,
)

matplotlib.use("Agg")
from matplotlib import pyplot  # noqa: E402

HERE = Path(__file__).resolve().parent


def median_ms(client: httpx.Client, params: dict[str, object], repeat: int) -> float:
    client.get("/items/", params=params).raise_for_status()  # warm-up
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        client.get("/items/", params=params).raise_for_status()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure_backend(backend: str, args: argparse.Namespace, log: Path) -> dict[str, object]:
    with fresh_database(backend) as url, servers.service(url, log) as server:
        started = time.monotonic()
        seed(url, args.rows)
        seed_seconds = time.monotonic() - started
        first, last = seeded_ids(url)
        depths = [0, 100_000, 500_000, args.rows - 100]
        depths = sorted({d for d in depths if 0 <= d <= args.rows - 100})
        paging: dict[str, list[float]] = {"after_id": [], "skip": []}
        filters: dict[str, float] = {}
        with httpx.Client(base_url=server.base, timeout=120) as client:
            for depth in depths:
                for method, value in (("after_id", first - 1 + depth), ("skip", depth)):
                    params = {"limit": 100, method: value}
                    paging[method].append(median_ms(client, params, args.repeat))
            searches = {f"q={q} ({found})": {"q": q} for found, q in SEARCHES.items()}
            prices = {"min_price=10&max_price=10.5": {"min_price": 10, "max_price": 10.5}}
            for title, params in (searches | prices).items():
                filters[title] = median_ms(client, params | {"limit": 100}, args.repeat)
        engine = engine_for(url)
        try:
            plan = plans.explain(engine, first - 1 + args.rows // 2)
        finally:
            engine.dispose()
    print(f"  {backend}: seeded in {seed_seconds:.0f} s", file=sys.stderr)
    return {
        "seed": seed_seconds,
        "depths": depths,
        "paging": paging,
        "filters": filters,
        "plan": plan,
    }


def plot(results: dict[str, dict], path: Path) -> None:
    figure, axes = pyplot.subplots(figsize=(8, 5))
    for colour, (backend, result) in enumerate(results.items()):
        for method, style in (("after_id", "-o"), ("skip", "--s")):
            times = result["paging"][method]
            label = f"{backend} {method}"
            axes.plot(result["depths"], times, style, color=f"C{colour}", label=label)
    axes.set_xlabel("depth (rows before the page)")
    axes.set_ylabel("latency of GET /items/?limit=100, median ms")
    axes.set_yscale("log")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    axes.set_title("Deep paging: after_id vs skip")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.paging", description=__doc__)
    parser.add_argument("--backend", choices=(*BACKENDS, "all"), default="sqlite")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    backends = BACKENDS if args.backend == "all" else (args.backend,)
    logs = Path(tempfile.mkdtemp(prefix="items_bench_logs_"))
    print(f"server logs in {logs}", file=sys.stderr)
    results = {b: measure_backend(b, args, logs / f"service_{b}.log") for b in backends}

    print(f"## python -m bench.paging {' '.join(sys.argv[1:])}\n")
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, 2 cores; {args.rows} rows; "
        f"median of {args.repeat} sequential requests, ms.\n"
    )
    print(
        "| backend | seed s | method | "
        + " | ".join(f"depth {d}" for d in results[backends[0]]["depths"])
        + " |"
    )
    print("|---|---|---|" + "---|" * len(results[backends[0]]["depths"]))
    for backend, result in results.items():
        for method, times in result["paging"].items():
            cells = " | ".join(f"{t:.1f}" for t in times)
            print(f"| {backend} | {result['seed']:.0f} | {method} | {cells} |")
    titles = list(results[backends[0]]["filters"])
    print("\nFilters, median ms, and as a multiple of the first page of the plain list:\n")
    print("| backend | " + " | ".join(titles) + " |")
    print("|---|" + "---|" * len(titles))
    for backend, result in results.items():
        first_page = result["paging"]["after_id"][0]
        cells = [f"{t:.1f} ({t / first_page:.1f}x)" for t in result["filters"].values()]
        print(f"| {backend} | " + " | ".join(cells) + " |")

    plot(results, HERE / "paging.png")
    text = "".join(f"===== {b} =====\n{r['plan']}\n" for b, r in results.items())
    (HERE / "plans.txt").write_text(text)
    print(f"\nplot: {HERE / 'paging.png'}; plans: {HERE / 'plans.txt'}", file=sys.stderr)


if __name__ == "__main__":
    main()
