"""PostgreSQL, through psycopg2."""

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from service.db.backends import postgresql_errors as errors
from service.db.backends.base import (
    Broken,
    BrokenConstraint,
    ErrorKind,
    Kind,
    NetworkBackend,
    SearchIndex,
)
from service.db.backends.tls import (
    LIBPQ,
    Encryption,
    TLSRequest,
    libpq_encryption,
    libpq_request,
)

# Serialization failure and deadlock: the transaction was rolled back.
# Read-only transaction: the server is a standby, or a primary demoted by a
# failover, and did nothing; on a new connection libpq finds the primary
# (`target_session_attrs=read-write`).
_RETRYABLE_CODES = {
    errors.SERIALIZATION_FAILURE,
    errors.DEADLOCK_DETECTED,
    errors.READ_ONLY_SQL_TRANSACTION,
}
# The schema is not there.
_SCHEMA_CODES = {errors.UNDEFINED_TABLE, errors.UNDEFINED_COLUMN, errors.UNDEFINED_OBJECT}
_BROKEN = {
    errors.UNIQUE_VIOLATION: Broken.UNIQUE,
    errors.CHECK_VIOLATION: Broken.CHECK,
    errors.FOREIGN_KEY_VIOLATION: Broken.FOREIGN_KEY,
    errors.NOT_NULL_VIOLATION: Broken.NOT_NULL,
}
# Any number: it only has to be the same in every process that migrates.
_MIGRATION_LOCK_KEY = 7242017
# How long a process waits for another one's migration to end.
MIGRATION_LOCK_WAIT_SECONDS = 900
# How long a migration's statement waits for a lock before its transaction
# gives up and is tried again: requests queued behind it wait no longer.
MIGRATION_LOCK_TIMEOUT = "500ms"
_LOCK_TIMED_OUT_CODES = {errors.LOCK_NOT_AVAILABLE, errors.DEADLOCK_DETECTED}


class PostgreSQL(NetworkBackend):
    kind = Kind.POSTGRESQL
    # SET LOCAL, so that nothing outlives the transaction on a pooled server
    # session (PgBouncer).
    migration_transaction_statements = (f"SET LOCAL lock_timeout = '{MIGRATION_LOCK_TIMEOUT}'",)
    driver_extra = "postgres"
    update_returning = True
    # pg_trgm, made by revision 0007.
    search_index = SearchIndex.SERVER
    tls_options = LIBPQ

    def tls_request(self) -> TLSRequest:
        return libpq_request(self.url)

    def driver_encryption(self, dbapi_connection: Any) -> Encryption:
        return libpq_encryption(dbapi_connection)

    def plain_text_error(self, dbapi: Any, message: str) -> Exception:
        return dbapi.OperationalError(message)  # type: ignore[no-any-return]

    def engine_options(self) -> dict[str, Any]:
        return self.pool_options() | {
            "connect_args": {"connect_timeout": self.settings.db_connect_timeout},
        }

    def error_kind(self, error: DBAPIError) -> ErrorKind:
        code = getattr(error.orig, "pgcode", None)
        if code is None:
            # No SQLSTATE: libpq could not connect or the connection broke, or
            # psycopg2 refused something before sending it.
            connection_lost = isinstance(error, OperationalError | InterfaceError)
            return ErrorKind.UNAVAILABLE if connection_lost else ErrorKind.BUG
        if code.startswith(errors.INTEGRITY_CONSTRAINT_CLASS):
            return ErrorKind.CONSTRAINT
        if code.startswith(errors.UNAVAILABLE_CLASSES) or code == errors.LOCK_NOT_AVAILABLE:
            return ErrorKind.UNAVAILABLE
        if code in _RETRYABLE_CODES:
            return ErrorKind.RETRYABLE
        if code in _SCHEMA_CODES:
            return ErrorKind.SCHEMA
        return ErrorKind.BUG

    def server_cannot_serve(self, error: BaseException) -> bool:
        return getattr(error, "pgcode", None) == errors.READ_ONLY_SQL_TRANSACTION

    def broken_constraint(self, error: DBAPIError) -> BrokenConstraint | None:
        broken = _BROKEN.get(getattr(error.orig, "pgcode", None) or "")
        if broken is None:
            return None
        diagnostics = getattr(error.orig, "diag", None)
        name = getattr(diagnostics, "constraint_name", None)
        column = getattr(diagnostics, "column_name", None)
        return BrokenConstraint(broken, name=name, columns=(column,) if column else ())

    @contextmanager
    def migration_lock(self, engine: Engine) -> Iterator[None]:
        # Held by a transaction kept open on a connection of its own until the
        # migration ends: unlike a session lock, it holds through a
        # transaction-pooling PgBouncer. Tried, not waited for: a statement
        # waiting holds a snapshot, for which CREATE INDEX CONCURRENTLY, run
        # by the process that holds the lock, would wait in turn.
        deadline = time.monotonic() + MIGRATION_LOCK_WAIT_SECONDS
        with engine.connect() as connection:
            take = f"SELECT pg_try_advisory_xact_lock({_MIGRATION_LOCK_KEY})"
            while not connection.exec_driver_sql(take).scalar():
                connection.rollback()
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"another process held the migration lock for over "
                        f"{MIGRATION_LOCK_WAIT_SECONDS} s"
                    )
                time.sleep(random.uniform(0.1, 0.3))
            try:
                yield
            finally:
                connection.rollback()

    def lock_timed_out(self, error: DBAPIError) -> bool:
        return getattr(error.orig, "pgcode", None) in _LOCK_TIMED_OUT_CODES
