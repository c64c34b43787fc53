"""What the docker-* envs' containers (containers.py) do without an engine: a
missing engine is one line saying what to do, and a run killed is told from
one still going, whose container the next run must leave alone."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from containers import ended

ROOT = Path(__file__).parent.parent


def test_no_engine_answering_is_one_line_saying_what_to_do_and_a_failed_run(
    tmp_path: Path,
) -> None:
    socket_path = f"unix://{tmp_path}/docker.sock"
    variables = {"TEST_BACKEND": "postgresql", "TEST_CONTAINER": "postgres", "TEST_CLUSTER": ""}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests/test_health_and_docs.py"],
        env=os.environ | variables | {"DOCKER_HOST": socket_path},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 3, output
    assert "Traceback" not in output
    said = [line for line in output.splitlines() if "Docker" in line]
    assert len(said) == 1, output
    assert (
        f"No Docker engine answers at {socket_path}: No such file or directory. "
        "Start Docker, or set DOCKER_HOST to a running engine's socket" in said[0]
    )


def test_a_run_killed_is_told_from_one_still_going() -> None:
    host = socket.gethostname()
    killed = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    killed.kill()
    # Not yet collected by its parent (this process): a zombie, which has ended too.
    deadline = time.monotonic() + 10
    while not ended(f"{host}:{killed.pid}"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    killed.wait()
    assert ended(f"{host}:{killed.pid}")
    assert not ended(f"{host}:{os.getpid()}")
    assert not ended(f"{host}-elsewhere:{killed.pid}")
