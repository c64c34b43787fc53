"""Private PostgreSQL and MariaDB servers for tests that stop and restart them,
or serve TLS.

Each lives in its own temporary directory on its own port; the shared servers
are never touched. As root, PostgreSQL runs as the `postgres` system user.
"""

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from glob import glob
from pathlib import Path

import sqlalchemy as sa

from certificates import Pair
from servers import free_port


def _wait_until_connectable(
    url: str, seconds: float = 30, check: Callable[[], None] = lambda: None
) -> None:
    """Connect until the server answers; `check`, called after each failed
    attempt, may give up sooner by raising."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    deadline = time.monotonic() + seconds
    try:
        while True:
            try:
                with engine.connect():
                    return
            except sa.exc.OperationalError:
                check()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        engine.dispose()


class PrivatePostgres:
    def __init__(self) -> None:
        binaries = sorted(glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        pg_ctl = binaries[-1] if binaries else shutil.which("pg_ctl")
        if pg_ctl is None:
            raise RuntimeError("PostgreSQL server binaries not found: apt-get install postgresql")
        self.bin = Path(pg_ctl).parent
        self.port = free_port()
        # Not under pytest's tmp_path: the postgres user must be able to reach it.
        self.directory = Path(tempfile.mkdtemp(prefix="items-pg-"))
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.directory, "postgres", "postgres")
        self._run("initdb", "-D", str(self.directory / "data"), "-U", "postgres", "-A", "trust")
        self.url = f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"
        self.options: list[str] = []

    def _run(self, program: str, *arguments: str) -> None:
        subprocess.run(
            [*self.as_user, str(self.bin / program), *arguments],
            check=True,
            capture_output=True,
        )

    def use_tls(self, server: Pair | None, ca: Path | None = None) -> None:
        """From the next start, serve TLS with `server`'s certificate, and check
        client certificates against `ca`; None: no TLS."""
        self.options = []
        if server is None:
            return
        files = _copied([server.certificate, server.key, *filter(None, [ca])], self.directory)
        if self.as_user:
            for path in files:
                shutil.chown(path, "postgres", "postgres")
        self.options = ["-c ssl=on", f"-c ssl_cert_file={files[0]}", f"-c ssl_key_file={files[1]}"]
        if ca is not None:
            self.options.append(f"-c ssl_ca_file={files[2]}")

    def start(self) -> None:
        options = " ".join(
            [f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1", *self.options]
        )
        self._run(
            "pg_ctl", "-D", str(self.directory / "data"), "-l", str(self.directory / "log"),
            "-o", options, "-w", "start",
        )  # fmt: skip
        _wait_until_connectable(self.url)

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.directory / "data"), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        subprocess.run(
            [*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.directory / "data"),
             "-m", "immediate", "stop"],
            capture_output=True,
        )  # fmt: skip
        shutil.rmtree(self.directory, ignore_errors=True)


class PrivateMariaDB:
    def __init__(self) -> None:
        install = shutil.which("mariadb-install-db")
        self.mariadbd = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        if install is None or not Path(self.mariadbd).exists():
            raise RuntimeError("MariaDB server binaries not found: apt-get install mariadb-server")
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="items-mariadb-"))
        subprocess.run(
            [install, "--no-defaults", f"--datadir={self.directory / 'data'}",
             "--auth-root-authentication-method=normal", "--skip-test-db", *self._user()],
            check=True,
            capture_output=True,
        )  # fmt: skip
        self.url = f"mysql+mysqldb://root@127.0.0.1:{self.port}/mysql"
        self.process: subprocess.Popen[bytes] | None = None
        self.options: list[str] = []

    def _user(self) -> list[str]:
        return ["--user=root"] if os.geteuid() == 0 else []

    def use_tls(self, server: Pair | None, ca: Path | None = None) -> None:
        """From the next start, serve TLS with `server`'s certificate, and check
        client certificates against `ca`; None: no TLS."""
        self.options = []
        if server is None:
            return
        files = _copied([server.certificate, server.key, *filter(None, [ca])], self.directory)
        self.options = [f"--ssl-cert={files[0]}", f"--ssl-key={files[1]}"]
        if ca is not None:
            self.options.append(f"--ssl-ca={files[2]}")

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.mariadbd, "--no-defaults", f"--datadir={self.directory / 'data'}",
             f"--port={self.port}", "--bind-address=127.0.0.1",
             f"--socket={self.directory / 'mysqld.sock'}",
             f"--pid-file={self.directory / 'mysqld.pid'}",
             f"--log-error={self.directory / 'error.log'}", *self._user(), *self.options],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _wait_until_connectable(self.url)

    def stop(self) -> None:
        assert self.process is not None
        self.process.terminate()
        self.process.wait(timeout=60)
        self.process = None

    def remove(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


def _copied(files: list[Path], directory: Path) -> list[Path]:
    """`files` copied into `directory`, each readable by its owner only (as a
    server wants its key)."""
    copies = []
    for number, source in enumerate(files):
        copy = directory / f"tls-{number}-{source.name}"
        shutil.copyfile(source, copy)
        copy.chmod(0o600)
        copies.append(copy)
    return copies


def local_server(backend: str) -> PrivatePostgres | PrivateMariaDB:
    """A private server of `backend` started from this machine's binaries."""
    return PrivatePostgres() if backend == "postgresql" else PrivateMariaDB()
