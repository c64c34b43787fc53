"""Upgrades with the data in place: from any revision, through every URL form,
and a release beside a schema a newer release migrated."""

import os
import sys
import textwrap
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient

from alembic import command
from conftest import BACKEND, settings_for, temporary_database
from schemas import differences, migrate, schema_of
from servers import run_to_exit
from service import migrations
from service.app import create_app
from service.db.engine import create_engine
from service.db.urls import parse_database_url

# Stored before an upgrade, found by `q` after it: case folding, characters
# of several bytes, a name sharing trigrams with another.
NAMES = ["Straße 12", "STRASSE 3", "Crème brûlée", "🍕 Pizza", "pizza oven", "ab", "ﬃ"]
SCRIPT = ScriptDirectory.from_config(migrations.alembic_config())
REVISIONS = [script.revision for script in reversed(list(SCRIPT.walk_revisions()))]
SCHEMES = {
    "sqlite": ["sqlite"],
    "postgresql": ["postgresql", "postgresql+psycopg2", "postgres"],
    "mysql": ["mysql", "mysql+mysqldb", "mariadb", "mariadb+mysqldb"],
}[BACKEND]


@pytest.fixture(scope="module")
def fresh_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """The schema of a database made at the newest revision, from empty."""
    with temporary_database(tmp_path_factory.mktemp("fresh"), "fresh") as url:
        migrate(url)
        yield schema_of(url)


def store_items(url: str) -> None:
    """Store NAMES as items, in whatever shape the schema has now."""
    engine = sa.create_engine(parse_database_url(url))
    stamp = datetime(2026, 1, 2, 3, 4, 5, 123456)
    rows = [
        {"name": name, "name_folded": name.casefold(), "price": 1}
        | {"created_at": stamp, "updated_at": stamp}
        for name in NAMES
    ]
    with engine.begin() as connection:
        items = sa.Table("items", sa.MetaData(), autoload_with=connection)
        # Only the columns the schema has at its revision.
        connection.execute(
            items.insert(), [{key: row[key] for key in row if key in items.c} for row in rows]
        )
    engine.dispose()


def found(client: TestClient, q: str) -> list[str]:
    response = client.get("/items/", params={"q": q})
    assert response.status_code == 200, response.text
    return [item["name"] for item in response.json()]


@pytest.mark.parametrize("revision", REVISIONS[:-1])
def test_an_upgrade_from_any_revision_with_rows_ends_as_a_fresh_install(
    tmp_path: Path, revision: str, fresh_schema: dict[str, object]
) -> None:
    with temporary_database(tmp_path, f"from_{revision}") as url:
        migrate(url, revision)
        store_items(url)
        migrate(url)
        assert differences(schema_of(url), fresh_schema) == []
        with TestClient(create_app(settings_for(url, migrate_on_start=False))) as client:
            assert found(client, "strasse") == ["Straße 12", "STRASSE 3"]
            assert found(client, "pizza") == ["🍕 Pizza", "pizza oven"]
            assert found(client, "🍕") == ["🍕 Pizza"]
            assert found(client, "ffi") == ["ﬃ"]
            assert found(client, "b") == ["Crème brûlée", "ab"]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_url_form_migrates_up_down_and_up_and_serves(
    tmp_path: Path, scheme: str, empty_database: str, fresh_schema: dict[str, object]
) -> None:
    url = scheme + "://" + empty_database.split("://", 1)[1]
    if scheme.startswith("mariadb") and not _is_mariadb(url):
        pytest.skip("SQLAlchemy's mariadb:// dialect refuses a MySQL server")
    # The command a user types, from the repository root.
    migrated = run_to_exit(sys.executable, "-m", "alembic", "upgrade", "head", DATABASE_URL=url)
    assert migrated.returncode == 0, migrated.stderr
    store_items(url)
    migrate(url, "base", down=True)
    migrate(url)
    assert differences(schema_of(url), fresh_schema) == []
    checked = run_to_exit(sys.executable, "-m", "alembic", "check", DATABASE_URL=url)
    assert checked.returncode == 0, checked.stderr
    with TestClient(create_app(settings_for(url, migrate_on_start=False))) as client:
        assert client.get("/health/ready").json()["revision"] == REVISIONS[-1]
        assert client.post("/items/", json={"name": scheme, "price": 1}).status_code == 201
        assert found(client, scheme) == [scheme]


def _is_mariadb(url: str) -> bool:
    engine = sa.create_engine(parse_database_url(url.replace("mariadb", "mysql", 1)))
    with engine.connect() as connection:
        version = str(connection.exec_driver_sql("SELECT VERSION()").scalar())
    engine.dispose()
    return "MariaDB" in version


FUTURE_REVISION = '''
"""A revision of a newer release: adds a column this release never reads."""

from alembic import op

revision = "9001"
down_revision = "{head}"
branch_labels = None
depends_on = None
{declaration}


def upgrade():
    op.execute("ALTER TABLE items ADD COLUMN note VARCHAR(40) DEFAULT NULL")


def downgrade():
    op.execute("ALTER TABLE items DROP COLUMN note")
'''


def migrate_to_a_newer_release(tmp_path: Path, url: str, serves_code_since: str | None) -> None:
    """Migrate the database as a newer release would: to revision 9001, one
    after this release's newest, which declares `serves_code_since`."""
    versions = tmp_path / "newer_release_versions"
    versions.mkdir()
    declaration = "" if serves_code_since is None else f'serves_code_since = "{serves_code_since}"'
    (versions / "9001_newer.py").write_text(
        textwrap.dedent(FUTURE_REVISION).format(head=REVISIONS[-1], declaration=declaration)
    )
    engine = create_engine(parse_database_url(url), settings_for(url))
    config = migrations.alembic_config()
    config.set_main_option("path_separator", "os")
    locations = [str(migrations.ALEMBIC_DIR / "versions"), str(versions)]
    config.set_main_option("version_locations", os.pathsep.join(locations))
    config.attributes["connection"] = engine
    config.attributes["configure_logger"] = False
    try:
        command.upgrade(config, "9001")
    finally:
        engine.dispose()


def test_a_release_serves_a_schema_a_newer_release_only_added_to(
    tmp_path: Path, empty_database: str
) -> None:
    migrate_to_a_newer_release(tmp_path, empty_database, serves_code_since=None)
    # This release leaves the schema alone, and serves it.
    with TestClient(create_app(settings_for(empty_database))) as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["revision"] == "9001"
        created = client.post("/items/", json={"name": "Still served", "price": 2})
        assert created.status_code == 201
        assert found(client, "served") == ["Still served"]
    started = run_to_exit(sys.executable, "-m", "service", "check", DATABASE_URL=empty_database)
    assert f"ok       schema: at revision 9001, newer than this version's {REVISIONS[-1]}" in (
        started.stdout
    )


def test_a_release_refuses_a_schema_it_cannot_serve(tmp_path: Path, empty_database: str) -> None:
    migrate_to_a_newer_release(tmp_path, empty_database, serves_code_since="9001")
    needs = (
        f"Database schema is at revision 9001, which needs the code of revision 9001 or newer; "
        f"this release's newest is {REVISIONS[-1]}: deploy the release that migrated it"
    )
    with TestClient(create_app(settings_for(empty_database, migrate_on_start=False))) as client:
        ready = client.get("/health/ready")
        assert (ready.status_code, ready.json()) == (503, {"detail": needs})
        assert ready.headers["retry-after"]
    started = run_to_exit(sys.executable, "-m", "service", DATABASE_URL=empty_database)
    assert started.returncode == 1
    assert started.stderr.strip().splitlines()[-1] == f"error: {needs}"
    assert "Traceback" not in started.stderr
