"""The one place that asks which database `DATABASE_URL` names.

Each backend is a class that knows what its engine needs, what it can do
(`Capabilities`) and what its errors mean; the rest of the service asks it.
"""

from sqlalchemy.engine import URL

from service.db.backends.base import (
    Backend,
    Broken,
    BrokenConstraint,
    Capabilities,
    ErrorKind,
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
    "SearchIndex",
    "backend_for",
]


def backend_for(url: URL, settings: Settings) -> Backend:
    """The backend for a URL from `parse_database_url`."""
    name = url.get_backend_name()
    if name == "sqlite":
        in_memory = url.database in (None, "", ":memory:")
        return SQLiteMemory(url, settings) if in_memory else SQLiteFile(url, settings)
    if name == "postgresql":
        return PostgreSQL(url, settings)
    return MySQL(url, settings)
