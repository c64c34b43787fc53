"""Encryption: whether the connection is encrypted, how, to which server, and
whether that server proved who it is."""

from sqlalchemy.engine import Connection

from service.check.findings import Finding
from service.db.backends import Backend
from service.db.backends.tls import failure_fix, not_encrypted


def encrypted(connection: Connection, backend: Backend) -> Finding | None:
    state, asked, options = backend.encryption(connection), backend.tls, backend.tls_options
    if state is None or options is None:
        return None
    if state.protocol is None:
        if asked.required:
            # Refused when connecting; here in case anything ever lets one through.
            message = not_encrypted(state, asked)
            return Finding("problem", message, failure_fix(message, options))
        if state.on_loopback:
            return Finding("ok", f"none: plain text to {state.server}, on this machine")
        return Finding(
            "warning",
            f"none: plain text to {state.server}, across the network ({asked.asked}): "
            "anyone on the way can read it",
            f"turn TLS on at the server and ask for it in the URL: {options.verified}",
        )
    if asked.verifies_name:
        verified = "the server's certificate and name verified"
    elif asked.verifies_certificate:
        verified = "the server's certificate verified, not its name"
    else:
        verified = "the server's certificate not verified"
    found = f"{state.protocol}, {state.cipher}, to {state.server}; {verified} ({asked.asked})"
    if asked.verifies_certificate or state.on_loopback:
        return Finding("ok", found)
    return Finding(
        "warning",
        f"{found}: a machine on the way could pose as the server",
        f"verify it: {options.verified}",
    )
