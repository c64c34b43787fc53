import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

import annotated_types
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The settings that may come from a file named by `<NAME>_FILE` (Docker and
# Kubernetes secrets) instead of the variable itself.
SECRET_SETTINGS = ("database_url", "api_tokens")


class SettingsError(ValueError):
    """A setting the service cannot use. The message never contains a secret."""


class Settings(BaseSettings):
    """Configuration from the environment and a `.env` file in the working directory."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # Secret so that the password never shows up in a repr, a log line or a traceback.
    database_url: SecretStr = SecretStr("sqlite:///./items.db")
    database_url_file: Path | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    web_concurrency: int = Field(default=1, ge=1)
    access_log: bool = True
    # Log lines as JSON objects, one a line, for a log store; plain for a terminal.
    log_format: Literal["plain", "json"] = "plain"
    # GET /metrics in Prometheus' text format (service/telemetry/).
    metrics: bool = False
    db_pool_size: int | None = Field(default=None, ge=1)
    db_max_overflow: int | None = Field(default=None, ge=0)
    db_pool_timeout: float | None = Field(default=None, gt=0)
    db_connect_timeout: int = Field(default=5, ge=1)
    db_echo: bool = False
    migrate_on_start: bool = True
    # Bearer tokens, comma-separated, that writes (and, if asked, reads) need.
    api_tokens: SecretStr | None = None
    api_tokens_file: Path | None = None
    api_tokens_for_reads: bool = False
    # Writes answered 503 (with Retry-After), reads served: while the database moves.
    read_only: bool = False
    # A request that waited this long before its work started is answered 503
    # with Retry-After (off when unset).
    max_queue_seconds: float | None = Field(default=None, gt=0)
    # Origins whose pages may call the API from a browser, comma-separated; none by default.
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()

    @model_validator(mode="before")
    @classmethod
    def secrets_from_files(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        for name in SECRET_SETTINGS:
            path = values.get(f"{name}_file")
            if path is None:
                continue
            variable = name.upper()
            if values.get(name) is not None:
                raise ValueError(f"{variable} and {variable}_FILE are both set: set one of them")
            values = values | {name: read_secret(Path(path), f"{variable}_FILE")}
        return values

    @field_validator("cors_origins", mode="before")
    @classmethod
    def origins(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        origins = tuple(origin.strip() for origin in value.split(",") if origin.strip())
        for origin in origins:
            parts = urlsplit(origin)
            if (
                parts.scheme not in ("http", "https")
                or not parts.netloc
                or origin != (f"{parts.scheme}://{parts.netloc}")
            ):
                raise ValueError(
                    f"{origin!r} is not an origin: each is scheme://host[:port], with no "
                    "path or trailing slash, as a browser sends it (https://app.example.com)"
                )
        return origins


def read_secret(path: Path, variable: str) -> str:
    """The file's content, less its trailing newline; an error shows the path, never the content."""
    try:
        return path.read_text().removesuffix("\n").removesuffix("\r")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or "not UTF-8 text"
        raise ValueError(f"{variable}={path} cannot be read: {reason}") from None


def load_settings() -> Settings:
    """The settings, or a SettingsError that names each variable that is wrong and
    what it accepts, in one line."""
    try:
        return Settings()
    except ValidationError as error:
        raise SettingsError("; ".join(_explained(e) for e in error.errors())) from None


def _explained(error: Any) -> str:
    name = str(error["loc"][0]) if error["loc"] else ""
    if error["type"] == "value_error":
        reason = str(error["ctx"]["error"])
        return f"{name.upper()}: {reason}" if name else reason
    field = Settings.model_fields[name]
    # Secrets are never repeated; other values help to find the typo.
    given = "" if name in SECRET_SETTINGS else f"={error['input']}"
    return f"{name.upper()}{given} is not valid: use {_accepted(field)}"


def _accepted(field: FieldInfo) -> str:
    kind = field.annotation
    if get_origin(kind) in (Union, types.UnionType):
        kind = next(arg for arg in get_args(kind) if arg is not type(None))
    if kind is bool:
        return "true or false (also 1 or 0, yes or no, on or off)"
    if get_origin(kind) is Literal:
        return "one of " + ", ".join(str(choice) for choice in get_args(kind))
    noun = "a whole number" if kind is int else "a number" if kind is float else "a value"
    bounds = {type(m): m for m in field.metadata}
    low = bounds.get(annotated_types.Ge)
    high = bounds.get(annotated_types.Le)
    above = bounds.get(annotated_types.Gt)
    if low is not None and high is not None:
        return f"{noun} from {low.ge} to {high.le}"
    if low is not None:
        return f"{noun}, {low.ge} or more"
    if above is not None:
        return f"{noun} above {above.gt}"
    return noun
