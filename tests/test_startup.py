"""`python -m service` as users run it: a real process, a real port."""

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import httpx2 as httpx
import pytest
import sqlalchemy as sa

from conftest import BACKEND, run_as_admin, server_account, triggers_allowed
from servers import free_port, run_to_exit, running_service, service_env, wait_until_answers
from service import migrations

PASSWORD = "p@ss:w/rd%?x"


def test_serves_a_migrated_database_from_any_directory(tmp_path: Path, empty_database: str) -> None:
    with running_service(tmp_path, DATABASE_URL=empty_database) as (base, _):
        ready = httpx.get(f"{base}/health/ready").json()
        assert ready["status"] == "ok" and ready["revision"] == migrations.head_revision()
        created = httpx.post(f"{base}/items/", json={"name": "Kept", "price": 1.25})
        assert created.status_code == 201
    with running_service(tmp_path, DATABASE_URL=empty_database) as (base, _):
        assert httpx.get(f"{base}/items/").json() == [created.json()]


def test_default_database_is_items_db_in_the_working_directory(tmp_path: Path) -> None:
    with running_service(tmp_path) as (base, _):
        assert httpx.get(f"{base}/health/ready").json()["database"] == "sqlite"
    assert (tmp_path / "items.db").exists()


def test_migrate_on_start_off_leaves_the_schema_alone(tmp_path: Path, empty_database: str) -> None:
    with running_service(tmp_path, DATABASE_URL=empty_database, MIGRATE_ON_START="false") as (
        base,
        _,
    ):
        assert httpx.get(f"{base}/health/ready").status_code == 503
        assert httpx.get(f"{base}/items/").status_code == 503


def test_access_log_is_on_unless_turned_off(tmp_path: Path, empty_database: str) -> None:
    for variables, logged in (({}, True), ({"ACCESS_LOG": "false"}, False)):
        with running_service(tmp_path, DATABASE_URL=empty_database, **variables) as (base, output):
            assert httpx.get(f"{base}/items/?limit=7").status_code == 200
        assert ("GET /items/?limit=7 HTTP/1.1" in output[0]) is logged


def test_one_worker_keeps_to_one_cpu(tmp_path: Path, empty_database: str) -> None:
    allowed = os.sched_getaffinity(0)
    port = free_port()
    env = service_env(HOST="127.0.0.1", PORT=str(port), DATABASE_URL=empty_database)
    command = [sys.executable, "-m", "service"]
    with subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL) as process:
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until_answers(f"{base}/health", process)
            assert httpx.get(f"{base}/items/").status_code == 200
            threads = os.listdir(f"/proc/{process.pid}/task")
            assert len(threads) > 1  # the event loop and the database worker threads
            cpus = {frozenset(os.sched_getaffinity(int(thread))) for thread in threads}
        finally:
            process.terminate()
    assert cpus == {frozenset({min(allowed)})}


def test_a_process_that_never_closes_its_database_still_exits(database_url: str) -> None:
    # As after a forced exit (a second Ctrl-C), when uvicorn skips the app's shutdown.
    script = (
        "from service.db.runtime import Database\n"
        "from service.db.urls import parse_database_url\n"
        "from service.settings import Settings\n"
        f"Database(parse_database_url({database_url!r}), Settings())\n"
    )
    finished = subprocess.run(
        [sys.executable, "-c", script], cwd=Path(__file__).parent.parent, timeout=15
    )
    assert finished.returncode == 0


@pytest.mark.parametrize(
    "url",
    [
        f"oracle://scott:{quote(PASSWORD, safe='')}@db/orcl",
        f"postgresql://scott:{PASSWORD}@db:notaport/items",
        "postgresql+asyncpg://scott:s3cret-pw@db/items",
        "http://example.com/",
        "not a url at all s3cret-pw",
    ],
)
@pytest.mark.parametrize("program", ["service", "alembic"])
def test_an_unusable_url_stops_with_one_clear_line(url: str, program: str) -> None:
    command = (
        [sys.executable, "-m", "service"]
        if program == "service"
        else [sys.executable, "-m", "alembic", "upgrade", "head"]
    )
    result = run_to_exit(*command, DATABASE_URL=url)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: DATABASE_URL")
    assert "postgresql://" in lines[0] and "mysql://" in lines[0] and "sqlite://" in lines[0]
    for secret in (PASSWORD, quote(PASSWORD, safe=""), "s3cret-pw"):
        assert secret not in result.stderr + result.stdout


def test_a_missing_driver_stops_with_one_clear_line() -> None:
    hide_driver = (
        "import sys; sys.modules['psycopg2'] = None; from service.__main__ import main; main()"
    )
    result = run_to_exit(
        sys.executable, "-c", hide_driver, DATABASE_URL="postgres://u:s3cret-pw@127.0.0.1/x"
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "error: The postgresql driver is not installed: "
        "pip install -e '.[postgres]' in the service's clone"
    ]


@contextmanager
def user_with_password(database_url: str) -> Iterator[str]:
    """A server account whose password needs percent-encoding, that owns the
    database; its URL for the database."""
    if BACKEND == "sqlite":
        yield database_url
        return
    database = sa.engine.make_url(database_url).database
    name = f"items_pw_user_{uuid.uuid4().hex[:8]}"
    with server_account(name, PASSWORD):
        if BACKEND == "postgresql":
            run_as_admin(database_url, f"GRANT ALL ON DATABASE {database} TO {name}")
            run_as_admin(database_url, f"ALTER DATABASE {database} OWNER TO {name}")
        else:
            run_as_admin(database_url, f"GRANT ALL ON {database}.* TO '{name}'@'%'")
        url = sa.engine.make_url(database_url).set(username=name, password=PASSWORD)
        try:
            yield url.render_as_string(hide_password=False)
        finally:
            if BACKEND == "postgresql":
                # The role owns the tables it migrated: drop them, then give the database back.
                run_as_admin(database_url, f"DROP OWNED BY {name}")
                run_as_admin(database_url, f"ALTER DATABASE {database} OWNER TO CURRENT_USER")


def test_percent_encoded_password_works_and_never_shows(
    tmp_path: Path, empty_database: str
) -> None:
    with user_with_password(empty_database) as url, triggers_allowed(empty_database):
        if BACKEND != "sqlite":
            assert quote(PASSWORD, safe="") in url
        migrated = run_to_exit(sys.executable, "-m", "alembic", "upgrade", "head", DATABASE_URL=url)
        assert migrated.returncode == 0, migrated.stderr
        with running_service(tmp_path, DATABASE_URL=url, DB_ECHO="true") as (base, output):
            assert (
                httpx.get(f"{base}/health/ready").json()["revision"] == migrations.head_revision()
            )
            assert httpx.post(f"{base}/items/", json={"name": "x", "price": 1}).status_code == 201
            ready_text = httpx.get(f"{base}/health/ready").text
        everything = output[0] + migrated.stdout + migrated.stderr + ready_text
        assert "INSERT INTO items" in everything  # DB_ECHO logged SQL
        for secret in (PASSWORD, quote(PASSWORD, safe="")):
            assert secret not in everything


@pytest.mark.backends("sqlite")
def test_sqlite_in_memory_serves_what_it_migrated(tmp_path: Path) -> None:
    # `sqlite://` is migrated on the connection that then serves it: the
    # migration must leave it committing each write as it runs.
    with running_service(tmp_path, DATABASE_URL="sqlite://") as (base, _):
        created = httpx.post(f"{base}/items/", json={"name": "Kept", "price": 1}).json()
        assert httpx.get(f"{base}/items/", params={"q": "kept"}).json() == [created]
        order = httpx.post(f"{base}/orders/", json={"item_id": created["id"], "quantity": 2})
        assert order.status_code == 201, order.text


ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"PORT": "abc"}, "error: PORT=abc is not valid: use a whole number from 0 to 65535"),
        (
            {"ACCESS_LOG": "maybe"},
            "error: ACCESS_LOG=maybe is not valid: use true or false (also 1 or 0, yes or no, "
            "on or off)",
        ),
        (
            {"DATABASE_URL": "postgresql://items:p@ss@127.0.0.1/items"},
            "error: DATABASE_URL has an @ in its user name or password: percent-encode it as "
            "%40 (and : / ? # % as %3A %2F %3F %23 %25)",
        ),
        (
            {"DATABASE_URL": "sqlite:///./nodir/x.db"},
            f"error: the SQLite file's directory, {ROOT / 'nodir'}, does not exist: mkdir -p "
            f"{ROOT / 'nodir'} (writable by the service's user), or fix the path in DATABASE_URL",
        ),
        (
            {"DATABASE_URL": "sqlite://", "DATABASE_URL_FILE": "/run/secrets/database_url"},
            "error: DATABASE_URL and DATABASE_URL_FILE are both set: set one of them",
        ),
        (
            {"API_TOKENS_FILE": "/nonexistent/api_tokens"},
            "error: API_TOKENS_FILE=/nonexistent/api_tokens cannot be read: No such file or "
            "directory",
        ),
    ],
    ids=["port", "access-log", "unencoded-at", "no-directory", "both", "no-file"],
)
def test_a_setting_the_service_cannot_use_stops_it_with_one_line_that_says_what_to_do(
    variables: dict[str, str], expected: str
) -> None:
    result = run_to_exit(sys.executable, "-m", "service", **variables)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [expected]
    assert "ss@" not in result.stderr
    assert not (ROOT / "nodir").exists()


@pytest.mark.parametrize("command", ["check", "copy"])
def test_the_other_commands_say_the_same_of_a_setting_they_cannot_use(command: str) -> None:
    arguments = ["--to", "sqlite://"] if command == "copy" else []
    result = run_to_exit(sys.executable, "-m", "service", command, *arguments, PORT="abc")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "error: PORT=abc is not valid: use a whole number from 0 to 65535"
    ]


def test_secrets_come_from_files_and_never_show(tmp_path: Path, empty_database: str) -> None:
    token = "file-token-" + "7" * 32
    with user_with_password(empty_database) as url, triggers_allowed(empty_database):
        secrets = tmp_path / "secrets"
        secrets.mkdir()
        # As Docker and Kubernetes write them: the value, then a newline.
        (secrets / "database_url").write_text(url + "\n")
        (secrets / "api_tokens").write_text(token + "\n")
        variables = {
            "DATABASE_URL_FILE": str(secrets / "database_url"),
            "API_TOKENS_FILE": str(secrets / "api_tokens"),
        }
        with running_service(tmp_path, DB_ECHO="true", **variables) as (base, output):
            assert httpx.get(f"{base}/health/ready").status_code == 200
            item = {"name": "from a file", "price": 1}
            assert httpx.post(f"{base}/items/", json=item).status_code == 401
            authorized = {"Authorization": f"Bearer {token}"}
            assert httpx.post(f"{base}/items/", json=item, headers=authorized).status_code == 201
        checked = run_to_exit(sys.executable, "-m", "service", "check", **variables)
    assert checked.returncode == 0, checked.stdout
    everything = output[0] + checked.stdout + checked.stderr
    assert "INSERT INTO items" in everything
    for secret in (PASSWORD, quote(PASSWORD, safe=""), token):
        assert secret not in everything
