"""The one place that asks which database `DATABASE_URL` names.

Each backend is a class that knows what its engine needs, what it can do
(`Capabilities`) and what its errors mean; the rest of the service asks it.
"""

from sqlalchemy.engine import URL, Dialect

from service.db.backends.base import (
    Backend,
    Broken,
    BrokenConstraint,
    Capabilities,
    ErrorKind,
    Kind,
    SearchIndex,
)
from service.db.backends.mysql import MySQL
from service.db.backends.postgresql import PostgreSQL
from service.db.backends.sqlite import SQLiteFile, SQLiteMemory
from service.settings import Settings

__all__ = [
    "Backend",
    "Broken",
    "BrokenConstraint",
    "Capabilities",
    "ErrorKind",
    "Kind",
    "SearchIndex",
    "backend_for",
    "kind_of",
]

# SQLAlchemy's backend names (a URL's scheme, a dialect's name) and the kind
# each means: both of MySQL's spellings are one kind.
_KINDS = {
    "sqlite": Kind.SQLITE,
    "postgresql": Kind.POSTGRESQL,
    "mysql": Kind.MYSQL,
    "mariadb": Kind.MYSQL,
}


def kind_of(dialect: Dialect) -> Kind:
    """The kind of server a dialect talks to (`op.get_context().dialect` in a revision)."""
    return _KINDS[dialect.name]


def backend_for(url: URL, settings: Settings) -> Backend:
    """The backend for a URL from `parse_database_url`."""
    kind = _KINDS[url.get_backend_name()]
    if kind is Kind.SQLITE:
        in_memory = url.database in (None, "", ":memory:")
        return SQLiteMemory(url, settings) if in_memory else SQLiteFile(url, settings)
    if kind is Kind.POSTGRESQL:
        return PostgreSQL(url, settings)
    return MySQL(url, settings)
