"""Database servers in containers, started through the Docker SDK, for the
docker-* tox envs: on whatever engine DOCKER_HOST names (Docker, rootless
Docker, podman's API), from the image the team picks.

Every container carries LABEL, naming the host and process of the run that
owns it: a run removes its own at the end, and the next run on this host
removes those of a run that was killed first. Runs still going keep theirs.
"""

import contextlib
import os
import socket
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import docker
import sqlalchemy as sa
from docker.models.containers import Container

from private_servers import _wait_until_connectable
from servers import free_port

LABEL = "items-service.tests.owner"
STARTUP_SECONDS = 180


@dataclass(frozen=True)
class Kind:
    """How to run one server's official image."""

    backend: str  # the TEST_BACKEND it serves
    image_variable: str
    default_image: str
    port: int
    environment: dict[str, str]
    data: str  # the image's data directory
    url: str  # the administrator's URL; {port} is the published port

    @property
    def image(self) -> str:
        return os.environ.get(self.image_variable) or self.default_image


KINDS = {
    "postgres": Kind(
        "postgresql",
        "TEST_POSTGRES_IMAGE",
        "postgres:18",
        5432,
        # UTF8 in the C.UTF-8 locale, as Debian's server: an image whose default
        # locale is C or POSIX would make SQL_ASCII databases.
        {"POSTGRES_HOST_AUTH_METHOD": "trust", "LANG": "C.UTF-8"},
        "/var/lib/postgresql",
        "postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres",
    ),
    "mariadb": Kind(
        "mysql",
        "TEST_MARIADB_IMAGE",
        "mariadb:11.8",
        3306,
        {"MARIADB_ALLOW_EMPTY_ROOT_PASSWORD": "yes", "MARIADB_DATABASE": "test"},
        "/var/lib/mysql",
        "mysql+mysqldb://root@127.0.0.1:{port}/test",
    ),
    "mysql": Kind(
        "mysql",
        "TEST_MYSQL_IMAGE",
        "mysql:8.4",
        3306,
        {"MYSQL_ALLOW_EMPTY_PASSWORD": "yes", "MYSQL_DATABASE": "test"},
        "/var/lib/mysql",
        "mysql+mysqldb://root@127.0.0.1:{port}/test",
    ),
}


class ContainerError(Exception):
    """No engine, no image or no server: the message says what to do."""


def connect() -> docker.DockerClient:
    """A client for the engine DOCKER_HOST (or the current Docker context) names."""
    try:
        return docker.from_env()
    except docker.errors.DockerException as error:
        where = os.environ.get("DOCKER_HOST") or "the default socket (DOCKER_HOST is unset)"
        raise ContainerError(
            f"No Docker engine answers at {where}: {_reason(error)}. Start Docker, or set "
            "DOCKER_HOST to a running engine's socket: rootless Docker "
            "unix://$XDG_RUNTIME_DIR/docker.sock, podman's API (`podman system service`) "
            "unix://$XDG_RUNTIME_DIR/podman/podman.sock."
        ) from None


def _reason(error: BaseException) -> str:
    """Why, in the operating system's words where the SDK's chain of errors holds them."""
    chain: list[object] = [error]
    for current in chain:  # grows as it goes, breadth first
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        if isinstance(current, BaseException) and len(chain) < 50:
            chain += [*current.args, current.__cause__, getattr(current, "reason", None)]
    return str(error).removeprefix("Error while fetching server API version: ")


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def ended(owner: str) -> bool:
    """Whether the run an owner label names ran on this host and has ended."""
    host, _, pid = owner.rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not _running(int(pid))


def _running(pid: int) -> bool:
    if sys.platform == "win32":  # where os.kill(pid, 0) would send CTRL_C_EVENT
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    # Killed, but not yet collected by its parent: a zombie has ended too.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:  # no /proc
        return True
    return state != "Z"


def remove_leftovers(client: docker.DockerClient) -> None:
    """Remove the containers of runs on this host that have ended."""
    for container in client.containers.list(all=True, filters={"label": LABEL}):
        if ended(container.labels.get(LABEL, "")):
            _remove(container)


def _remove(container: Container) -> None:
    with contextlib.suppress(docker.errors.NotFound):
        container.remove(force=True, v=True)


@dataclass
class DatabaseContainer:
    """A server of `kind` in a container of its own, published on a free loopback port.

    With `tmpfs`, its data lives in memory and is gone when it stops; without,
    it survives stop() and start(), as a server's data survives a restart.
    """

    client: docker.DockerClient
    kind: Kind
    tmpfs: bool = True
    port: int = field(default_factory=free_port)
    container: Container | None = None

    @property
    def url(self) -> str:
        return self.kind.url.format(port=self.port)

    def start(self) -> None:
        """Start the server (the first time: create its container) and wait until it connects."""
        if self.container is None:
            self.container = self._run()
        else:
            self.container.start()
        self._wait_until_connectable()

    def _run(self) -> Container:
        image = self.kind.image
        try:
            return self.client.containers.run(
                image,
                detach=True,
                name=f"items-service-test-{uuid.uuid4().hex[:8]}",
                labels={LABEL: _owner()},
                environment=self.kind.environment,
                ports={f"{self.kind.port}/tcp": ("127.0.0.1", self.port)},
                tmpfs={self.kind.data: ""} if self.tmpfs else {},
            )
        except docker.errors.DockerException as error:
            raise ContainerError(
                f"Cannot start a container of {image} ({error}); "
                f"set {self.kind.image_variable} to an image this engine has or can pull."
            ) from None

    def _wait_until_connectable(self) -> None:
        try:
            _wait_until_connectable(self.url, STARTUP_SECONDS, check=self._check_running)
        except sa.exc.OperationalError:
            self._fail(f"accepts no connection within {STARTUP_SECONDS} s")

    def _check_running(self) -> None:
        assert self.container is not None
        self.container.reload()
        if self.container.status in ("exited", "dead"):
            self._fail("stopped")

    def _fail(self, what: str) -> None:
        assert self.container is not None
        log = self.container.logs(tail=5).decode(errors="replace").strip().replace("\n", " | ")
        raise ContainerError(f"The {self.kind.image} container {what}; its log ends: {log}")

    def stop(self) -> None:
        assert self.container is not None
        self.container.stop(timeout=60)

    def remove(self) -> None:
        if self.container is not None:
            _remove(self.container)
