"""The server's version against those the suite runs on and those too old to serve."""

from sqlalchemy.engine import Connection

from service.check.findings import Finding

KINDS = {"postgresql": "PostgreSQL", "mysql": "MySQL", "mariadb": "MariaDB", "sqlite": "SQLite"}
# The suite runs on these (CI, and the Docker matrix in compose/).
TESTED_VERSIONS = {
    "postgresql": ((15,), (18,)),
    "mysql": ((8, 4),),
    "mariadb": ((10, 11), (11, 8)),
    "sqlite": ((3, 40),),
}
# Older servers lack what the service and its migrations use. SQLite has no
# floor: without RETURNING (3.35) an update takes two statements, as on MySQL.
OLDEST_SUPPORTED = {"postgresql": (12,), "mysql": (8, 0), "mariadb": (10, 5)}


def version_finding(server: str, version: tuple[int, ...], details: str = "") -> Finding:
    tested = TESTED_VERSIONS[server]
    tested_text = ", ".join(".".join(map(str, v)) for v in tested)
    text = f"{KINDS[server]} {'.'.join(map(str, version))}{details} (tested: {tested_text})"
    oldest = OLDEST_SUPPORTED.get(server)
    if oldest is not None and version[: len(oldest)] < oldest:
        fix = f"upgrade to {'.'.join(map(str, tested[-1]))} (at least {'.'.join(map(str, oldest))})"
        return Finding("problem", f"{text}: too old", fix)
    if version[: len(tested[0])] < tested[0]:
        return Finding("warning", f"{text}: older than tested", "upgrade to a tested version")
    if version[: len(tested[-1])] > tested[-1]:
        return Finding("warning", f"{text}: newer than tested")
    return Finding("ok", text)


def server_version(connection: Connection) -> tuple[int, ...]:
    info = connection.dialect.server_version_info or ()
    return tuple(part for part in info if isinstance(part, int))
