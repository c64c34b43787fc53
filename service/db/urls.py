"""`DATABASE_URL` read into a SQLAlchemy URL, and shown without its password."""

import re
from urllib.parse import quote, unquote

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

ACCEPTED_URL_FORMS = (
    "sqlite:///relative/path.db, sqlite:////absolute/path.db, sqlite://, "
    "postgresql://, postgresql+psycopg2://, postgres://, "
    "mysql://, mysql+mysqldb://, mariadb://, mariadb+mysqldb://"
)

# Every accepted scheme, and the SQLAlchemy driver name it means here.
# SQLAlchemy 2.1 maps a bare `postgresql://` to psycopg 3; this project ships psycopg2.
_DRIVERS = {
    "sqlite": "sqlite+pysqlite",
    "postgres": "postgresql+psycopg2",
    "postgresql": "postgresql+psycopg2",
    "postgresql+psycopg2": "postgresql+psycopg2",
    "mysql": "mysql+mysqldb",
    "mysql+mysqldb": "mysql+mysqldb",
    "mariadb": "mariadb+mysqldb",
    "mariadb+mysqldb": "mariadb+mysqldb",
}

# libpq's form for several hosts: `postgresql://user:pass@h1:5432,h2:5433/db?...`.
_SEVERAL_HOSTS = re.compile(
    r"(?P<scheme>postgres(?:ql)?(?:\+psycopg2)?)://(?P<user>[^@/?#]*@)?"
    r"(?P<hosts>[^/?#]*,[^/?#]*)(?P<path>/[^?#]*)?(?:\?(?P<query>[^#]*))?"
)


_SSL_PASSWORD = re.compile(r"([?&]sslpassword=)[^&]*")


class DatabaseURLError(ValueError):
    """`DATABASE_URL` cannot be served. The message never contains the password."""


def parse_database_url(raw: str, setting: str = "DATABASE_URL") -> URL:
    """`raw` as a URL; an error names it as `setting` (a variable, or an option)."""
    try:
        url = make_url(_hosts_as_query(raw))
    except (ArgumentError, ValueError):
        # The parser's own message repeats the URL, password included: never show it.
        raise DatabaseURLError(
            f"{setting} is not a valid database URL. Accepted forms: {ACCEPTED_URL_FORMS}"
        ) from None
    hosts = [url.host or "", *url.normalized_query.get("host", ())]
    if any("@" in host for host in hosts):
        # The first unencoded `@` in a password ends it; what follows is taken for the host.
        raise DatabaseURLError(
            f"{setting} has an @ in its user name or password: percent-encode it as %40 "
            "(and : / ? # % as %3A %2F %3F %23 %25)"
        )
    driver = _DRIVERS.get(url.drivername)
    if driver is None:
        raise DatabaseURLError(
            f"{setting} scheme '{url.drivername}://' is not supported. "
            f"Accepted forms: {ACCEPTED_URL_FORMS}"
        )
    return url.set(drivername=driver)


def _hosts_as_query(raw: str) -> str:
    """libpq's several hosts, `h1:5432,h2:5433`, in the form SQLAlchemy's psycopg2
    dialect reads them: `?host=h1:5432&host=h2:5433`. Any other URL is left as it is."""
    match = _SEVERAL_HOSTS.fullmatch(raw)
    if match is None:
        return raw
    hosts = [f"host={quote(host, safe=':[]')}" for host in match["hosts"].split(",")]
    query = "&".join([*hosts, *filter(None, [match["query"]])])
    return f"{match['scheme']}://{match['user'] or ''}{match['path'] or '/'}?{query}"


def safe_url(url: URL) -> str:
    # libpq's passphrase for the client key is a password too.
    shown = _SSL_PASSWORD.sub(r"\1***", url.render_as_string(hide_password=True))
    # The options as written (`sslrootcert=/etc/items/ca.pem`), for people to read.
    base, question, query = shown.partition("?")
    return base + question + unquote(query)
