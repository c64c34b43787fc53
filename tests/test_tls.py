"""TLS to the database as the URL asks for it, or no connection: on private
PostgreSQL and MariaDB servers serving certificates the tests make
(tests/certificates.py), over loopback only."""

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from certificates import CLIENT_USER, Certificates, make_certificates
from clusters import PgBouncer
from conftest import BACKEND, settings_for
from private_servers import PrivateMariaDB, PrivatePostgres, local_server
from servers import run_to_exit
from service import migrations
from service.app import create_app
from service.db.backends import backend_for
from service.db.engine import create_engine
from service.db.urls import DatabaseURLError, parse_database_url

pytestmark = [
    pytest.mark.backends("postgresql", "mysql"),
    # The servers are the tests' own: once per backend, not again in each cluster's env.
    pytest.mark.cluster(""),
]

# What each backend's URL says to ask for TLS: the certificate and name
# verified; the certificate only; encrypted, nothing verified. (SQLite has
# none: there, every test here is deselected.)
MODES: dict[str, str] = {
    "postgresql": {
        "verified": "sslmode=verify-full",
        "ca only": "sslmode=verify-ca",
        "encrypted": "sslmode=require",
    },
    "mysql": {
        "verified": "ssl_mode=VERIFY_IDENTITY",
        "ca only": "ssl_mode=VERIFY_CA",
        "encrypted": "ssl_mode=REQUIRED",
    },
}.get(BACKEND, {})
CA, CERT, KEY = {
    "postgresql": ("sslrootcert", "sslcert", "sslkey"),
    "mysql": ("ssl_ca", "ssl_cert", "ssl_key"),
}.get(BACKEND, ("", "", ""))
DATABASE = "items"


class TLSServer:
    """A private server whose certificate (or none) a test picks; restarted only to change it."""

    def __init__(self, server: PrivatePostgres | PrivateMariaDB, certificates: Certificates):
        self.server = server
        self.certificates = certificates
        self.serving: str | None = None
        self.migrated = False

    def serve(self, certificate: str | None) -> None:
        """Serve `certificate` ("server", "wrong_name"), or no TLS at all (None)."""
        if certificate == self.serving:
            return
        self.server.stop()
        pair = None if certificate is None else getattr(self.certificates, certificate)
        self.server.use_tls(pair, self.certificates.ca)
        self.server.start()
        self.serving = certificate

    @property
    def port(self) -> int:
        return self.server.port

    def url(self, mode: str | None, ca: Path | None = None, *, user: str | None = None) -> str:
        """The database's URL with the TLS options of `mode` (a key of MODES) and `ca`."""
        url = sa.make_url(self.server.url).set(database=DATABASE)
        if user is not None:
            url = url.set(username=user)
        options = [MODES[mode]] if mode else []
        if ca is not None:
            options.append(f"{CA}={ca}")
        base = url.render_as_string(hide_password=False)
        return base + ("?" + "&".join(options) if options else "")

    def client_certificate(self) -> str:
        pair = self.certificates.client
        return f"&{CERT}={pair.certificate}&{KEY}={pair.key}"


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSServer]:
    certificates = make_certificates(tmp_path_factory.mktemp("certificates"))
    server = local_server(BACKEND)
    try:
        if isinstance(server, PrivatePostgres):
            # The account whose client certificate the server checks (its common name).
            hba = server.directory / "data" / "pg_hba.conf"
            hba.write_text(f"hostssl all {CLIENT_USER} 127.0.0.1/32 cert\n" + hba.read_text())
        server.use_tls(certificates.server, certificates.ca)
        server.start()
        admin(server.url, f"CREATE DATABASE {DATABASE}")
        if isinstance(server, PrivatePostgres):
            admin(server.url, f"CREATE ROLE {CLIENT_USER} LOGIN")
        else:
            admin(server.url, f"CREATE USER {CLIENT_USER}@'127.0.0.1' REQUIRE X509")
            admin(server.url, f"GRANT ALL ON {DATABASE}.* TO {CLIENT_USER}@'127.0.0.1'")
        running = TLSServer(server, certificates)
        running.serving = "server"
        yield running
    finally:
        server.remove()


def admin(url: str, statement: str) -> None:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(statement)
    finally:
        engine.dispose()


def check(url: str, **variables: str) -> dict[str, str]:
    """`items-service check`'s lines by the name of the check."""
    result = run_to_exit(sys.executable, "-m", "service", "check", DATABASE_URL=url, **variables)
    assert result.stderr == ""
    return {line[9:].split(":")[0]: line for line in result.stdout.splitlines()}


def start(url: str, **variables: str) -> list[str]:
    """`python -m service`'s lines when it stops at once, as it must here."""
    result = run_to_exit(sys.executable, "-m", "service", DATABASE_URL=url, **variables)
    assert result.returncode != 0, result.stderr
    return result.stderr.strip().splitlines()


def server_side_encryption(connection: sa.Connection) -> str:
    """The TLS version of this session as the server sees it; "" in plain text."""
    if BACKEND == "postgresql":
        sql = "SELECT coalesce(max(version), '') FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        return str(connection.exec_driver_sql(sql).scalar())
    row = connection.exec_driver_sql("SHOW SESSION STATUS LIKE 'Ssl_version'").one()
    return str(row[1])


def test_verified_tls_serves_and_every_connection_is_encrypted(tls_server: TLSServer) -> None:
    tls_server.serve("server")
    url = tls_server.url("verified", tls_server.certificates.ca)
    engine = create_engine(parse_database_url(url), settings_for(url))
    migrations.upgrade_to_head(engine)
    engine.dispose()
    settings = settings_for(url, migrate_on_start=False, db_pool_size=3)
    with TestClient(create_app(settings)) as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 200
        assert set(ready.json()) == {"status", "database", "revision"}
        created = client.post("/items/", json={"name": "Sealed", "price": 1.5})
        assert created.status_code == 201
        assert client.get(f"/items/{created.json()['id']}").json() == created.json()
        database: Any = client.app.state.database  # type: ignore[attr-defined]
        # Every pooled connection, held at once so that none is reused.
        connections = [database.engine.connect() for _ in range(3)]
        try:
            versions = {server_side_encryption(connection) for connection in connections}
        finally:
            for connection in connections:
                connection.close()
    assert versions and all(version.startswith("TLSv1.") for version in versions), versions


@pytest.mark.parametrize(
    ("mode", "with_ca", "found"),
    [
        ("verified", True, "the server's certificate and name verified"),
        ("encrypted", False, "the server's certificate not verified"),
    ],
)
def test_check_says_how_the_connection_is_encrypted(
    tls_server: TLSServer, mode: str, with_ca: bool, found: str
) -> None:
    tls_server.serve("server")
    url = tls_server.url(mode, tls_server.certificates.ca if with_ca else None)
    encryption = check(url)["encryption"]
    assert encryption.startswith("ok       encryption: TLSv1.")
    assert f"to 127.0.0.1:{tls_server.port}; {found} ({MODES[mode]})" in encryption


@pytest.mark.backends("postgresql")
@pytest.mark.parametrize(
    ("options", "found", "fix"),
    [
        (
            "sslmode=disable",
            "none: plain text to db.example:{port}, across the network (sslmode=disable): "
            "anyone on the way can read it",
            "turn TLS on at the server and ask for it in the URL: "
            "sslmode=verify-full&sslrootcert=/path/to/ca.pem",
        ),
        (
            "sslmode=require",
            "to db.example:{port}; the server's certificate not verified (sslmode=require): a "
            "machine on the way could pose as the server",
            "verify it: sslmode=verify-full&sslrootcert=/path/to/ca.pem",
        ),
    ],
)
def test_check_warns_of_what_others_on_the_network_could_do(
    tls_server: TLSServer, options: str, found: str, fix: str
) -> None:
    tls_server.serve("server")
    # A name that is not this machine's, while libpq connects to loopback all the same.
    url = sa.make_url(tls_server.url(None)).set(host="db.example")
    url = url.update_query_dict({"hostaddr": "127.0.0.1"})
    encryption = check(f"{url.render_as_string(False)}&{options}")["encryption"]
    assert encryption.startswith("warning  encryption: ")
    assert encryption.endswith(f"{found.format(port=tls_server.port)}; fix: {fix}")


def test_a_certificate_from_another_ca_is_refused(tls_server: TLSServer) -> None:
    tls_server.serve("server")
    url = tls_server.url("verified", tls_server.certificates.other_ca)
    [line] = start(url)
    assert line.startswith("error: cannot connect to ")
    assert line.endswith(
        f"fix: the server's certificate is not signed by the CA in {CA}, or has expired: "
        f"point {CA} at the CA that signed it"
    )
    connection = check(url)["connection"]
    assert connection.startswith("problem  connection: cannot connect to ")
    assert f"fix: the server's certificate is not signed by the CA in {CA}" in connection


@pytest.mark.backends("postgresql")
def test_verifying_without_naming_the_ca_says_to_name_it(
    tls_server: TLSServer, tmp_path: Path
) -> None:
    tls_server.serve("server")
    # A home without ~/.postgresql/root.crt, where libpq looks when no CA is named.
    [line] = start(tls_server.url("verified"), HOME=str(tmp_path))
    assert line.endswith(
        "fix: name the CA that signed the server's certificate: sslrootcert=/path/to/ca.pem"
    )


def test_a_client_certificate_is_presented_where_the_server_asks_for_one(
    tls_server: TLSServer,
) -> None:
    tls_server.serve("server")
    url = tls_server.url("verified", tls_server.certificates.ca, user=CLIENT_USER)
    assert check(url)["connection"].startswith("problem  connection: cannot connect to ")
    with_certificate = url + tls_server.client_certificate()
    found = check(with_certificate)
    assert found["connection"].startswith("ok ")
    assert found["encryption"].startswith("ok       encryption: TLSv1.")
    engine = sa.create_engine(parse_database_url(with_certificate), poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        if BACKEND == "postgresql":
            sql = "SELECT client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
            assert connection.exec_driver_sql(sql).scalar() == f"/CN={CLIENT_USER}"
        else:
            assert connection.exec_driver_sql("SELECT current_user()").scalar() == (
                f"{CLIENT_USER}@127.0.0.1"
            )
    engine.dispose()


def test_a_server_that_stops_offering_tls_is_503_never_plain_text(tls_server: TLSServer) -> None:
    tls_server.serve("server")
    if not tls_server.migrated:
        url = tls_server.url("verified", tls_server.certificates.ca)
        engine = create_engine(parse_database_url(url), settings_for(url))
        migrations.upgrade_to_head(engine)
        engine.dispose()
        tls_server.migrated = True
    url = tls_server.url("encrypted")
    with TestClient(create_app(settings_for(url, migrate_on_start=False))) as client:
        assert client.get("/items/").status_code == 200
        tls_server.serve(None)
        for _ in range(3):
            response = client.get("/items/")
            assert response.status_code == 503, response.text
        tls_server.serve("server")
        assert client.get("/items/").status_code == 200


def test_a_certificate_for_another_name_is_refused(tls_server: TLSServer) -> None:
    tls_server.serve("wrong_name")
    url = tls_server.url("verified", tls_server.certificates.ca)
    [line] = start(url)
    assert line.startswith("error: cannot connect to ")
    assert line.endswith(
        "fix: the server's certificate does not name the host in the URL: connect by a "
        "name the certificate holds (its subjectAltName)"
    )
    if BACKEND == "postgresql":
        # verify-ca checks the CA alone (MariaDB's client library checks the name under
        # VERIFY_CA too, MySQL's does not).
        encryption = check(tls_server.url("ca only", tls_server.certificates.ca))["encryption"]
        assert "the server's certificate verified, not its name (sslmode=verify-ca)" in encryption


@pytest.mark.parametrize("mode", ["encrypted", "verified"])
@pytest.mark.parametrize("migrate_on_start", ["true", "false"])
def test_a_server_without_tls_is_refused_wherever_tls_is_asked_for(
    tls_server: TLSServer, mode: str, migrate_on_start: str
) -> None:
    tls_server.serve(None)
    url = tls_server.url(mode, tls_server.certificates.ca if mode == "verified" else None)
    [line] = start(url, MIGRATE_ON_START=migrate_on_start)
    assert line.startswith("error: cannot connect to ")
    assert "fix: turn TLS on at the server (" in line
    if migrate_on_start == "true":
        found = check(url)
        assert found["connection"].startswith("problem  connection: cannot connect to ")
        assert "fix: turn TLS on at the server (" in found["connection"]
        assert "encryption" not in found


def test_plain_text_on_this_machine_is_reported_as_such(tls_server: TLSServer) -> None:
    tls_server.serve(None)
    encryption = check(tls_server.url(None))["encryption"]
    assert encryption == (
        f"ok       encryption: none: plain text to 127.0.0.1:{tls_server.port}, on this machine"
    )


@pytest.mark.backends("postgresql")
@pytest.mark.cluster("pgbouncer")
def test_tls_to_pgbouncer_serves_and_check_says_it_reaches_the_pooler(
    tmp_path: Path, database_url: str, session_cluster: PgBouncer
) -> None:
    certificates = make_certificates(tmp_path)
    server = (session_cluster.server_host, session_cluster.server_port)
    with PgBouncer(*server, tls=certificates.server) as bouncer:
        base = sa.make_url(database_url).set(port=bouncer.port).render_as_string(False)
        url = f"{base}?sslmode=verify-full&sslrootcert={certificates.ca}"
        with TestClient(create_app(settings_for(url, migrate_on_start=False))) as client:
            created = client.post("/items/", json={"name": "Pooled", "price": 2})
            assert created.status_code == 201
            assert client.get("/health/ready").status_code == 200
            clients = pgbouncer_clients(bouncer, sa.make_url(database_url).database)
        encryption = check(url)["encryption"]
    assert clients and all(tls.startswith("TLSv1.") for tls in clients), clients
    assert encryption.startswith("ok       encryption: TLSv1.")
    assert "the server's certificate and name verified (sslmode=verify-full)" in encryption
    assert "this is the hop to the pooler" in encryption


def pgbouncer_clients(bouncer: PgBouncer, database: str | None) -> list[str]:
    """The TLS of each client connection PgBouncer holds to `database`, as it sees it."""
    import psycopg2

    connection = psycopg2.connect(
        host="127.0.0.1", port=bouncer.port, user="postgres", dbname="pgbouncer", sslmode="require"
    )
    try:
        connection.autocommit = True
        cursor = connection.cursor()
        cursor.execute("SHOW CLIENTS")
        names = [column.name for column in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        connection.close()
    return [str(row["tls"]) for row in rows if row["database"] == database]


# Options a driver would not honour as asked, each refused before connecting
# with what to do; `{file}` is a file that exists.
REFUSED: list[tuple[str, str]] = {
    "postgresql": [
        ("sslmode=bogus", "sslmode=bogus, which libpq does not know: use one of disable,"),
        ("sslrootcert={file}", "may be in plain text without a word: add sslmode=verify-full"),
        ("sslmode=verify-full&sslrootcert=/nonexistent/ca.pem", "no such file"),
        ("sslmode=require&sslcert={file}", "a client certificate needs both"),
        ("sslmode=require&sslmode=disable", "gives sslmode more than once"),
    ],
    "mysql": [
        ("ssl_mode=PREFERRED", "leaves the connection in plain text without a word"),
        ("ssl_mode=bogus", "ssl_mode=BOGUS, which MySQL does not know"),
        ("ssl_check_hostname=true", "ssl_check_hostname, which mysqlclient would ignore"),
        ("ssl_ca={file}", "ssl_ca with no ssl_mode: add ssl_mode=VERIFY_IDENTITY"),
        ("ssl_mode=DISABLED&ssl_ca={file}", "ssl_ca with ssl_mode=DISABLED"),
        ("ssl_mode=REQUIRED&ssl_ca={file}", "a CA with ssl_mode=REQUIRED"),
        ("ssl_mode=VERIFY_IDENTITY&ssl_ca=/nonexistent/ca.pem", "no such file"),
        ("ssl_mode=REQUIRED&ssl_key={file}", "a client certificate needs both"),
    ],
}.get(BACKEND, [])


@pytest.mark.parametrize(("options", "refusal"), REFUSED)
def test_options_the_driver_would_not_honour_are_refused_before_connecting(
    tmp_path: Path, options: str, refusal: str
) -> None:
    (tmp_path / "ca.pem").write_text("not read before connecting\n")
    # A server that is not there: nothing gets as far as connecting.
    url = f"{BACKEND}://items:s3cret-pw@127.0.0.1:1/items?" + options.format(
        file=tmp_path / "ca.pem"
    )
    with pytest.raises(DatabaseURLError) as refused:
        backend_for(parse_database_url(url), settings_for(url))
    assert str(refused.value).startswith("the URL")
    assert refusal in str(refused.value)
    assert "s3cret-pw" not in str(refused.value)


def test_the_service_stops_on_such_an_option_with_one_line() -> None:
    options, refusal = REFUSED[0]
    [line] = start(f"{BACKEND}://items:s3cret-pw@127.0.0.1:1/items?{options}")
    assert line.startswith("error: the URL") and refusal in line
    assert "s3cret-pw" not in line
