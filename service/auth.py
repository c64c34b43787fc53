"""Who may write: optional bearer tokens (`API_TOKENS`), and reads too when asked;
no one while the service is read-only (`READ_ONLY`).

With no tokens set, every route is open, as the service always was. With
tokens, each route that needs one depends on `Access.writes` (or `.reads`):
FastAPI's `HTTPBearer` declares the scheme in the OpenAPI document, so
`/docs` shows the Authorize button, and the token is then compared with
every configured one in constant time.
"""

import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, HTTPException, params, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.errors import RETRY_AFTER_SECONDS
from service.settings import Settings

# One answer for a missing header, another scheme, and a wrong token alike:
# it must not tell a caller which part was wrong.
UNAUTHORIZED = "Send a valid token in the header Authorization: Bearer <token>"


# Shorter than this, a token could be guessed; `openssl rand -hex 32` makes 64 characters.
MIN_TOKEN_CHARACTERS = 32


class TokenError(ValueError):
    """`API_TOKENS` holds no token, or one too short. The message never contains a token."""


# While the service is read-only, writes are answered so, and clients may retry.
READ_ONLY = (
    "The service is read-only for now (READ_ONLY is set): writes are refused while its "
    "database moves. Try again later."
)


@dataclass(frozen=True)
class Access:
    """The dependencies that reading and writing routes take (none: open), and
    the answers they add, for the OpenAPI document."""

    reads: list[params.Depends] = field(default_factory=list)
    writes: list[params.Depends] = field(default_factory=list)
    read_errors: tuple[int, ...] = ()
    write_errors: tuple[int, ...] = ()


def access(settings: Settings) -> Access:
    read_only = [Depends(_refuse_writes)] if settings.read_only else []
    read_only_errors = (503,) if settings.read_only else ()
    if settings.api_tokens is None:
        return Access(writes=read_only, write_errors=read_only_errors)
    tokens = [token.strip() for token in settings.api_tokens.get_secret_value().split(",")]
    tokens = [token for token in tokens if token]
    if not tokens:
        raise TokenError(
            "API_TOKENS is set but holds no token: set it to one or more, comma-separated"
        )
    short = [n for n, token in enumerate(tokens, 1) if len(token) < MIN_TOKEN_CHARACTERS]
    if short:
        which = ", ".join(map(str, short))
        raise TokenError(
            f"API_TOKENS holds a token shorter than {MIN_TOKEN_CHARACTERS} characters (number "
            f"{which} of {len(tokens)}), too short to be secret: make each one with "
            "openssl rand -hex 32"
        )
    check = [Depends(_token_check([token.encode() for token in tokens]))]
    reads = check if settings.api_tokens_for_reads else []
    return Access(
        reads=reads,
        writes=[*check, *read_only],
        read_errors=(401,) if reads else (),
        write_errors=(401, *read_only_errors),
    )


async def _refuse_writes() -> None:
    raise HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        detail=READ_ONLY,
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


_bearer = HTTPBearer(
    auto_error=False,
    description="One of the service's `API_TOKENS`.",
)


def _token_check(tokens: list[bytes]) -> Callable[..., Awaitable[None]]:
    async def token_check(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        given = b"" if credentials is None else credentials.credentials.encode()
        # Against every token, whatever matched: the time taken says nothing of which.
        matched = False
        for token in tokens:
            matched |= hmac.compare_digest(given, token)
        if credentials is None or not matched:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail=UNAUTHORIZED,
                headers={"WWW-Authenticate": "Bearer"},
            )

    return token_check


def open_to_anyone(settings: Settings) -> bool:
    """Whether anyone who reaches the service may write: no tokens, and an
    address other than loopback."""
    if settings.api_tokens is not None:
        return False
    if settings.host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(settings.host).is_loopback
    except ValueError:  # a host name
        return True
