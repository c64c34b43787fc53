"""MySQL and MariaDB, through mysqlclient."""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from service.db.backends import mysql_errors as errors
from service.db.backends.base import (
    Broken,
    BrokenConstraint,
    ErrorKind,
    Kind,
    NetworkBackend,
    held,
)
from service.db.backends.galera import galera_migration_lock
from service.db.backends.mysql_errors import error_code, server_error_number
from service.db.backends.tls import (
    MYSQLCLIENT,
    Encryption,
    TLSRequest,
    mysql_encryption,
    mysqlclient_request,
)

# Server-side idle timeouts default to 8 hours on MySQL; hosted servers often cut sooner.
POOL_RECYCLE_SECONDS = 1800

_BROKEN = {
    errors.DUP_ENTRY: Broken.UNIQUE,
    errors.ROW_IS_REFERENCED_2: Broken.FOREIGN_KEY,
    errors.NO_REFERENCED_ROW_2: Broken.FOREIGN_KEY,
    errors.CONSTRAINT_FAILED: Broken.CHECK,
    errors.CHECK_CONSTRAINT_VIOLATED: Broken.CHECK,
    errors.BAD_NULL_ERROR: Broken.NOT_NULL,
}
# "for key 'uq_items_sku'" (MariaDB), "for key 'items.uq_items_sku'" (MySQL 8),
# "CONSTRAINT `fk_orders_item_id_items` ...", "Check constraint 'ck_x' is violated".
_CONSTRAINT_NAME = re.compile(
    r"for key '(?:[^']*\.)?(?P<key>[^'.]+)'|CONSTRAINT `(?P<quoted>[^`]+)`"
    r"|constraint '(?P<check>[^']+)'"
)
_NULL_COLUMN = re.compile(r"Column '(?P<column>[^']+)' cannot be null")
_RETRYABLE = {errors.LOCK_DEADLOCK, errors.UNKNOWN_COM_ERROR}
# The least lock_wait_timeout MySQL takes (whole seconds).
MIGRATION_LOCK_TIMEOUT_SECONDS = 1
# How long a brief DDL statement waits on MariaDB (max_statement_time takes fractions).
BRIEF_DDL_SECONDS = 0.5
# wsrep_sync_wait's bits for reads, updates and deletes, inserts and replaces.
CAUSALITY_CHECKS = 1 | 2 | 4
_SCHEMA = {errors.NO_SUCH_TABLE, errors.BAD_FIELD_ERROR}


class MySQL(NetworkBackend):
    kind = Kind.MYSQL
    driver_extra = "mysql"
    # Behind a balancer, the pool's connections reach several Galera nodes:
    # one that is not ready takes down only the connections that meet it.
    drop_every_connection_when_unusable = False
    tls_options = MYSQLCLIENT

    def engine_options(self) -> dict[str, Any]:
        connect_args = {
            # MySQL's `utf8` holds only 3-byte characters; emoji need utf8mb4.
            "charset": "utf8mb4",
            "connect_timeout": self.settings.db_connect_timeout,
            # Strict mode: out-of-range or too-long values fail instead of being cut.
            "init_command": "SET SESSION sql_mode = 'TRADITIONAL,NO_ENGINE_SUBSTITUTION'",
        }
        if self.tls.mode is not None:
            # In capitals, the only spelling mysqlclient knows.
            connect_args["ssl_mode"] = self.tls.mode
        return self.pool_options() | {
            "pool_recycle": POOL_RECYCLE_SECONDS,
            "connect_args": connect_args,
        }

    def tls_request(self) -> TLSRequest:
        return mysqlclient_request(self.url)

    def driver_encryption(self, dbapi_connection: Any) -> Encryption:
        return mysql_encryption(dbapi_connection, self.url.host or "localhost", self.url.port)

    def plain_text_error(self, dbapi: Any, message: str) -> Exception:
        return dbapi.OperationalError(errors.SSL_CONNECTION_ERROR, message)  # type: ignore[no-any-return]

    def error_kind(self, error: DBAPIError) -> ErrorKind:
        code = error_code(error)
        if code is None:
            # No server error number: the driver lost or never had a connection.
            return ErrorKind.UNAVAILABLE
        if code in _BROKEN:
            return ErrorKind.CONSTRAINT
        if code in errors.UNAVAILABLE or code in errors.CLIENT_ERRORS:
            return ErrorKind.UNAVAILABLE
        if code in _RETRYABLE:
            return ErrorKind.RETRYABLE
        if code in _SCHEMA:
            return ErrorKind.SCHEMA
        return ErrorKind.BUG

    def server_cannot_serve(self, error: BaseException) -> bool:
        return server_error_number(error) == errors.UNKNOWN_COM_ERROR

    def broken_constraint(self, error: DBAPIError) -> BrokenConstraint | None:
        broken = _BROKEN.get(error_code(error) or 0)
        if broken is None:
            return None
        arguments: tuple[object, ...] = getattr(error.orig, "args", ())
        message = str(arguments[1]) if len(arguments) > 1 else ""
        if broken is Broken.NOT_NULL:
            column = _NULL_COLUMN.search(message)
            return BrokenConstraint(broken, columns=(column["column"],) if column else ())
        match = _CONSTRAINT_NAME.search(message)
        name = None if match is None else match["key"] or match["quoted"] or match["check"]
        return BrokenConstraint(broken, name=name)

    def prepare(self, engine: Engine) -> None:
        super().prepare(engine)

        @sa.event.listens_for(engine, "connect")
        def read_your_writes_on_any_node(dbapi_connection: Any, _record: Any) -> None:
            # A Galera node applies other nodes' commits a moment after they are
            # acknowledged; with causality checks on, a statement first waits
            # until the node has applied every commit the cluster had when it
            # began: reads (1), and updates and deletes (2) and inserts (4), whose
            # unique keys are checked against the rows the node has.
            cursor = dbapi_connection.cursor()
            try:
                if is_galera_node(cursor):
                    cursor.execute(f"SET SESSION wsrep_sync_wait = {CAUSALITY_CHECKS}")
            finally:
                cursor.close()

    @contextmanager
    def migration_lock(self, engine: Engine) -> Iterator[None]:
        with engine.connect() as connection:
            if on_galera(connection):
                # GET_LOCK holds on one node only; a row's insert is certified cluster-wide.
                with galera_migration_lock(connection):
                    yield
                return
            take = "SELECT GET_LOCK('items_service_migrations', 300)"
            with held(take, "SELECT RELEASE_LOCK('items_service_migrations')", connection):
                yield

    def start_migrating(self, connection: Connection) -> Connection:
        # A DDL statement waits for a table's metadata lock, and every
        # request after it waits behind it; a backfill's batch waits for
        # rows. Both give up after this long and are tried again.
        connection.exec_driver_sql(
            f"SET SESSION lock_wait_timeout = {MIGRATION_LOCK_TIMEOUT_SECONDS}, "
            f"innodb_lock_wait_timeout = {MIGRATION_LOCK_TIMEOUT_SECONDS}"
        )
        connection.commit()
        return connection

    def waiting_briefly(self, connection: Connection, statement: str) -> str:
        # lock_wait_timeout takes whole seconds, and a request that queues
        # behind the waiting statement waits as long. MariaDB's
        # max_statement_time takes fractions and ends a wait for a metadata
        # lock just as well (a brief statement spends its time waiting). Not
        # on Galera: there a schema change is replicated to every node before
        # it runs (total order isolation), and one node must not stop it.
        if not getattr(connection.dialect, "is_mariadb", False) or on_galera(connection):
            return statement
        return f"SET STATEMENT max_statement_time = {BRIEF_DDL_SECONDS} FOR {statement}"

    def lock_timed_out(self, error: DBAPIError) -> bool:
        return error_code(error) in (
            errors.LOCK_WAIT_TIMEOUT,
            errors.LOCK_DEADLOCK,
            errors.STATEMENT_TIMEOUT,
        )

    def server_name(self, connection: Connection) -> str:
        return "mariadb" if getattr(connection.dialect, "is_mariadb", False) else "mysql"


def on_galera(connection: Connection) -> bool:
    """Whether `connection` reaches a node of a Galera cluster."""
    cursor = connection.connection.cursor()
    try:
        return is_galera_node(cursor)
    finally:
        cursor.close()


def is_galera_node(cursor: Any) -> bool:
    # MySQL has no wsrep_on at all; MariaDB without Galera has it OFF.
    cursor.execute("SHOW VARIABLES LIKE 'wsrep_on'")
    row = cursor.fetchone()
    return row is not None and str(row[1]).upper() == "ON"
