"""Servers under test, each a subprocess on a free port of 127.0.0.1."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Server:
    base: str
    pid: int

    def cpu_seconds(self) -> float | None:
        """User and system CPU seconds the server has used, from /proc (Linux); else None."""
        fields = _stat(self.pid)
        return None if fields is None else _seconds(fields[11] + fields[12])


def _stat(pid: int) -> list[int] | None:
    """The numeric fields of /proc/PID/stat after the command name, from the
    parent's pid on (ppid is [1], utime [11], stime [12], cutime [13], cstime [14])."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return [0, *(int(field) for field in fields[1:])]


def _seconds(ticks: int) -> float:
    return ticks / os.sysconf("SC_CLK_TCK")


def process_tree_cpu_seconds(root: int) -> float:
    """CPU seconds of a server process and of all its children, those that have
    exited (in the root's cutime and cstime once reaped) and those still running:
    PostgreSQL's postmaster and its backends."""
    fields = _stat(root)
    if fields is None:
        raise RuntimeError(f"no process {root}")
    ticks = sum(fields[11:15])
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(root):
            child = _stat(int(entry.name))
            if child is not None and child[1] == root:
                ticks += child[11] + child[12]
    return _seconds(ticks)


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"no answer from {url} within {timeout} s")


@contextmanager
def serve(
    command: list[str],
    env: dict[str, str],
    port: int,
    log: Path,
    root: Path = ROOT,
    start_timeout: float = 60,
    stop_timeout: float = 15,
) -> Iterator[Server]:
    """Run `command` (which must listen on `port`) and yield it as a Server; stop it
    afterwards, killing it if it has not stopped within `stop_timeout` seconds.

    The server's output, access log included, goes to `log`, as it would to a file in production.
    """
    base = f"http://127.0.0.1:{port}"
    with log.open("ab") as output:
        process = subprocess.Popen(
            command, cwd=root, env=os.environ | env, stdout=output, stderr=subprocess.STDOUT
        )
        try:
            wait_until_up(f"{base}/health", process, start_timeout)
            yield Server(base, process.pid)
        finally:
            process.terminate()
            try:
                process.wait(timeout=stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def service(
    database_url: str,
    log: Path,
    root: Path = ROOT,
    *,
    python: tuple[str, ...] = (sys.executable, "-m", "service"),
    start_timeout: float = 60,
    stop_timeout: float = 15,
    **variables: str,
) -> AbstractContextManager[Server]:
    """`python -m service` as users run it: migrating on start, one worker unless
    `variables` say otherwise; the service of the checkout at `root` (another
    version of it, to compare with). `python` is the command that starts it
    (under valgrind, say); the timeouts are `serve`'s."""
    port = free_port()
    env = {
        "DATABASE_URL": database_url,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "MIGRATE_ON_START": "true",
        "WEB_CONCURRENCY": "1",
        # Ahead of the installed package, so that `root`'s own code runs.
        "PYTHONPATH": str(root),
    } | variables
    return serve(list(python), env, port, log, root, start_timeout, stop_timeout)


def tutorial(database_url: str, log: Path) -> AbstractContextManager[Server]:
    """The tutorial's way on the same database: `uvicorn bench.tutorial:app`, all defaults."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "bench.tutorial:app", "--port", str(port)]
    return serve(command, {"DATABASE_URL": database_url}, port, log)


def floor_tutorial(log: Path) -> AbstractContextManager[Server]:
    """Floor (a): the bare app under the plain `uvicorn` command, all defaults."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "bench.floor:app", "--port", str(port)]
    return serve(command, {}, port, log)


def bare_asgi(log: Path) -> AbstractContextManager[Server]:
    """The bare-ASGI baseline, under the server settings `python -m service` uses."""
    port = free_port()
    env = {"PORT": str(port), "HOST": "127.0.0.1", "WEB_CONCURRENCY": "1"}
    return serve([sys.executable, "-m", "bench.bare"], env, port, log)


def floor_service_settings(log: Path) -> AbstractContextManager[Server]:
    """Floor (b): the bare app under the server settings `python -m service` uses."""
    port = free_port()
    env = {"PORT": str(port), "HOST": "127.0.0.1", "WEB_CONCURRENCY": "1"}
    return serve([sys.executable, "-m", "bench.floor"], env, port, log)
