"""`items-service copy --to URL`: copy the database DATABASE_URL names (or `--from`)
to another, any backend to any other, and verify it; `--verify` only compares.

Exit 0 when the target verifies, 1 otherwise. See `service.copy.copying` for
how, and the README's "Moving to another database" for when.
"""

import argparse
import sys

from sqlalchemy.exc import DBAPIError

from service.check.findings import error_message
from service.copy.servers import Server, server_for
from service.db.backends import backend_for
from service.db.urls import DatabaseURLError, parse_database_url, safe_url
from service.settings import load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--to", required=True, metavar="URL", help="the database to copy to (any accepted URL)"
    )
    parser.add_argument(
        "--from",
        dest="source",
        metavar="URL",
        help="the database to copy from (default: DATABASE_URL)",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="only compare the target with the source, changing nothing",
    )
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON")


def run(options: argparse.Namespace) -> int:
    from service.copy import copying
    from service.copy.report import Bars, Document, Lines

    report = Document() if options.json else Bars() if sys.stdout.isatty() else Lines()
    # Logged SQL would be mixed into the report.
    settings = load_settings().model_copy(update={"db_echo": False})
    passwords: list[str] = []
    servers: list[Server] = []
    outcome: dict[str, object] = {}
    try:
        source_url = parse_database_url(
            options.source or settings.database_url.get_secret_value(),
            "--from" if options.source else "DATABASE_URL",
        )
        target_url = parse_database_url(options.to, "--to")
        passwords = [url.password for url in (source_url, target_url) if url.password]
        outcome = {"source": safe_url(source_url), "target": safe_url(target_url)}
        source = server_for(backend_for(source_url, settings))
        servers.append(source)
        target = server_for(backend_for(target_url, settings))
        servers.append(target)
        if options.verify:
            found = copying.verify(source, target, report)
        else:
            found = copying.copy(source, target, report)
    except (DatabaseURLError, copying.CopyRefused) as error:
        return failed(report, outcome, str(error), passwords)
    except Exception as error:
        # The drivers' own errors too: most statements of a copy go straight to them.
        drivers = tuple(server.engine.dialect.loaded_dbapi.Error for server in servers)
        if not isinstance(error, (DBAPIError, *drivers)):
            raise
        where = f" (copying {outcome['source']} to {outcome['target']})"
        return failed(report, outcome, database_error(error) + where, passwords)
    finally:
        report.close()
        for server in servers:
            server.close()
    if found:
        for difference in found:
            report.say(hidden(f"difference: {difference}", passwords))
        report.say("the target differs from the source: it is not a verified copy")
    else:
        report.say(f"verified: {outcome['target']} holds what {outcome['source']} holds")
    if isinstance(report, Document):
        status = "different" if found else "verified"
        print(hidden(report.document(status=status, **outcome, differences=found), passwords))
    return 1 if found else 0


def database_error(error: BaseException) -> str:
    if isinstance(error, DBAPIError):
        return error_message(error)
    arguments: tuple[object, ...] = error.args
    # mysqlclient: (code, message).
    text = str(arguments[1]) if len(arguments) == 2 else str(error)
    lines = text.strip().splitlines()
    return lines[0] if lines else type(error).__name__


def failed(report: object, outcome: dict[str, object], message: str, passwords: list[str]) -> int:
    from service.copy.report import Document

    if isinstance(report, Document):
        print(hidden(report.document(status="error", **outcome, error=message), passwords))
    else:
        print(hidden(f"error: {message}", passwords), file=sys.stderr)
    return 1


def hidden(text: str, passwords: list[str]) -> str:
    # The drivers' messages never quote a password, but they are not ours to vouch for.
    # A very short one would turn up inside ordinary words.
    for password in passwords:
        if len(password) >= 4:
            text = text.replace(password, "***")
    return text
