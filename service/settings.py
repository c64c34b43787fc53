from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Configuration from the environment and a `.env` file in the working directory."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # Secret so that the password never shows up in a repr, a log line or a traceback.
    database_url: SecretStr = SecretStr("sqlite:///./items.db")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    web_concurrency: int = Field(default=1, ge=1)
    access_log: bool = True
    db_pool_size: int | None = Field(default=None, ge=1)
    db_max_overflow: int | None = Field(default=None, ge=0)
    db_pool_timeout: float | None = Field(default=None, gt=0)
    db_connect_timeout: int = Field(default=5, ge=1)
    db_echo: bool = False
    migrate_on_start: bool = True
    # Bearer tokens, comma-separated, that writes (and, if asked, reads) need.
    api_tokens: SecretStr | None = None
    api_tokens_for_reads: bool = False
    # Writes answered 503 (with Retry-After), reads served: while the database moves.
    read_only: bool = False
