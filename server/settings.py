"""Settings from ALPHANODE_* environment variables, overridable by command-line options."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///alphanode.db"


class Settings(BaseSettings):
    """Everything the service reads from its environment. Built by the CLI or by tests, never at import."""

    model_config = SettingsConfigDict(env_prefix="ALPHANODE_", extra="ignore")

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL of the store: sqlite:///path (default, relative to the working "
        "directory) or postgresql://user@host/db",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    env: Literal["development", "production"] = "development"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    max_body_bytes: int = Field(default=1_000_000, description="Largest request body accepted, in bytes")
    read_pool_size: int = Field(default=8, description="Connections per process for reads")
