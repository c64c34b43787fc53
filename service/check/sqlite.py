"""SQLite: a file this process may create, read and write, beside files of its own
(WAL) on a local disk, and the library Python was built with."""

import tempfile
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection

from service.check.findings import Finding, combined
from service.check.versions import server_version, version_finding
from service.db.backends import Backend
from service.settings import Settings

RETURNING_SINCE = (3, 35)
# SQLite's locking and WAL need a local disk.
NETWORK_FILESYSTEMS = {"nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "afs", "ceph"}


def database_path(url: URL) -> Path | None:
    """The database file, None for `sqlite://` (memory)."""
    if url.database in (None, "", ":memory:"):
        return None
    return Path(str(url.database)).absolute()


def url_to_open(url: URL) -> URL:
    """`url`, or an empty database in memory if `url` names a file that does not exist:
    opening it would create it."""
    path = database_path(url)
    if path is not None and not path.exists():
        return url.set(database=":memory:")
    return url


def database_file(url: URL, settings: Settings) -> Finding:
    path = database_path(url)
    if path is None:
        if settings.web_concurrency > 1:
            return Finding(
                "problem",
                f"in memory, with {settings.web_concurrency} worker processes: each would have "
                "a database of its own",
                "use a file: sqlite:////var/lib/items/items.db",
            )
        return Finding(
            "warning",
            "in memory: every item is gone when the process stops",
            "use a file to keep them: sqlite:////var/lib/items/items.db",
        )
    directory = path.parent
    if not directory.is_dir():
        return Finding(
            "problem",
            f"{directory} {'is not a directory' if directory.exists() else 'does not exist'}: "
            "the database file cannot be created there",
            f"mkdir -p {directory} (writable by the service's user), or fix the path",
        )
    findings = [file_writable(path) if path.exists() else Finding("ok", f"{path} will be created")]
    cannot_create = cannot_create_files_in(directory)
    if cannot_create:
        findings.append(
            Finding(
                "problem",
                f"cannot create files in {directory} ({cannot_create}): SQLite's WAL keeps "
                f"{path.name}-wal and {path.name}-shm beside the database",
                f"make {directory} writable by the service's user",
            )
        )
    filesystem = filesystem_type(directory)
    if filesystem in NETWORK_FILESYSTEMS:
        findings.append(
            Finding(
                "warning",
                f"on a network filesystem ({filesystem}): SQLite's locks and WAL need a local disk",
                "keep the file on a local disk",
            )
        )
    return combined(findings)


def file_writable(path: Path) -> Finding:
    if not path.is_file():
        return Finding("problem", f"{path} is not a file", "point DATABASE_URL at a file")
    try:
        with path.open("r+b"):
            pass
    except OSError as error:
        return Finding(
            "problem",
            f"{path} cannot be opened for writing: {error.strerror}",
            f"make {path} readable and writable by the service's user",
        )
    return Finding("ok", f"{path} exists, {path.stat().st_size} bytes")


def cannot_create_files_in(directory: Path) -> str | None:
    """Why this process cannot create a file in `directory`, None if it can.

    Tried for real, since root passes every permission test that asks.
    """
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".items-check-"):
            return None
    except OSError as error:
        return error.strerror or str(error)


def filesystem_type(directory: Path) -> str | None:
    """The type of the filesystem holding `directory`, from /proc/self/mounts (Linux)."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return None
    resolved = directory.resolve()
    # The deepest mount point above the directory; of equal ones, the last mounted.
    holding = [
        (len(point.parts), index, kind)
        for index, (point, kind) in enumerate(
            (Path(fields[1].replace("\\040", " ")), fields[2])
            for fields in (line.split() for line in mounts)
        )
        if resolved.is_relative_to(point)
    ]
    return max(holding)[2] if holding else None


def library(connection: Connection, backend: Backend) -> Finding:
    version = server_version(connection)
    returning = "yes" if version >= RETURNING_SINCE else "no (updates take two statements)"
    try:
        connection.exec_driver_sql("SELECT json_valid('{}')")
        json_functions = "yes"
    except sa.exc.DBAPIError:
        json_functions = "no"
    return version_finding(
        "sqlite",
        version,
        f", the library Python uses; RETURNING {returning}, JSON {json_functions}",
    )


def full_text_search(connection: Connection, backend: Backend) -> Finding:
    """FTS5 and its trigram tokenizer (SQLite 3.34 and newer), which hold the
    index `q` searches (revision 0012)."""
    try:
        connection.exec_driver_sql(
            "CREATE VIRTUAL TABLE temp.items_check_fts USING fts5(text, tokenize='trigram')"
        )
    except sa.exc.DBAPIError as error:
        return Finding(
            "problem",
            f"the library cannot make the index q searches ({error.orig}): it needs FTS5 "
            "and its trigram tokenizer",
            "run the service on a Python whose sqlite3 module has SQLite 3.34 or newer, "
            "built with FTS5 (python.org's builds and Debian's have both)",
        )
    connection.exec_driver_sql("DROP TABLE temp.items_check_fts")
    return Finding("ok", "FTS5 with its trigram tokenizer, for the index q searches")


def no_connection_limit(connection: Connection, backend: Backend) -> Finding:
    return Finding("ok", "not applicable: SQLite works inside the process")
