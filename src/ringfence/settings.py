"""Settings, read from ``RINGFENCE_*`` environment variables (and a ``.env`` file if present)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
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
    coalesce: Literal["caller", "partition", "off"] = Field(
        default="caller",
        description="How concurrent single operations share transactions (each still answered "
        "on its own): 'caller' batches one caller's operations of a kind across products, "
        "'partition' only those on the same product (single-shard transactions on a "
        "distributed database), 'off' runs each alone",
    )
    at_once: bool = Field(
        default=True,
        description="On PostgreSQL, decide a batch of consumes of one quantity at one path, "
        "and a batch of on-hand change events, in one statement under the products' locks "
        "(one round trip); false decides every batch in Python between its read and its writes",
    )
    log_level: str = Field(default="info", description="debug, info, warning or error")

    @field_validator("coalesce", mode="before")
    @classmethod
    def _coalesce_as_switch(cls, value: object) -> object:
        """``true``/``false`` read as the default and ``off``."""
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return "caller"
        if isinstance(value, str) and value.lower() in ("false", "0", "no"):
            return "off"
        return value
