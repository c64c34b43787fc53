"""MySQL/MariaDB's server errors: every number the service reads, by the name
the servers' manuals give it, and how to read one off mysqlclient's exception."""

from sqlalchemy.exc import DBAPIError

# The statement broke a constraint.
DUP_ENTRY = 1062
ROW_IS_REFERENCED_2 = 1451
NO_REFERENCED_ROW_2 = 1452
CONSTRAINT_FAILED = 4025  # a CHECK, on MariaDB
CHECK_CONSTRAINT_VIOLATED = 3819  # a CHECK, on MySQL
BAD_NULL_ERROR = 1048
# Nothing was committed, and the statement may run again: a deadlock (on
# Galera also a write that lost certification), a Galera node not yet in the
# cluster's primary component, a lock waited for too long.
LOCK_DEADLOCK = 1213
UNKNOWN_COM_ERROR = 1047
LOCK_WAIT_TIMEOUT = 1205
# MariaDB's max_statement_time ran out (a wait for a lock included).
STATEMENT_TIMEOUT = 1969
# The server refuses writes: started read-only, or a read-only transaction.
OPTION_PREVENTS_STATEMENT = 1290
CANT_EXECUTE_IN_READ_ONLY_TRANSACTION = 1792
# A table or column is missing.
NO_SUCH_TABLE = 1146
BAD_FIELD_ERROR = 1054
# CREATE TRIGGER with binary logging on, by an account without SUPER.
BINLOG_CREATE_ROUTINE_NEED_SUPER = 1419
# A server that cannot serve now: too many connections, shutting down, a lock
# wait timed out, read-only, out of memory or disk, a connection killed or
# refused, an unknown database or account. Every client-side error (2000 to
# 2999: cannot connect, server gone away, lost connection) too.
UNAVAILABLE = {
    1021, 1037, 1040, 1041, 1044, 1045, 1049, 1053, 1129, 1130, 1152, 1153, 1154,
    1155, 1156, 1157, 1158, 1159, 1160, 1161, LOCK_WAIT_TIMEOUT, OPTION_PREVENTS_STATEMENT,
    1317, CANT_EXECUTE_IN_READ_ONLY_TRANSACTION, 1836, 1927,
}  # fmt: skip
CLIENT_ERRORS = range(2000, 3000)
# The client's error for a TLS failure (CR_SSL_CONNECTION_ERROR).
SSL_CONNECTION_ERROR = 2026


def error_code(error: DBAPIError) -> int | None:
    return server_error_number(error.orig)


def server_error_number(error: BaseException | None) -> int | None:
    """The error number mysqlclient's exception carries first; None if it has none."""
    arguments: tuple[object, ...] = getattr(error, "args", ())
    code = arguments[0] if arguments else None
    return code if isinstance(code, int) and code > 0 else None
