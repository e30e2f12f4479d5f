"""Every setting of a Paywire process, in one object.

Read in this order, later ones winning: the defaults below, a TOML file (`--config` or
`PAYWIRE_CONFIG`), `PAYWIRE_*` environment variables, then command-line flags (passed to
`load` as overrides). A bad value stops start-up with one line naming the setting.
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from paywire.config import DEFAULT_POOL_TIMEOUT, DEFAULT_SQLITE_PATH

CONFIG_ENV = "PAYWIRE_CONFIG"
_config_file: ContextVar[Path | None] = ContextVar("paywire_config_file", default=None)
_PASSWORD_IN_URL = re.compile(r"(://[^:/@]*:)[^@/]*@")


class Settings(BaseSettings):
    # An empty variable counts as unset (as the delivery variables always did).
    model_config = SettingsConfigDict(
        env_prefix="PAYWIRE_", extra="forbid", validate_default=True, env_ignore_empty=True
    )

    database_url: str = Field(f"sqlite:///{DEFAULT_SQLITE_PATH}", description="sqlite:///path or postgresql://…")
    database_pool_timeout: float = Field(
        DEFAULT_POOL_TIMEOUT,
        gt=0,
        description="Seconds a request waits for a free pooled database connection before answering 503 "
        "database_pool_exhausted",
    )
    public_url: str | None = Field(
        None, description="Base URL payers and operators reach this server at (default: the address serve listens on)"
    )
    business_name: str = Field("Paywire", description="Shown on checkout, portal and invoice pages")
    default_locale: Literal["en", "zh"] = Field(
        "en", description="Language of the payer pages when the browser asks for none Paywire speaks"
    )
    stripe_secret_key: SecretStr | None = Field(None, description="Stripe secret key (sk_live_… or sk_test_…)")
    stripe_publishable_key: str | None = Field(None, description="Stripe publishable key, for Stripe.js on checkout")
    stripe_webhook_secret: SecretStr | None = Field(None, description="Signing secret of Stripe's webhooks (whsec_…)")
    stripe_api_base: str = Field("https://api.stripe.com", description="Stripe API base URL")
    stripe_js_url: str = Field("https://js.stripe.com/v3/", description="Where the checkout page loads Stripe.js from")
    test_provider: Literal["builtin", "stripe"] | None = Field(
        None,
        description="Test mode's payment provider (default: stripe with an sk_test_ Stripe key, else builtin)",
    )
    charge_grace_seconds: float = Field(
        60.0, gt=0, description="A charge or refund left unsettled this long (a crash) is settled by the reconciler"
    )
    metrics_token: SecretStr | None = Field(
        None, description="Bearer token /metrics asks for; unset: /metrics answers loopback clients only"
    )
    encryption_key: SecretStr | None = Field(
        None,
        description="Base64 of 32 bytes: the AES-256-GCM key of the secrets stored in the database; "
        "unset: a key file beside a SQLite database (required with PostgreSQL)",
    )
    encryption_old_keys: SecretStr | None = Field(
        None, description="Comma-separated older keys (base64), still read while `paywire encryption rotate` runs"
    )

    @field_validator("encryption_key", "encryption_old_keys")
    @classmethod
    def _encryption_keys(cls, value: SecretStr | None) -> SecretStr | None:
        from paywire.secrets_at_rest import SecretsError, parse_key

        if value is not None:
            keys = [k for k in value.get_secret_value().split(",") if k.strip()]
            if not keys:
                raise ValueError("must be base64 of 32 random bytes")
            for key in keys:
                try:
                    parse_key(key, "each key")
                except SecretsError as exc:
                    raise ValueError(str(exc)) from None
        return value

    def encryption_keys(self) -> tuple[str | None, str | None]:
        """(current key, comma-separated older keys), as configured."""
        current, old = self.encryption_key, self.encryption_old_keys
        return (current.get_secret_value() if current else None, old.get_secret_value() if old else None)

    retention_days: int = Field(
        30, gt=0, description="Days events, webhook deliveries and attempts are kept (the per-kind settings win)"
    )
    retention_events_days: int | None = Field(
        None, gt=0, description="Days events and their finished deliveries are kept (unset: retention_days)"
    )
    retention_attempts_days: int | None = Field(
        None, gt=0, description="Days webhook attempts (request logs) are kept (unset: retention_days)"
    )
    retention_idempotency_days: int = Field(1, gt=0, description="Days an idempotency key is remembered")
    retention_interval: int = Field(600, gt=0, description="Seconds between retention runs of the worker")
    retention_batch_size: int = Field(1000, ge=1, le=100_000, description="Rows removed per retention transaction")
    retention_batch_seconds: float = Field(
        0.02, gt=0, le=10, description="Seconds a retention batch aims to take (its size adapts to it)"
    )
    retention_duty: float = Field(
        0.05, gt=0, le=1, description="Share of the time retention batches may take (lower: gentler on writers, slower)"
    )
    archive_dir: Path | None = Field(
        None, description="Folder pruned events are appended to first (events-YYYY-MM-DD.jsonl.gz); unset: none"
    )

    # Webhook delivery (the dispatcher of `serve` and `worker`).
    webhook_timeout: float = Field(15.0, gt=0, description="Seconds each webhook request may take")
    webhook_retry_schedule: Annotated[tuple[float, ...] | None, NoDecode] = Field(
        None,
        description="Comma-separated seconds between a delivery's attempts "
        "(unset: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h)",
    )
    webhook_lease: float | None = Field(
        None, gt=0, description="Seconds a claimed delivery is held by its worker (unset: webhook_timeout + 30)"
    )
    webhook_poll_interval: float = Field(
        1.0, gt=0, description="Seconds between the dispatcher's polls when no commit wakes it"
    )
    webhook_concurrency: int = Field(
        200, ge=1, le=10_000, description="Webhook requests in flight, all endpoints together (worker --concurrency)"
    )
    webhook_per_endpoint: int = Field(10, ge=1, le=1000, description="Webhook requests in flight to one endpoint")
    allow_private_networks: bool = Field(
        False, description="Let live-mode endpoints reach loopback, private and link-local addresses"
    )

    # `serve`'s HTTP server (each also a flag of `serve`).
    http_header_timeout: float = Field(
        10.0, ge=0.1, description="Seconds a client has to send a request's line and headers (--header-timeout)"
    )
    http_keep_alive_timeout: int = Field(
        5, ge=1, description="Seconds an idle keep-alive connection is kept open (--keep-alive-timeout)"
    )
    http_max_header_bytes: int = Field(
        16 * 1024, ge=1024, description="Largest request line and headers, in bytes; larger: 400 (--max-header-bytes)"
    )
    http_limit_concurrency: int = Field(
        2048, ge=0, description="Connections at once before new requests get 503; 0: no limit (--limit-concurrency)"
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="text, or json: one JSON object per log line (--log-format)"
    )

    @field_validator("webhook_retry_schedule", mode="before")
    @classmethod
    def _retry_schedule(cls, value: object) -> object:
        if isinstance(value, str):  # the environment's form: "5,300,1800"
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, (list, tuple)):
            try:
                delays = tuple(float(part) for part in value)
            except (TypeError, ValueError):
                raise ValueError("must be comma-separated seconds, for example 5,300,1800") from None
            if not delays or any(delay < 0 for delay in delays):
                raise ValueError("must be one or more seconds (none negative), for example 5,300,1800")
            return delays
        return value

    @field_validator("public_url", "stripe_api_base", "stripe_js_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("public_url", "stripe_api_base")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql:", "postgres:", "postgresql+asyncpg:")):
            raise ValueError("must be sqlite:///path or postgresql://user:password@host/db")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file.get() or os.environ.get(CONFIG_ENV)
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)


class SettingsError(ValueError):
    """A setting that cannot be used; its message is the one line start-up prints."""


def load(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """The effective settings; `overrides` (command-line flags) win over everything, None skipped."""
    path = Path(config_file) if config_file is not None else None
    if path is None and os.environ.get(CONFIG_ENV):
        path = Path(os.environ[CONFIG_ENV])
    if path is not None and not path.is_file():
        raise SettingsError(f"config file {str(path)!r} does not exist")
    given = {k: v for k, v in overrides.items() if v is not None}
    token = _config_file.set(path)
    try:
        return Settings(**given)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"]) or "settings"
        env = f"PAYWIRE_{name.upper()}"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise SettingsError(f"setting {name} ({env}): {message}") from None
    finally:
        _config_file.reset(token)


def describe(settings: Settings) -> list[tuple[str, str]]:
    """Each setting as (name, value shown): secrets masked, unset ones as `(unset)`."""
    shown = []
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is None:
            text = "(unset)"
        elif isinstance(value, SecretStr):
            secret = value.get_secret_value()
            shows_prefix = len(secret) > 12 and not name.startswith("encryption_")  # a key shows nothing
            text = f"{secret[:8]}…(masked)" if shows_prefix else "…(masked)"
        else:
            text = _PASSWORD_IN_URL.sub(r"\1***@", str(value))
        shown.append((name, text))
    return shown
