"""Configuration: one pydantic-settings class, ``VOICEBOOK_*`` environment variables and ``.env``.

The names are part of the external contract (README "Configuration"); add, never rename.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
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

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def to_async_url(url: str) -> str:
    """Use the asyncio driver of whatever database the URL names (``sqlite:///x`` → aiosqlite)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not a database URL: {url!r}")
    return f"{_ASYNC_DRIVERS.get(scheme, scheme)}://{rest}"


# Secrets whose empty value must mean "unset": an empty HMAC key is a key anyone can sign with.
SECRET_FIELDS = ("retell_api_key", "calcom_webhook_secret", "admin_token", "calcom_api_key")


def _is_blank(value: object) -> bool:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return isinstance(value, str) and not value.strip()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="VOICEBOOK_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str = "sqlite:///./voicebook.db"
    calcom_base_url: str = "https://api.cal.com"
    calcom_api_key: SecretStr | None = None
    calcom_webhook_secret: SecretStr | None = None
    calcom_timeout_seconds: float = 10.0
    # Requests a minute each Cal.com credential may make (Cal.com's default for an API key is 120; it can
    # raise a key's limit): the capacity of every credential's shared rate budget, refilled at this rate.
    calcom_rate_limit_per_minute: int = Field(default=120, ge=1)
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
    # Limits (docs/LIMITS.md): what one client can make the server hold or read.
    api_docs_enabled: bool = False
    max_body_bytes: int = Field(default=262_144, ge=1024, le=64 * 1024 * 1024)
    max_json_depth: int = Field(default=32, ge=2, le=256)
    body_read_timeout_seconds: float = Field(default=15.0, gt=0, le=600)
    header_read_timeout_seconds: float = Field(default=10.0, gt=0, le=600)
    keep_alive_timeout_seconds: int = Field(default=5, ge=1, le=600)
    max_connections: int = Field(default=1000, ge=1, le=100_000)
    max_header_bytes: int = Field(default=16_384, ge=1024, le=1024 * 1024)
    login_attempts_per_minute: int = Field(default=10, ge=1, le=10_000)

    _blank_secrets: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="wrap")
    @classmethod
    def _blank_secret_is_unset(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Settings:
        # ``VOICEBOOK_CALCOM_WEBHOOK_SECRET=`` in a .env must close the door, not sign with b"".
        blank: list[str] = []
        if isinstance(data, dict):
            data = dict(data)
            for name in SECRET_FIELDS:
                if _is_blank(data.get(name)):
                    data[name] = None
                    blank.append(name)
        settings: Settings = handler(data)
        settings._blank_secrets = tuple(blank)
        return settings

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        to_async_url(value)
        return value

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        # Checked here, so a typo is one settings line and not a traceback from logging's set-up.
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"{value!r} is not a log level; use one of {', '.join(LOG_LEVELS)}")
        return level

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

    @property
    def blank_secrets(self) -> tuple[str, ...]:
        """The secret settings that were given but empty (and so count as unset), for the start-up line."""
        return self._blank_secrets

    def secret_values(self) -> list[str]:
        """Every configured secret in clear text, so that log redaction can recognise it anywhere."""
        values: list[str] = []
        for name in SECRET_FIELDS:
            secret = getattr(self, name)
            if isinstance(secret, SecretStr) and secret.get_secret_value().strip():
                values.append(secret.get_secret_value())
        return values


@lru_cache
def get_settings() -> Settings:
    return Settings()
