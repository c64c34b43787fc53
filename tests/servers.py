"""A real `python -m service` process on a free port, for tests that need one."""

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx2 as httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def service_env(**variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "DB_"))}
    return env | variables


def wait_until_answers(
    url: str, process: subprocess.Popen[str], seconds: float = 60, log: IO[str] | None = None
) -> None:
    """Poll `url` until it answers 200; fail if the process exits or time runs out.
    Its output is in `log` if given, else on its stdout pipe."""
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None:
            if log is None:
                raise AssertionError(process.communicate()[0])
            log.seek(0)
            raise AssertionError(log.read())
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"no answer from {url} within {seconds} s"
        time.sleep(0.1)


def run_to_exit(*command: str, **variables: str) -> subprocess.CompletedProcess[str]:
    """Run `command` from the repository root with the service's variables, to its end."""
    return subprocess.run(
        command, env=service_env(**variables), capture_output=True, text=True, timeout=60,
        cwd=Path(__file__).parent.parent,
    )  # fmt: skip


@contextmanager
def running_service(cwd: Path, **variables: str) -> Iterator[tuple[str, list[str]]]:
    """Start the service, wait until it answers /health, and stop it afterwards.

    Yields its base URL and a list that holds its output once it has stopped
    (written to a file meanwhile: a pipe nobody reads would fill and stall it).
    It listens on 127.0.0.1 unless `HOST` says otherwise.
    """
    port = free_port()
    env = service_env(**({"HOST": "127.0.0.1"} | variables), PORT=str(port))
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "service"],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        base = f"http://127.0.0.1:{port}"
        output: list[str] = []
        try:
            wait_until_answers(f"{base}/health", process, log=log)
            yield base, output
        finally:
            process.terminate()
            process.wait(timeout=15)
            log.seek(0)
            output.append(log.read())


def answer_on(client: socket.socket, raw_request: bytes) -> bytes:
    """Send one request on a kept-alive connection; its whole answer."""
    client.sendall(raw_request)
    received = b""
    while b"\r\n\r\n" not in received:
        received += client.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(
        next(
            line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
        ).split(b":")[1]
    )
    while len(body) < length:
        body += client.recv(65536)
    return head + b"\r\n\r\n" + body
