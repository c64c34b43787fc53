"""Private database clusters for tests, each a context manager.

- GaleraCluster: three MariaDB Galera nodes behind a round-robin HAProxy.
- PostgresPair: a PostgreSQL primary with a synchronous streaming standby.
- PgBouncer: PgBouncer in transaction pooling mode in front of a PostgreSQL server.

Each lives in its own temporary directory on free ports. `__exit__` kills
every process it started and removes the directory, also when the test or the
start itself failed. The shared servers are never touched. As root, MariaDB
runs as the `mysql` system user, PostgreSQL and PgBouncer as `postgres`.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import sqlalchemy as sa

from certificates import Pair
from private_servers import PrivatePostgres, _wait_until_connectable
from servers import free_port

GALERA_PROVIDER = "/usr/lib/galera/libgalera_smm.so"
STANDBY_NAME = "standby1"


def _free_ports(count: int) -> list[int]:
    """`count` different free ports."""
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return list(ports)


def _wait_for(what: str, ready: Callable[[], bool], seconds: float) -> float:
    """Poll `ready` until it returns true; return the seconds it took.

    An OperationalError (cannot connect, node not ready) counts as not ready yet.
    """
    started = time.monotonic()
    deadline = started + seconds
    while True:
        try:
            if ready():
                return time.monotonic() - started
        except sa.exc.OperationalError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {seconds} s")
        time.sleep(0.1)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a process started with start_new_session, and what is left of its group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _query(url: str, sql: str) -> list[tuple[Any, ...]]:
    """Run one statement on a connection of its own, in autocommit mode."""
    # No rollback when the connection is returned: a non-primary Galera node
    # refuses even that (1047).
    engine = sa.create_engine(
        url,
        poolclass=sa.pool.NullPool,
        isolation_level="AUTOCOMMIT",
        pool_reset_on_return=None,
    )
    try:
        with engine.connect() as connection:
            result = connection.exec_driver_sql(sql)
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


class _Started:
    """A context manager that starts something and, whatever happens, removes it:
    `__exit__` as well as a start that fails halfway."""

    def _start(self) -> None:
        raise NotImplementedError

    def _remove(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self._start()
        except BaseException:
            self._remove()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._remove()


class GaleraCluster(_Started):
    """MariaDB Galera nodes replicating each other, behind a round-robin HAProxy.

    The first node bootstraps the cluster; the others join it by rsync SST.
    `node_urls` and `balancer_url` name the `mysql` database; `create_database`
    makes one on every node.
    """

    def __init__(self, nodes: int = 3) -> None:
        # /usr/sbin is not on every user's PATH.
        self.mariadbd = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        self.haproxy_binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        install = shutil.which("mariadb-install-db")
        needed = [self.mariadbd, self.haproxy_binary, GALERA_PROVIDER, shutil.which("rsync")]
        if install is None or not all(path and Path(path).exists() for path in needed):
            raise RuntimeError(
                "Galera needs mariadb-server, galera-4, rsync and haproxy: apt-get install them"
            )
        self.install = install
        # Per node: SQL, group communication, IST and SST; and one for HAProxy.
        ports = _free_ports(4 * nodes + 1)
        self.sql_ports = ports[0:nodes]
        self.galera_ports = ports[nodes : 2 * nodes]
        self.ist_ports = ports[2 * nodes : 3 * nodes]
        self.sst_ports = ports[3 * nodes : 4 * nodes]
        self.balancer_port = ports[-1]
        self.directory = Path(tempfile.mkdtemp(prefix="items-galera-"))
        self.processes: list[subprocess.Popen[bytes] | None] = [None] * nodes
        self.haproxy: subprocess.Popen[bytes] | None = None
        # mariadb://, the form a user of a MariaDB cluster may write: the
        # galera env serves and migrates through it (mysql:// is the mysql env's).
        self.node_urls = [f"mariadb://root@127.0.0.1:{port}/mysql" for port in self.sql_ports]
        self.balancer_url = f"mariadb://root@127.0.0.1:{self.balancer_port}/mysql"

    def _start(self) -> None:
        self._chown(self.directory)
        self._write_configuration()
        for node in range(len(self.processes)):
            self._launch(node, bootstrap=node == 0)
            self._wait_until_synced(node)
            if node == 0:
                # For HAProxy's health check; replicates to the nodes still to come.
                _query(self.node_urls[0], "CREATE USER haproxy@'127.0.0.1'")
        self._start_haproxy()

    def _remove(self) -> None:
        for process in [self.haproxy, *self.processes]:
            if process is not None:
                _kill_group(process)
        shutil.rmtree(self.directory, ignore_errors=True)

    def _node_directory(self, node: int) -> Path:
        return self.directory / f"node{node + 1}"

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            shutil.chown(path, "mysql", "mysql")

    def _user(self) -> list[str]:
        # Not --user=root: as root, the joiner's rsync daemon switches to `nobody`,
        # who may not write into the datadir, and every rsync SST fails.
        return ["--user=mysql"] if os.geteuid() == 0 else []

    def _write_configuration(self) -> None:
        members = ",".join(f"127.0.0.1:{port}" for port in self.galera_ports)
        for node in range(len(self.processes)):
            here = self._node_directory(node)
            (here / "data").mkdir(parents=True)
            self._chown(here)
            self._chown(here / "data")
            provider_options = ";".join(
                [
                    f"gmcast.listen_addr=tcp://127.0.0.1:{self.galera_ports[node]}",
                    f"ist.recv_addr=127.0.0.1:{self.ist_ports[node]}",
                    "gcache.size=16M",
                    # A killed node is evicted after 2-3 s, not 5-6 s; writes wait for
                    # that. Eviction needs every survivor to suspect it (suspect_timeout);
                    # inactive_timeout is how long one node waits alone for a silent
                    # peer: at 3 s, two survivors starved of CPU under load each gave
                    # the other up and were left as two non-primary halves.
                    "evs.suspect_timeout=PT2S",
                    "evs.inactive_timeout=PT8S",
                    "evs.inactive_check_period=PT0.5S",
                    "evs.keepalive_period=PT0.5S",
                ]
            )
            # A file, not --no-defaults: the SST scripts read the node's
            # settings with my_print_defaults, which would otherwise find
            # /etc/mysql/my.cnf, the shared server's.
            (here / "my.cnf").write_text(
                f"""[mysqld]
datadir = {here / "data"}
port = {self.sql_ports[node]}
bind-address = 127.0.0.1
socket = {here / "mysqld.sock"}
pid-file = {here / "mysqld.pid"}
log-error = {here / "error.log"}
skip-name-resolve
server-id = {node + 1}
innodb_buffer_pool_size = 64M
innodb_log_file_size = 16M
binlog_format = ROW
default_storage_engine = InnoDB
innodb_autoinc_lock_mode = 2
wsrep_on = ON
wsrep_provider = {GALERA_PROVIDER}
wsrep_cluster_name = items-test
wsrep_cluster_address = gcomm://{members}
wsrep_node_name = node{node + 1}
wsrep_node_address = 127.0.0.1:{self.galera_ports[node]}
wsrep_node_incoming_address = 127.0.0.1:{self.sql_ports[node]}
wsrep_sst_method = rsync
wsrep_sst_receive_address = 127.0.0.1:{self.sst_ports[node]}
wsrep_provider_options = "{provider_options}"
"""
            )
        # Only the first node needs system tables: the others get everything by SST.
        subprocess.run(
            [self.install, "--no-defaults", f"--datadir={self._node_directory(0) / 'data'}",
             "--auth-root-authentication-method=normal", "--skip-test-db", *self._user()],
            check=True,
            capture_output=True,
        )  # fmt: skip

    def _launch(self, node: int, *, bootstrap: bool) -> None:
        here = self._node_directory(node)
        self.processes[node] = subprocess.Popen(
            [self.mariadbd, f"--defaults-file={here / 'my.cnf'}", *self._user(),
             *(["--wsrep-new-cluster"] if bootstrap else [])],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Its own process group, so that killing it takes the SST scripts too.
            start_new_session=True,
        )  # fmt: skip

    def _running(self) -> list[int]:
        return [n for n, process in enumerate(self.processes) if process is not None]

    def _wait_until_synced(self, node: int, seconds: float = 90) -> float:
        """Wait until `node` is ready and synced in a cluster of every running node."""
        process = self.processes[node]
        assert process is not None, f"node{node + 1} is not running"
        size = str(len(self._running()))

        def synced() -> bool:
            if process.poll() is not None:
                log = (self._node_directory(node) / "error.log").read_text()
                raise RuntimeError(f"node{node + 1} exited:\n{log[-3000:]}")
            rows = _query(self.node_urls[node], "SHOW STATUS LIKE 'wsrep%%'")
            status = {name: value for name, value in rows}
            return (
                status.get("wsrep_ready") == "ON"
                and status.get("wsrep_local_state_comment") == "Synced"
                and status.get("wsrep_cluster_size") == size
            )

        return _wait_for(f"node{node + 1} synced in a cluster of {size}", synced, seconds)

    def _start_haproxy(self) -> None:
        servers = "\n".join(
            f"    server node{n + 1} 127.0.0.1:{port} check inter 500 fall 1 rise 1"
            for n, port in enumerate(self.sql_ports)
        )
        configuration = self.directory / "haproxy.cfg"
        configuration.write_text(
            f"""global
    stats socket {self.directory / "haproxy.sock"} mode 600 level admin
defaults
    mode tcp
    # A connection refused by a node that just died is retried on another.
    option redispatch
    retries 2
    timeout connect 2s
    timeout client 1h
    timeout server 1h
listen galera
    bind 127.0.0.1:{self.balancer_port}
    balance roundrobin
    # Logs in as `haproxy` and quits: a node must answer MariaDB's protocol, not
    # only accept TCP. A node that is up but not in the primary component
    # still passes (and answers 1047).
    option mysql-check user haproxy post-41
{servers}
"""
        )
        self.haproxy = subprocess.Popen(
            [self.haproxy_binary, "-f", str(configuration), "-db"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._wait_until_balanced()

    def balancer_state(self) -> dict[str, str]:
        """HAProxy's view of each node, from its stats socket: {"node1": "UP", ...}."""
        with socket.socket(socket.AF_UNIX) as stats:
            stats.connect(str(self.directory / "haproxy.sock"))
            stats.sendall(b"show stat\n")
            answer = b""
            while chunk := stats.recv(65536):
                answer += chunk
        rows = [line.split(",") for line in answer.decode().splitlines()[1:] if line]
        return {row[1]: row[17] for row in rows if row[1].startswith("node")}

    def _wait_until_balanced(self, seconds: float = 15) -> None:
        """Wait until HAProxy sends to exactly the running nodes."""
        running = self._running()
        expected = {
            f"node{n + 1}": "UP" if n in running else "DOWN" for n in range(len(self.processes))
        }

        def agrees() -> bool:
            assert self.haproxy is not None and self.haproxy.poll() is None, "HAProxy exited"
            try:
                state = self.balancer_state()
            except OSError:  # not listening yet
                return False
            return {name: status.split()[0] for name, status in state.items()} == expected

        _wait_for(f"HAProxy sees {expected}", agrees, seconds)

    def size(self) -> int:
        """The cluster size, as the first running node reports it."""
        rows = _query(self.node_urls[self._running()[0]], "SHOW STATUS LIKE 'wsrep_cluster_size'")
        return int(rows[0][1])

    def kill_node(self, node: int) -> float:
        """SIGKILL a node, as in a crash; return the seconds until the others
        evicted it (so that writes go through again) and HAProxy took it out."""
        process = self.processes[node]
        assert process is not None, f"node{node + 1} is not running"
        killed = time.monotonic()
        _kill_group(process)
        self.processes[node] = None
        for survivor in self._running():
            self._wait_until_synced(survivor)
        self._wait_until_balanced()
        return time.monotonic() - killed

    def start_node(self, node: int) -> float:
        """Start a killed node again; return the seconds until it is synced
        (after a state transfer) and HAProxy sends to it."""
        assert self.processes[node] is None, f"node{node + 1} is running"
        started = time.monotonic()
        self._launch(node, bootstrap=False)
        self._wait_until_synced(node)
        self._wait_until_balanced()
        return time.monotonic() - started

    def create_database(self, name: str) -> None:
        """Create a database, and wait until every running node has it."""
        running = self._running()
        _query(self.node_urls[running[0]], f"CREATE DATABASE {name}")
        for node in running:
            # A causal read waits until the node applied everything committed before.
            engine = sa.create_engine(
                self.node_urls[node],
                poolclass=sa.pool.NullPool,
                connect_args={"init_command": "SET SESSION wsrep_sync_wait = 1"},
            )
            try:
                with engine.connect() as connection:
                    found = connection.execute(
                        sa.text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :n"),
                        {"n": name},
                    )
                    assert found.all(), f"node{node + 1} has no database {name}"
            finally:
                engine.dispose()


class PostgresPair(_Started):
    """A PostgreSQL primary with a synchronous streaming standby.

    The primary is a PrivatePostgres; the standby a pg_basebackup of it on its
    own port, replicating as `standby1`. Only the primary is configured to wait
    for the standby, so a promoted standby commits on its own.
    """

    def __init__(self) -> None:
        self.primary = PrivatePostgres()
        self.primary_url = self.primary.url
        self.standby_port = free_port()
        self.standby_url = f"postgresql+psycopg2://postgres@127.0.0.1:{self.standby_port}/postgres"
        self.hosts = f"127.0.0.1:{self.primary.port},127.0.0.1:{self.standby_port}"
        # libpq tries each host in turn and keeps the first that accepts writes.
        self.read_write_url = (
            "postgresql+psycopg2://postgres@/postgres?"
            f"host=127.0.0.1:{self.primary.port}&host=127.0.0.1:{self.standby_port}"
            "&target_session_attrs=read-write"
        )
        self.standby_data = self.primary.directory / "standby"

    def _start(self) -> None:
        # PostgreSQL 15's defaults already stream: wal_level=replica,
        # max_wal_senders=10, hot_standby=on; and initdb -A trust lets
        # 127.0.0.1 connect for replication.
        self.primary.start()
        self.primary._run(
            "pg_basebackup", "-D", str(self.standby_data), "-R", "-c", "fast",
            "-d", f"host=127.0.0.1 port={self.primary.port} user=postgres "
                  f"application_name={STANDBY_NAME}",
        )  # fmt: skip
        options = (
            f"-p {self.standby_port} -k {self.primary.directory} -c listen_addresses=127.0.0.1"
        )
        self.primary._run(
            "pg_ctl", "-D", str(self.standby_data), "-l", str(self.standby_data / "log"),
            "-o", options, "-w", "start",
        )  # fmt: skip
        _wait_until_connectable(self.standby_url)
        # Set only now, so that the base backup did not copy it to the standby.
        _query(self.primary_url, f"ALTER SYSTEM SET synchronous_standby_names = '{STANDBY_NAME}'")
        _query(self.primary_url, "SELECT pg_reload_conf()")
        _wait_for(f"{STANDBY_NAME} is a synchronous standby", self._standby_is_sync, 30)

    def _remove(self) -> None:
        subprocess.run(
            [*self.primary.as_user, str(self.primary.bin / "pg_ctl"), "-D", str(self.standby_data),
             "-m", "immediate", "-w", "stop"],
            capture_output=True,
        )  # fmt: skip
        self.primary.remove()

    def _standby_is_sync(self) -> bool:
        rows = _query(
            self.primary_url,
            f"SELECT sync_state FROM pg_stat_replication WHERE application_name = '{STANDBY_NAME}'",
        )
        return rows == [("sync",)]

    def kill_primary(self) -> None:
        """SIGKILL the primary's postmaster, as in a crash; its children follow it."""
        pid = int((self.primary.directory / "data" / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)

        def refused() -> bool:
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", self.primary.port)) != 0

        _wait_for("the primary refuses connections", refused, 10)

    def promote_standby(self) -> float:
        """Promote the standby; return the seconds until it accepts writes."""
        started = time.monotonic()
        self.primary._run("pg_ctl", "-D", str(self.standby_data), "-w", "promote")
        _wait_for(
            "the promoted standby accepts writes",
            lambda: _query(self.standby_url, "SELECT pg_is_in_recovery()")[0][0] is False,
            30,
        )
        return time.monotonic() - started


class PgBouncer(_Started):
    """PgBouncer in transaction pooling mode, forwarding any database name to one server.

    `url` names the `postgres` database. User `postgres` may also use the admin
    console, database `pgbouncer` (SHOW POOLS, ...), but only with a plain
    DBAPI connection in autocommit mode: it refuses SQLAlchemy's BEGIN. With
    `tls`, clients must connect over TLS, to that certificate.
    """

    def __init__(self, server_host: str, server_port: int, tls: Pair | None = None) -> None:
        pgbouncer = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        if not Path(pgbouncer).exists():
            raise RuntimeError("PgBouncer not found: apt-get install pgbouncer")
        self.pgbouncer = pgbouncer
        self.server_host = server_host
        self.server_port = server_port
        self.port = free_port()
        self.url = f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"
        # PgBouncer refuses to run as root: as root it runs as `postgres`.
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.directory = Path(tempfile.mkdtemp(prefix="items-pgbouncer-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.tls = tls

    def _start(self) -> None:
        if self.as_user:
            shutil.chown(self.directory, "postgres", "postgres")
        (self.directory / "userlist.txt").write_text('"postgres" ""\n')
        # postgres logs in without a password, as on the server; other
        # accounts with the password `allow` gives PgBouncer.
        (self.directory / "hba.conf").write_text(
            "host all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 md5\n"
        )
        client_tls = ""
        if self.tls is not None:
            for source, name in ((self.tls.certificate, "tls.pem"), (self.tls.key, "tls.key")):
                shutil.copyfile(source, self.directory / name)
                (self.directory / name).chmod(0o600)
                if self.as_user:
                    shutil.chown(self.directory / name, "postgres", "postgres")
            client_tls = (
                "client_tls_sslmode = require\n"
                f"client_tls_cert_file = {self.directory / 'tls.pem'}\n"
                f"client_tls_key_file = {self.directory / 'tls.key'}\n"
            )
        configuration = self.directory / "pgbouncer.ini"
        configuration.write_text(
            f"""[databases]
* = host={self.server_host} port={self.server_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = hba
auth_hba_file = {self.directory / "hba.conf"}
auth_file = {self.directory / "userlist.txt"}
admin_users = postgres
pool_mode = transaction
max_client_conn = 500
default_pool_size = 20
ignore_startup_parameters = extra_float_digits,options
logfile = {self.directory / "pgbouncer.log"}
pidfile = {self.directory / "pgbouncer.pid"}
{client_tls}"""
        )
        self.process = subprocess.Popen(
            [*self.as_user, self.pgbouncer, str(configuration)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait_until_connectable(self.url + ("?sslmode=require" if self.tls else ""))

    def allow(self, user: str, password: str) -> None:
        """Let an account the server has log in through PgBouncer, with its password."""
        quoted = password.replace('"', '""')
        with (self.directory / "userlist.txt").open("a") as userlist:
            userlist.write(f'"{user}" "{quoted}"\n')
        self._admin("RELOAD")

    def _admin(self, command: str) -> None:
        # The admin console refuses SQLAlchemy's BEGIN: a bare connection in
        # autocommit. Imported here: the Galera envs have no psycopg2.
        import psycopg2

        connection = psycopg2.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="pgbouncer"
        )
        try:
            connection.autocommit = True
            connection.cursor().execute(command)
        finally:
            connection.close()

    def _remove(self) -> None:
        if self.process is not None:
            _kill_group(self.process)
        shutil.rmtree(self.directory, ignore_errors=True)
