"""`python -m bench.upgrade`: upgrade a release's database, with its data in
place, to the newest revision while that release serves clients.

For each backend: a database migrated by a release's own code (a commit of
`releases.toml`) and seeded with `--items` items; that release's service on
it, `--clients` clients creating, reading and searching items through it;
and meanwhile the newest code's `alembic upgrade head`. Printed: each
revision's time, the upgrade's, the longest request, the longest time no
write finished while the upgrade ran, the requests by status; then, with the
newest code serving, how many items written during the upgrade `q` misses,
and whether `alembic check` finds anything.

`--head COMMIT` upgrades with that commit's revisions instead of the working
tree's (the figures before a change); `--backend galera` runs on a private
three-node Galera cluster (tests/clusters.py).

    python -m bench.upgrade --backend all --items 1000000
"""

import argparse
import os
import platform
import random
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx

from bench.databases import BACKENDS, fresh_database, seed
from bench.servers import ROOT, free_port

RELEASES_FILE = ROOT / "releases.toml"
# What the clients ask: create an item, read one by id, search by a word of its name.
KINDS = ("create", "read", "search")
# How long the release serves its clients before the upgrade starts.
LOAD_BEFORE_SECONDS = 5


@dataclass(frozen=True)
class Release:
    commit: str
    revision: str
    # The clusters it supported (the test suite's TEST_CLUSTER names).
    clusters: tuple[str, ...]


def releases() -> list[Release]:
    """The releases in `releases.toml`, oldest first."""
    listed = tomllib.loads(RELEASES_FILE.read_text())["release"]
    return [Release(r["commit"], r["revision"], tuple(r["clusters"])) for r in listed]


@contextmanager
def checkout(commit: str) -> Iterator[Path]:
    """The service, its revisions and alembic.ini as they were at `commit`, in
    a temporary directory: a process started there runs that code."""
    with tempfile.TemporaryDirectory(prefix=f"items-{commit[:7]}-") as directory:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", commit, "service", "alembic", "alembic.ini"],
            capture_output=True,
        )
        if archive.returncode != 0:
            raise RuntimeError(
                f"commit {commit} is not in this clone ({archive.stderr.decode().strip()}): "
                "fetch the whole history (git fetch --unshallow)"
            )
        subprocess.run(["tar", "-x", "-C", directory], input=archive.stdout, check=True)
        yield Path(directory)


def as_a_release_takes_it(url: str) -> str:
    """`url` as the releases in `releases.toml` take it: they could not
    migrate through `mariadb://` (the same servers through `mysql://`)."""
    scheme, rest = url.split("://", 1)
    return f"{scheme.replace('mariadb', 'mysql')}://{rest}"


def code_env(**variables: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "DB_"))}
    return keep | variables


def migrate(tree: Path, url: str) -> subprocess.CompletedProcess[str]:
    """`alembic upgrade head` with the code in `tree`."""
    return subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=tree,
        env=code_env(DATABASE_URL=url),
        capture_output=True,
        text=True,
    )


@contextmanager
def serving(tree: Path, url: str) -> Iterator[str]:
    """The service of the code in `tree` on `url`, not migrating; its base URL."""
    port = free_port()
    variables = {"DATABASE_URL": url, "PORT": str(port), "HOST": "127.0.0.1"}
    variables |= {"MIGRATE_ON_START": "false", "ACCESS_LOG": "false"}
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "service"],
            cwd=tree,
            env=code_env(**variables),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"the service at {tree} stopped:\n{log.read()}")
                try:
                    if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the service at {tree} did not answer within 60 s")
                time.sleep(0.1)
            yield base
        finally:
            process.terminate()
            process.wait(timeout=30)


@dataclass
class Clients:
    """Clients of a service, each creating items under names no other item
    has, and reading and searching what it wrote; every request recorded."""

    base: str
    count: int
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # (started, ended, kind: one of KINDS, status)
    requests: list[tuple[float, float, str, int]] = field(default_factory=list)
    # Acknowledged creates: id -> the word only its name holds
    written: dict[int, str] = field(default_factory=dict)

    @contextmanager
    def running(self) -> Iterator[None]:
        threads = [threading.Thread(target=self._run) for _ in range(self.count)]
        for thread in threads:
            thread.start()
        try:
            yield
        finally:
            self.stop.set()
            for thread in threads:
                thread.join()

    def _run(self) -> None:
        mine: list[tuple[int, str]] = []
        with httpx.Client(base_url=self.base, timeout=60) as http:
            while not self.stop.is_set():
                word = f"w{secrets.token_hex(5)}"
                body = {"name": f"Upgrade {word} Straße", "price": random.randint(1, 9999) / 100}
                created = self._send(http, "create", "POST", "/items/", body)
                if created is not None and created.status_code == 201:
                    item = created.json()
                    mine.append((item["id"], word))
                    with self.lock:
                        self.written[item["id"]] = word
                if mine and random.random() < 0.5:
                    item_id, word = random.choice(mine)
                    self._send(http, "read", "GET", f"/items/{item_id}", None)
                    self._send(http, "search", "GET", "/items/", None, {"q": word[:4], "limit": 20})

    def _send(
        self,
        http: httpx.Client,
        kind: str,
        method: str,
        path: str,
        body: Any,
        query: Any = None,
    ) -> httpx.Response | None:
        started = time.monotonic()
        try:
            response = http.request(method, path, json=body, params=query)
        except httpx.TransportError:
            response = None
        with self.lock:
            status = 0 if response is None else response.status_code
            self.requests.append((started, time.monotonic(), kind, status))
        return response


@dataclass(frozen=True)
class Upgrade:
    """What an upgrade under load came to."""

    # (revision, seconds), in the order they ran
    revisions: list[tuple[str, float]]
    seconds: float
    statuses: Counter[int]
    longest_request: float
    # The longest request of each kind (KINDS) that overlapped the upgrade, and
    # of those that ended before it started: what the release takes anyway.
    longest_during: dict[str, float]
    longest_before: dict[str, float]
    # The longest time, while the upgrade ran, in which no create was acknowledged.
    longest_without_a_write: float
    written_during: int
    output: str
    returncode: int


def upgrade_under_load(
    old: Path, new: Path, url: str, clients: int, load_before: float = LOAD_BEFORE_SECONDS
) -> tuple[Upgrade, Clients]:
    """Serve `url` with the code in `old` to `clients` clients, for `load_before`
    seconds and then while the code in `new` migrates it to its newest revision."""
    with serving(old, as_a_release_takes_it(url)) as base:
        load = Clients(base, clients)
        with load.running():
            time.sleep(load_before)
            started = time.monotonic()
            with subprocess.Popen(
                [sys.executable, "-m", "alembic", "upgrade", "head"],
                cwd=new,
                env=code_env(DATABASE_URL=url),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            ) as process:
                assert process.stdout is not None
                lines = [(time.monotonic(), line) for line in process.stdout]
                returncode = process.wait()
            ended = time.monotonic()
            time.sleep(1)
    marks = [
        (at, line.split("->")[1].split(",")[0].strip())
        for at, line in lines
        if "Running upgrade" in line
    ]
    revisions = [
        (revision, (marks[n + 1][0] if n + 1 < len(marks) else ended) - at)
        for n, (at, revision) in enumerate(marks)
    ]
    acknowledged = sorted(
        end for _, end, kind, status in load.requests if kind == "create" and status == 201
    )
    during = [at for at in acknowledged if started <= at <= ended]
    edges = [started, *during, ended]
    return (
        Upgrade(
            revisions=revisions,
            seconds=ended - started,
            statuses=Counter(status for *_, status in load.requests),
            longest_request=max((end - start for start, end, *_ in load.requests), default=0),
            longest_during=longest_by_kind(load.requests, lambda s, e: e >= started and s <= ended),
            longest_before=longest_by_kind(load.requests, lambda s, e: e < started),
            longest_without_a_write=max(b - a for a, b in zip(edges, edges[1:], strict=False)),
            written_during=len(during),
            output="".join(line for _, line in lines),
            returncode=returncode,
        ),
        load,
    )


def longest_by_kind(
    requests: list[tuple[float, float, str, int]], chosen: Callable[[float, float], bool]
) -> dict[str, float]:
    """The longest of the `chosen` requests (by their start and end), by kind."""
    longest = dict.fromkeys(KINDS, 0.0)
    for started, ended, kind, _ in requests:
        if chosen(started, ended):
            longest[kind] = max(longest[kind], ended - started)
    return longest


def missed_by_q(new: Path, url: str, written: dict[int, str]) -> list[int]:
    """The items written that `q`, searching each one's own word with the code
    in `new`, does not find."""
    missed = []
    with serving(new, url) as base, httpx.Client(base_url=base, timeout=60) as http:
        for item_id, word in written.items():
            found = http.get("/items/", params={"q": word}).json()
            if [item["id"] for item in found] != [item_id]:
                missed.append(item_id)
    return missed


def alembic_check(tree: Path, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alembic", "check"],
        cwd=tree,
        env=code_env(DATABASE_URL=url),
        capture_output=True,
        text=True,
    )


def report(backend: str, release: Release, upgrade: Upgrade, missed: int, checked: bool) -> None:
    print(f"\n{backend}, from {release.commit[:7]} (revision {release.revision}):")
    for revision, seconds in upgrade.revisions:
        print(f"  revision {revision}: {seconds:8.2f} s")
    statuses = ", ".join(
        f"{count} × {status}" for status, count in sorted(upgrade.statuses.items())
    )
    print(f"  upgrade took {upgrade.seconds:.2f} s (exit {upgrade.returncode})")
    print(f"  longest request: {upgrade.longest_request:.3f} s")
    for when, longest in (("during", upgrade.longest_during), ("before", upgrade.longest_before)):
        kinds = ", ".join(f"{kind} {seconds:.3f} s" for kind, seconds in longest.items())
        print(f"  longest {when} the upgrade: {kinds}")
    print(f"  longest with no write acknowledged, during the upgrade: "
          f"{upgrade.longest_without_a_write:.3f} s")  # fmt: skip
    print(f"  requests: {statuses}")
    print(f"  items written during the upgrade: {upgrade.written_during}")
    print(f"  items written, missed by q afterwards: {missed}")
    print(f"  alembic check: {'clean' if checked else 'DRIFT'}")


@contextmanager
def database(backend: str) -> Iterator[str]:
    if backend != "galera":
        with fresh_database(backend) as url:
            yield url
        return
    sys.path.insert(0, str(ROOT / "tests"))
    from clusters import GaleraCluster  # noqa: PLC0415

    with ExitStack() as stack:
        cluster = stack.enter_context(GaleraCluster())
        cluster.create_database("items")
        yield cluster.balancer_url.replace("/mysql", "/items")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=(*BACKENDS, "galera", "all"), default="sqlite")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--release", help="a commit of releases.toml (default: each)")
    parser.add_argument("--head", help="upgrade with this commit's revisions (default: this tree)")
    args = parser.parse_args()
    backends = (*BACKENDS, "galera") if args.backend == "all" else (args.backend,)
    chosen = [r for r in releases() if args.release is None or r.commit.startswith(args.release)]
    print(f"{platform.node()}, {os.cpu_count()} CPUs; {args.items:,} items, {args.clients} clients")
    print(f"upgrading with {args.head or 'this working tree'}")
    with ExitStack() as trees:
        new = ROOT if args.head is None else trees.enter_context(checkout(args.head))
        for backend in backends:
            for release in chosen:
                old = trees.enter_context(checkout(release.commit))
                with database(backend) as url:
                    migrated = migrate(old, as_a_release_takes_it(url))
                    if migrated.returncode != 0:
                        sys.exit(migrated.stderr)
                    seed(url, args.items)
                    upgrade, load = upgrade_under_load(old, new, url, args.clients)
                    if upgrade.returncode != 0:
                        print(upgrade.output, file=sys.stderr)
                    missed = missed_by_q(new, url, load.written)
                    checked = alembic_check(new, url).returncode == 0
                    report(backend, release, upgrade, len(missed), checked)


if __name__ == "__main__":
    main()
