"""Prometheus metrics (METRICS=true), named after OpenTelemetry's semantic conventions.

`http_server_*` and `db_client_connection_*` are the conventions' own metrics
translated to Prometheus (dots to underscores, the unit as a suffix); those
the conventions lack are `items_service_*`. With several workers, each
process writes its values to files in PROMETHEUS_MULTIPROC_DIR and a scrape
sums them (`WorkerFiles`).

What the event loop records of requests (their durations, the read batches'
sizes) is kept for WRITE_SECONDS, then written down at once, one write for
each bucket those requests fell in rather than two a request: with several
workers each write is a write to a file, and a busy worker's turns of the
loop answer a request or two each, so that writing once a turn still cost
several writes a request. A scrape writes down what its worker has pending,
and with several workers waits for the others to have written theirs.
"""

import asyncio
import bisect
import contextlib
import fcntl
import os
import re
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import generate_latest as exposition
from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from starlette.requests import Request
from starlette.responses import Response

from service.db.observer import Observer, RetryReason
from service.db.runtime import Database

CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROCESS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"
# Fine enough below a millisecond, where reads by key on SQLite answer.
DURATION_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
)  # fmt: skip
COUNT_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# How often each worker writes its gauges down for the others' scrapes.
SAMPLE_SECONDS = 1.0
# How long what the loop records of requests waits to be written down, with
# what it records meanwhile.
WRITE_SECONDS = 0.01


class Metrics(Observer):
    """The service's metrics, registered in a registry of their own: what the
    middleware records of each request, and what the data layer reports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        directory = os.environ.get(MULTIPROCESS_DIRECTORY)
        # Several workers: the values go to files, which a scrape reads.
        self.several_workers = directory is not None
        registry = None if self.several_workers else self.registry
        if directory is not None:
            WorkerFiles(self.registry, directory)
        self.request_duration = Histogram(
            "http_server_request_duration_seconds",
            "Duration of HTTP server requests.",
            ["http_request_method", "http_route", "http_response_status_code"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.active_requests = Gauge(
            "http_server_active_requests",
            "Number of active HTTP server requests.",
            ["http_request_method"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        connections = Gauge(
            "db_client_connection_count",
            "The number of connections that are currently in state described by the state "
            "attribute.",
            ["db_client_connection_state"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.connections_used = connections.labels("used")
        self.connections_idle = connections.labels("idle")
        self.connections_overflow = Gauge(
            "db_client_connection_overflow",
            "Connections open beyond DB_POOL_SIZE (up to DB_MAX_OVERFLOW); not in the conventions.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.connection_waits = Histogram(
            "db_client_connection_wait_time_seconds",
            "The time it took to obtain an open connection from the pool, for the callers "
            "that found none free (the others waited none).",
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.connection_timeouts = Counter(
            "db_client_connection_timeouts",
            "The number of connection timeouts that have occurred trying to obtain a "
            "connection from the pool.",
            registry=registry,
        )
        retries = Counter(
            "items_service_db_retries",
            "Database calls run again after they did nothing, by reason.",
            ["error_type"],
            registry=registry,
        )
        self.retries = {reason: retries.labels(reason.value) for reason in RetryReason}
        self.unavailable = Counter(
            "items_service_unavailable_responses",
            "Requests answered 503 because of the database or an overload, by cause.",
            ["error_type"],
            registry=registry,
        )
        self.commit_group_writes = Histogram(
            "items_service_commit_group_writes",
            "Writes committed together in one SQLite transaction.",
            buckets=COUNT_BUCKETS,
            registry=registry,
        )
        self.commit_group_wait = Histogram(
            "items_service_commit_group_wait_seconds",
            "How long the first write of a SQLite commit group waited for the writer thread.",
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.read_batch_keys = Histogram(
            "items_service_read_batch_keys",
            "Rows by key read by one query for the requests that asked meanwhile.",
            buckets=COUNT_BUCKETS,
            registry=registry,
        )
        # Each label set's child, found once: `labels()` takes a lock each call.
        self._durations: dict[tuple[str, str, int], Histogram] = {}
        # Observed on the loop, written down WRITE_SECONDS after the first of them.
        self._pending_durations: dict[tuple[str, str, int], list[float]] = {}
        self._pending_batches: list[int] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._write: asyncio.TimerHandle | None = None
        # Requests in flight by method, which the middleware counts, written to
        # the gauge when sampled: with several workers each write is a write to a file.
        self.in_flight: defaultdict[str, int] = defaultdict(int)
        # The gauge's child for each method, found once: with several workers
        # the gauges are sampled each time what was recorded is written down.
        self._active_by_method: dict[str, Gauge] = {}
        self._database: Database | None = None
        self._sampling: asyncio.TimerHandle | None = None

    def watch(self, database: Database | None) -> None:
        """Sample the gauges (requests in flight, `database`'s pool if given) at
        each scrape, and every SAMPLE_SECONDS where other workers' scrapes read
        them. Called on the event loop, which from now on writes down what it
        records WRITE_SECONDS after it, until `stop`."""
        self._database = database
        self._loop = asyncio.get_running_loop()
        if self.several_workers:
            self._sample_periodically()

    def stop(self) -> None:
        if self._sampling is not None:
            self._sampling.cancel()
        self.write_down()
        self._loop = None

    def _sample_periodically(self) -> None:
        self.sample()
        loop = asyncio.get_running_loop()
        self._sampling = loop.call_later(SAMPLE_SECONDS, self._sample_periodically)

    def sample(self) -> None:
        for method, count in self.in_flight.items():
            gauge = self._active_by_method.get(method)
            if gauge is None:
                gauge = self._active_by_method[method] = self.active_requests.labels(method)
            gauge.set(count)
        use = None if self._database is None else self._database.pool_use()
        if use is not None:
            in_use, idle, overflow = use
            self.connections_used.set(in_use)
            self.connections_idle.set(idle)
            self.connections_overflow.set(overflow)

    def request_finished(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        pending = self._pending_durations.get(key)
        if pending is None:
            pending = self._pending_durations[key] = []
        pending.append(seconds)
        if self._write is None:
            self._plan_write()

    def _plan_write(self) -> None:
        """Write down soon; called only when no write-down is planned (`_write` is None),
        which the callers check first, as they run for every request."""
        if self._loop is None:  # not watching a loop: nothing would write it down later
            self.write_down()
            return
        self._write = self._loop.call_later(WRITE_SECONDS, self._write_down_and_sample)

    def _write_down_and_sample(self) -> None:
        self.write_down()
        if self.several_workers:
            # The others' scrapes then see the requests in flight as they are
            # now, not as they were at the last periodic sample.
            self.sample()

    def write_down(self) -> None:
        """Write what the loop has recorded since the last time into the metrics."""
        if self._write is not None:
            self._write.cancel()
            self._write = None
        durations, self._pending_durations = self._pending_durations, {}
        for key, seconds in durations.items():
            histogram = self._durations.get(key)
            if histogram is None:
                histogram = self._durations[key] = self.request_duration.labels(*key)
            observe_all(histogram, seconds)
        if self._pending_batches:
            batches, self._pending_batches = self._pending_batches, []
            observe_all(self.read_batch_keys, batches)

    def render(self) -> bytes:
        self.write_down()
        self.sample()
        return exposition(self.registry)

    # What the data layer reports (`service.db.observer`).

    def pool_waited(self, seconds: float, timed_out: bool) -> None:
        self.connection_waits.observe(seconds)
        if timed_out:
            self.connection_timeouts.inc()

    def retried(self, reason: RetryReason) -> None:
        self.retries[reason].inc()

    def commit_group(self, writes: int, first_waited_seconds: float) -> None:
        self.commit_group_writes.observe(writes)
        self.commit_group_wait.observe(first_waited_seconds)

    def read_batch(self, keys: int) -> None:
        # On the event loop (`service.db.batched_reads`).
        self._pending_batches.append(keys)
        if self._write is None:
            self._plan_write()

    def answered_unavailable(self, cause: str) -> None:
        self.unavailable.labels(cause).inc()


def observe_all(histogram: Histogram, amounts: list[float] | list[int]) -> None:
    """`histogram.observe(amount)` for each of `amounts`, with one write to
    each bucket they fall in and one to the sum.

    prometheus-client observes one amount at a time, two writes each; this
    adds to the same values its `observe` does (a bucket per amount, the
    first whose bound is at least the amount, counted apart from the others
    as its files keep them; and the sum). It uses prometheus-client's own
    names for them (`_upper_bounds`, `_buckets`, `_sum`): if a release renames
    them, tests/test_telemetry.py's burst test fails."""
    if len(amounts) == 1:
        histogram.observe(amounts[0])
        return
    bounds = histogram._upper_bounds  # noqa: SLF001
    # A plain dict: a `collections.Counter` costs about a microsecond more a call.
    falls_in: dict[int, int] = {}
    for amount in amounts:
        bucket = bisect.bisect_left(bounds, amount)
        falls_in[bucket] = falls_in.get(bucket, 0) + 1
    histogram._sum.inc(sum(amounts))  # noqa: SLF001
    buckets = histogram._buckets  # noqa: SLF001
    for bucket, count in falls_in.items():
        buckets[bucket].inc(count)


async def scrape(request: Request) -> Response:
    """GET /metrics."""
    metrics: Metrics = request.app.state.metrics
    if metrics.several_workers:
        # Each other worker writes down what it had recorded before this
        # scrape began within WRITE_SECONDS, when its loop is not held up.
        await asyncio.sleep(2 * WRITE_SECONDS)
    return Response(metrics.render(), media_type=CONTENT_TYPE)


# A worker's file: `counter_1234.db`, `histogram_1234.db`, `gauge_livesum_1234.db`.
_WORKER_FILE = re.compile(r"(?P<kind>[a-z_]+)_(?P<pid>\d+)\.db")
# What workers that have died counted, in one file per kind.
RETIRED = "retired"


class WorkerFiles(MultiProcessCollector):
    """Every worker's values, summed; live gauges (requests in progress, the
    pool) of live workers only.

    A scrape first retires the workers that have died since the last one: its
    live gauges go, and its counts join those of the workers retired before,
    in one file per kind, so that they still count and the files a scrape
    reads do not grow with every worker ever started.
    """

    def collect(self) -> Iterable[Metric]:
        path = Path(self._path)
        with _locked(path / "lock"):
            retire_dead_workers(path)
            return list(super().collect())


def retire_dead_workers(path: Path) -> None:
    pids = {int(m["pid"]) for f in path.iterdir() if (m := _WORKER_FILE.fullmatch(f.name))}
    for pid in pids - {os.getpid()}:
        if not _alive(pid):
            mark_process_dead(pid, str(path))
            for kind in ("counter", "histogram"):
                _retire(path / f"{kind}_{pid}.db", path / f"{kind}_{RETIRED}.db")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _retire(dead: Path, retired: Path) -> None:
    if not dead.exists():
        return
    totals: dict[str, float] = {}
    for source in (retired, dead):
        if source.exists():
            for key, value, _timestamp, _position in MmapedDict.read_all_values_from_file(
                str(source)
            ):
                totals[key] = totals.get(key, 0.0) + value
    # Written aside and moved into place: a crash leaves the old file whole.
    staging = retired.with_suffix(".staging")
    merged = MmapedDict(str(staging))
    for key, total in totals.items():
        merged.write_value(key, total, 0.0)
    merged.close()
    os.replace(staging, retired)
    dead.unlink()


@contextlib.contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    # Two workers scraped at once must not retire the same worker twice.
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def prepare_directory(workers: int) -> Callable[[], None]:
    """Make PROMETHEUS_MULTIPROC_DIR ready for the workers about to start, and
    return what cleans up after them.

    Set, it is emptied: the last run's values must not count in this one.
    Unset, with several workers, a private temporary directory is made (and
    removed afterwards); with one, the values stay in its memory.
    """
    given = os.environ.get(MULTIPROCESS_DIRECTORY)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in (*path.glob("*.db"), *path.glob("*.staging")):
            stale.unlink()
        return lambda: None
    if workers == 1:
        return lambda: None
    private = tempfile.TemporaryDirectory(prefix="items-service-metrics-")
    os.environ[MULTIPROCESS_DIRECTORY] = private.name
    return private.cleanup
