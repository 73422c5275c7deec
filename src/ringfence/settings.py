"""Settings, read from ``RINGFENCE_*`` environment variables (and a ``.env`` file if present)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RINGFENCE_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default="sqlite:///./ringfence.db",
        description="sqlite:///FILE (embedded default) or postgresql+psycopg://USER@HOST/DB",
    )
    pool_size: int = Field(default=16, ge=1, le=100, description="Database connections per process")
    max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="Largest request body accepted (413 beyond)"
    )
    coalesce: bool = Field(
        default=True,
        description="Apply concurrent single operations on one product together in one "
        "transaction (each still answered on its own); false runs each alone",
    )
    log_level: str = Field(default="info", description="debug, info, warning or error")
