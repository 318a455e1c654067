"""Configuration: one pydantic-settings class, ``VOICEBOOK_*`` environment variables and ``.env``.

The names are part of the external contract (``DESIGN.md``); add, never rename.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+psycopg": "postgresql+asyncpg",
    "postgresql+psycopg2": "postgresql+asyncpg",
    "mysql": "mysql+aiomysql",
    "mariadb": "mysql+aiomysql",
    "mysql+pymysql": "mysql+aiomysql",
    "mariadb+pymysql": "mysql+aiomysql",
    "mariadb+aiomysql": "mysql+aiomysql",
}


def to_async_url(url: str) -> str:
    """Use the asyncio driver of whatever database the URL names (``sqlite:///x`` → aiosqlite)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not a database URL: {url!r}")
    return f"{_ASYNC_DRIVERS.get(scheme, scheme)}://{rest}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="VOICEBOOK_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str = "sqlite:///./voicebook.db"
    calcom_base_url: str = "https://api.cal.com"
    calcom_api_key: SecretStr | None = None
    calcom_webhook_secret: SecretStr | None = None
    calcom_timeout_seconds: float = 10.0
    retell_api_key: SecretStr | None = None
    retell_insecure_dev_mode: bool = Field(
        default=False,
        description="Accept unsigned Retell requests. Only for local trials; logged loudly.",
    )
    admin_token: SecretStr | None = None
    tenants_file: Path | None = None
    duplicate_prevention_enabled: bool = True
    stale_booking_seconds: float = 30.0
    clock_skew_seconds: float = 5.0
    fallback_email_template: str = "booking+{call_id}@{company_domain}"
    attempt_lock_seconds: float = 30.0
    resolve_budget_seconds: float = 8.0
    reconcile_interval_seconds: float = 60.0
    reconcile_deadline_seconds: float = 3600.0
    attempt_retention_hours: float = 72.0
    sandbox_state_file: Path | None = None
    sandbox_control_enabled: bool = False
    sandbox_webhook_url: str | None = None
    secret_key: SecretStr | None = Field(
        default=None,
        description="Fernet key(s), comma-separated, first encrypts: seals the tenants' own credentials.",
    )
    redis_url: str | None = None
    log_level: str = "INFO"
    log_json: bool = True

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        to_async_url(value)
        return value

    @model_validator(mode="after")
    def _fallback_email_is_per_call(self) -> Settings:
        # A template without {call_id} gives every caller the same address, which lets Cal.com's
        # dedupe hand one caller another caller's booking (the seed incident's root cause).
        if "{call_id}" not in self.fallback_email_template:
            raise ValueError(
                "VOICEBOOK_FALLBACK_EMAIL_TEMPLATE must contain {call_id}: a shared fallback address "
                "lets Cal.com merge two callers into one booking"
            )
        return self

    @property
    def async_database_url(self) -> str:
        return to_async_url(self.database_url)

    @property
    def uses_sandbox(self) -> bool:
        return self.calcom_api_key is None


@lru_cache
def get_settings() -> Settings:
    return Settings()
