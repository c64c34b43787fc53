"""TLS to the database: what a URL asks for, checked before connecting, and
what a connection does, read after.

Each driver has options of its own, and both are held to one promise: a URL
that asks for TLS gets an encrypted connection or none, and an option the
driver would ignore is refused rather than dropped.
"""

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL

from service.db.urls import DatabaseURLError


@dataclass(frozen=True)
class TLSRequest:
    """What a URL asks of a connection's encryption."""

    # The mode as the URL gives it ("sslmode=verify-full"), or the driver's default.
    asked: str
    # The mode as the driver spells it; None where the URL sets none.
    mode: str | None = None
    # TLS, or no connection at all.
    required: bool = False
    verifies_certificate: bool = False
    verifies_name: bool = False


@dataclass(frozen=True)
class Encryption:
    """What one connection does: its TLS protocol and cipher, None in plain text."""

    host: str
    port: int | None
    protocol: str | None
    cipher: str | None

    @property
    def server(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def on_loopback(self) -> bool:
        """Whether the server is this machine: a loopback address, or a Unix socket."""
        if self.host in ("", "localhost") or self.host.startswith("/"):
            return True
        try:
            return ipaddress.ip_address(self.host.strip("[]")).is_loopback
        except ValueError:  # a host name
            return False


def not_encrypted(encryption: Encryption, request: TLSRequest) -> str:
    return (
        f"the connection to {encryption.server} is in plain text, and the URL asks for TLS "
        f"({request.asked}): the server offers none"
    )


# What a failed connection's message means, and what to do about it.
_FAILURES = [
    (
        re.compile(r"does not support SSL|server does not support it|is in plain text"),
        "turn TLS on at the server ({server}), or connect to one that has it",
    ),
    (
        re.compile(r"does not match host name|Validation of SSL server certificate failed"),
        "the server's certificate does not name the host in the URL: connect by a name "
        "the certificate holds (its subjectAltName)",
    ),
    (
        re.compile(r"certificate verify failed|self.signed|local issuer|certificate has expired"),
        "the server's certificate is not signed by the CA in {ca}, or has expired: point "
        "{ca} at the CA that signed it",
    ),
    (
        re.compile(r"root certificate file .* does not exist"),
        "name the CA that signed the server's certificate: {ca}=/path/to/ca.pem",
    ),
    (
        re.compile(r"client certificate|certificate required"),
        "the server wants a client certificate: add {cert} and {key}",
    ),
    (
        re.compile(r"no encryption"),
        "the server takes this account over TLS only: ask for it in the URL ({verified})",
    ),
]


@dataclass(frozen=True)
class DriverOptions:
    """One driver's names for TLS options, for the fixes that name them."""

    ca: str
    cert: str
    key: str
    # The options of a connection whose server is verified.
    verified: str
    # How a server of this kind turns TLS on.
    server: str


LIBPQ = DriverOptions(
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslmode=verify-full&sslrootcert=/path/to/ca.pem",
    "ssl = on, with ssl_cert_file and ssl_key_file",
)
MYSQLCLIENT = DriverOptions(
    "ssl_ca",
    "ssl_cert",
    "ssl_key",
    "ssl_mode=VERIFY_IDENTITY&ssl_ca=/path/to/ca.pem",
    "ssl_cert and ssl_key in its configuration",
)


def failure_fix(message: str, options: DriverOptions) -> str | None:
    """What to do about a connection that failed with `message`, if TLS is why."""
    for pattern, fix in _FAILURES:
        if pattern.search(message):
            return fix.format(**vars(options))
    return None


# libpq: every TLS option reaches it, and it keeps to the mode; checked here
# are the values and the files, and that certificates come with a mode that
# cannot fall back to plain text.
LIBPQ_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_LIBPQ_REQUIRED = ("require", "verify-ca", "verify-full")
_LIBPQ_FILES = ("sslrootcert", "sslcert", "sslkey", "sslcrl")


def libpq_request(url: URL) -> TLSRequest:
    mode = _option(url, "sslmode")
    if mode is not None and mode not in LIBPQ_MODES:
        raise DatabaseURLError(
            f"the URL asks for sslmode={mode}, which libpq does not know: use one of "
            + ", ".join(LIBPQ_MODES)
        )
    files = {name: _option(url, name) for name in _LIBPQ_FILES}
    given = [name for name, path in files.items() if path is not None]
    if given and mode not in _LIBPQ_REQUIRED:
        shown = f"sslmode={mode}" if mode else "no sslmode (libpq's default is prefer)"
        raise DatabaseURLError(
            f"the URL gives {' and '.join(given)} with {shown}, under which the connection "
            "may be in plain text without a word: add sslmode=verify-full (or verify-ca, "
            "require)"
        )
    _in_pairs(files, "sslcert", "sslkey")
    for name, path in files.items():
        # `system`: the system's trusted CAs (libpq 16 and newer).
        if path is not None and not (name == "sslrootcert" and path == "system"):
            _readable(name, path)
    if mode is None or mode not in _LIBPQ_REQUIRED:
        return TLSRequest(f"sslmode={mode or 'prefer'}", mode)
    # With a root certificate, libpq checks the chain under `require` too.
    return TLSRequest(
        f"sslmode={mode}",
        mode,
        required=True,
        verifies_certificate=mode != "require" or files["sslrootcert"] is not None,
        verifies_name=mode == "verify-full",
    )


def libpq_encryption(dbapi_connection: Any) -> Encryption:
    info = dbapi_connection.info
    if not info.ssl_in_use:
        return Encryption(info.host, info.port, None, None)
    protocol, cipher = info.ssl_attribute("protocol"), info.ssl_attribute("cipher")
    return Encryption(info.host, info.port, protocol, cipher)


# mysqlclient: `ssl_mode` does what MySQL's documentation says only when it
# is built against MySQL's client library. Against MariaDB's, REQUIRED uses
# TLS where the server offers it and plain text where it does not, and
# PREFERRED never tries; VERIFY_CA checks the name too, as VERIFY_IDENTITY
# does. Options it does not know, `ssl_check_hostname` among them, it drops.
# So: an option it would drop is refused, PREFERRED is refused, and under the
# other modes each new connection is checked for TLS before it is used.
MYSQL_MODES = ("DISABLED", "REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY")
_MYSQL_FILES = ("ssl_ca", "ssl_capath", "ssl_cert", "ssl_key")
_MYSQL_OPTIONS = ("ssl_mode", *_MYSQL_FILES, "ssl_cipher")
_MYSQL_OPTIONS_TEXT = (
    "ssl_mode=REQUIRED, VERIFY_CA or VERIFY_IDENTITY (or DISABLED), ssl_ca, ssl_capath, "
    "ssl_cert, ssl_key, ssl_cipher"
)


def mysqlclient_request(url: URL) -> TLSRequest:
    for name in url.query:
        if name.lower().startswith(("ssl", "tls")) and name not in _MYSQL_OPTIONS:
            raise DatabaseURLError(
                f"the URL gives {name}, which mysqlclient would ignore: its TLS options are "
                f"{_MYSQL_OPTIONS_TEXT} (ssl_mode=VERIFY_IDENTITY checks the server's name)"
            )
    mode = _option(url, "ssl_mode")
    mode = None if mode is None else mode.upper()
    if mode == "PREFERRED":
        raise DatabaseURLError(
            "the URL asks for ssl_mode=PREFERRED, which leaves the connection in plain text "
            "without a word (and never tries TLS with MariaDB's client library): use "
            "ssl_mode=VERIFY_IDENTITY or REQUIRED, or DISABLED for plain text"
        )
    if mode is not None and mode not in MYSQL_MODES:
        raise DatabaseURLError(
            f"the URL asks for ssl_mode={mode}, which MySQL does not know: use one of "
            + ", ".join(MYSQL_MODES)
        )
    files = {name: _option(url, name) for name in _MYSQL_FILES}
    given = [name for name in _MYSQL_OPTIONS[1:] if _option(url, name) is not None]
    if given and mode in (None, "DISABLED"):
        raise DatabaseURLError(
            f"the URL gives {' and '.join(given)} with "
            f"{'no ssl_mode' if mode is None else 'ssl_mode=DISABLED'}: add "
            "ssl_mode=VERIFY_IDENTITY (the server's certificate and name verified) or "
            "REQUIRED (encrypted only)"
        )
    if mode == "REQUIRED" and (files["ssl_ca"] or files["ssl_capath"]):
        raise DatabaseURLError(
            "the URL gives a CA with ssl_mode=REQUIRED, under which the CA is checked or "
            "not depending on the client library: use ssl_mode=VERIFY_IDENTITY (or "
            "VERIFY_CA) to verify the server's certificate, or drop the CA"
        )
    _in_pairs(files, "ssl_cert", "ssl_key")
    for name, path in files.items():
        if path is not None:
            _readable(name, path, directory=name == "ssl_capath")
    if mode is None:
        return TLSRequest("ssl_mode not set")
    if mode == "DISABLED":
        return TLSRequest("ssl_mode=DISABLED", mode)
    return TLSRequest(
        f"ssl_mode={mode}",
        mode,
        required=True,
        verifies_certificate=mode != "REQUIRED",
        verifies_name=mode == "VERIFY_IDENTITY",
    )


def mysql_encryption(dbapi_connection: Any, host: str, port: int | None) -> Encryption:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SHOW SESSION STATUS WHERE Variable_name IN ('Ssl_version', 'Ssl_cipher')")
        status = {str(name): str(value) for name, value in cursor.fetchall()}
    finally:
        cursor.close()
    return Encryption(
        host, port, status.get("Ssl_version") or None, status.get("Ssl_cipher") or None
    )


def _option(url: URL, name: str) -> str | None:
    values = url.normalized_query.get(name, ())
    if len(values) > 1:
        raise DatabaseURLError(f"the URL gives {name} more than once: give it once")
    return values[0] if values else None


def _in_pairs(files: dict[str, str | None], cert: str, key: str) -> None:
    if (files[cert] is None) != (files[key] is None):
        raise DatabaseURLError(
            f"the URL gives one of {cert} and {key}: a client certificate needs both"
        )


def _readable(name: str, path: str, *, directory: bool = False) -> None:
    """Refuse a file the driver could not read; the error shows its path."""
    found = Path(path)
    usable = found.is_dir() if directory else found.is_file()
    if not usable:
        what = "directory" if directory else "file"
        raise DatabaseURLError(f"the URL's {name}={path}: no such {what}")
    try:
        if not directory:
            with found.open("rb"):
                pass
    except OSError as error:
        raise DatabaseURLError(
            f"the URL's {name}={path} cannot be read: {error.strerror}"
        ) from None
