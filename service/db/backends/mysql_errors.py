"""MySQL/MariaDB's server errors by number, for the backend and for its Galera lock."""

from sqlalchemy.exc import DBAPIError


def error_code(error: DBAPIError) -> int | None:
    return server_error_number(error.orig)


def server_error_number(error: BaseException | None) -> int | None:
    """The error number mysqlclient's exception carries first; None if it has none."""
    arguments: tuple[object, ...] = getattr(error, "args", ())
    code = arguments[0] if arguments else None
    return code if isinstance(code, int) and code > 0 else None
