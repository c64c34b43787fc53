"""`items-service` (or `python -m service`): the command line.

`serve`, the default: migrate the schema (unless MIGRATE_ON_START is off), then
serve. `check`: check the database (service/check/). `copy`: copy it to
another (service/copy/).
"""

import argparse
import logging
import logging.config
import os
import random
import sys
import time
from contextlib import ExitStack
from importlib.metadata import version

import uvicorn
from sqlalchemy import exc
from sqlalchemy.engine import Engine

from service import check, copy
from service.auth import TokenError, access, open_to_anyone
from service.check.findings import error_message
from service.db.backends import Backend, ErrorKind, backend_for
from service.db.engine import engine_for
from service.db.urls import DatabaseURLError, parse_database_url, safe_url
from service.migrations import SchemaAhead, upgrade_to_head
from service.settings import SettingsError, load_settings
from service.telemetry.logs import logging_config

logger = logging.getLogger("service")


def parsers() -> dict[str | None, argparse.ArgumentParser]:
    """The command line's parser (under None) and each command's."""
    parser = argparse.ArgumentParser(
        prog="items-service",
        description="Items stored in SQLite, PostgreSQL or MySQL/MariaDB, chosen by DATABASE_URL.",
        epilog="Settings come from the environment (and a .env file); see the README.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {version('items-service')}"
    )
    commands = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="migrate the database, then serve the API (the default)",
        description="Migrate the database (unless MIGRATE_ON_START=false), then serve the API "
        "on HOST:PORT.",
    )
    checking = commands.add_parser(
        "check",
        help="check that the database in DATABASE_URL will behave; exit 1 on a problem",
        description="Check that the database in DATABASE_URL will behave; exit 1 on a problem.",
    )
    check.add_arguments(checking)
    copying = commands.add_parser(
        "copy",
        help="copy the database to another, any backend to any other, and verify it",
        description="Copy the database in DATABASE_URL (or --from) to the one --to names, "
        "and verify it: exit 0 only when the target holds what the source holds. Run it "
        "again after an interruption to finish the copy.",
    )
    copy.add_arguments(copying)
    return {None: parser, "serve": serve, "check": checking, "copy": copying}


def main(arguments: list[str] | None = None) -> None:
    known = parsers()
    options, unknown = known[None].parse_known_args(arguments)
    if unknown:
        # Refused by the command's own parser, which shows that command's usage.
        known[options.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        if options.command == "check":
            sys.exit(check.run(options))
        if options.command == "copy":
            sys.exit(copy.run(options))
        serve()
    except SettingsError as error:
        sys.exit(f"error: {error}")


class CannotStart(Exception):
    """The database cannot be served; the message says why and what to do."""


def serve() -> None:
    settings = load_settings()
    log_config = logging_config(settings.log_format)
    logging.config.dictConfig(log_config)
    try:
        url = parse_database_url(settings.database_url.get_secret_value())
        access(settings)
        ready_to_serve(backend_for(url, settings))
    except (DatabaseURLError, TokenError, SchemaAhead, CannotStart) as error:
        sys.exit(f"error: {error}")
    logger.info("Serving on %s with database %s", f"{settings.host}:{settings.port}", safe_url(url))
    if open_to_anyone(settings):
        logger.warning(
            "API_TOKENS is not set and the service listens on %s: anyone who can reach it "
            "may create, change and delete every row. Set API_TOKENS to keep writes to "
            "the clients you give a token.",
            settings.host,
        )
    if settings.read_only:
        logger.warning("READ_ONLY is set: writes are answered 503 with Retry-After")
    if settings.web_concurrency == 1:
        pin_to_one_cpu()
    with ExitStack() as stack:
        if settings.metrics:
            from service.telemetry.metrics import prepare_directory  # noqa: PLC0415

            # Before the workers start: they find it in their environment.
            stack.callback(prepare_directory(settings.web_concurrency))
        uvicorn.run(
            "service.app:create_app",
            factory=True,
            # uvloop, taking every pending connection at once (service/serving.py).
            loop="service.serving:new_event_loop",
            http="service.serving:TimedHttpToolsProtocol",
            host=settings.host,
            port=settings.port,
            workers=settings.web_concurrency,
            # Every worker logs as this one does; the access lines are the service's own.
            log_config=log_config,
            access_log=False,
        )


def ready_to_serve(backend: Backend) -> None:
    """Migrate the database, unless MIGRATE_ON_START is off or the app must (a
    database that lives only in its engine). Where TLS is asked for, connect once
    even so: a connection the URL's TLS options cannot make stops start-up."""
    problem = backend.startup_problem()
    if problem is not None:
        raise CannotStart(problem)
    migrating = backend.settings.migrate_on_start and not backend.database_lives_in_engine
    if not (migrating or backend.tls.required):
        return
    engine = engine_for(backend)
    try:
        if migrating:
            migrate_again_while_retryable(backend, engine)
        else:
            engine.connect().close()
    except exc.OperationalError as error:
        where = safe_url(backend.url)
        fix = backend.tls_fix(error)
        if fix is not None:
            reason = f"cannot connect to {where}: {error_message(error)}; fix: {fix}"
            raise CannotStart(reason) from None
        if migrating:
            reason = f"cannot migrate the database at {where}: {error_message(error)}"
            raise CannotStart(reason) from None
        # A server that is not up yet: requests are answered 503 until it is.
    finally:
        engine.dispose()


# A migration that lost to another process's (a deadlock; on Galera, a statement
# aborted by another node's schema change) did nothing: it is run again.
MIGRATION_TRIES = 5


def migrate_again_while_retryable(backend: Backend, engine: Engine) -> None:
    for attempt in range(1, MIGRATION_TRIES + 1):
        try:
            upgrade_to_head(engine)
            return
        except exc.DBAPIError as error:
            if attempt == MIGRATION_TRIES or backend.error_kind(error) is not ErrorKind.RETRYABLE:
                raise
            logger.info("The migration lost to another process's: running it again")
            time.sleep(random.uniform(0.5, 1.5))


def pin_to_one_cpu() -> None:
    """Keep this process on one of the CPUs it may use (Linux; elsewhere, nothing).

    Only one thread at a time runs Python, and the event loop hands the GIL
    to a worker thread and back several times per request; between two CPUs
    each hand-over wakes the other one (bench/results.md has the figures).

    Called before uvicorn starts, while this is the only thread: every
    thread started later inherits it. With several worker processes nothing
    is pinned, as each would have to find a CPU of its own.
    """
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


if __name__ == "__main__":
    main()
