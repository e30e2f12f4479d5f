"""One settings object: defaults, TOML file, environment, flags; a clear line for a bad value;
`docs/configuration.md` lists every setting with its default."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from paywire.cli.main import app
from paywire.settings import Settings, SettingsError, describe, load

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_sources_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "paywire.toml"
    config.write_text('business_name = "From file"\npublic_url = "https://pay.example.com/"\n')
    monkeypatch.delenv("PAYWIRE_CONFIG", raising=False)
    assert load(config).business_name == "From file"
    assert load(config).public_url == "https://pay.example.com"  # no trailing slash
    monkeypatch.setenv("PAYWIRE_BUSINESS_NAME", "From env")
    assert load(config).business_name == "From env"
    assert load(config, business_name="From flag").business_name == "From flag"


def test_a_bad_setting_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYWIRE_PUBLIC_URL", "ftp://example.com")
    with pytest.raises(SettingsError, match=r"^setting public_url \(PAYWIRE_PUBLIC_URL\): must be an http\(s\) URL$"):
        load()
    monkeypatch.delenv("PAYWIRE_PUBLIC_URL")
    monkeypatch.setenv("PAYWIRE_NO_SUCH_SETTING", "1")  # unknown variables of the prefix are ignored
    assert load().business_name == "Paywire"
    with pytest.raises(SettingsError, match="does not exist"):
        load("/no/such/paywire.toml")


def test_config_command_masks_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYWIRE_STRIPE_SECRET_KEY", "sk_live_0123456789abcdefSECRET")
    monkeypatch.setenv("PAYWIRE_DATABASE_URL", "postgresql://paywire:hunter2@db:5432/paywire")
    result = CliRunner().invoke(app, ["config"])
    assert result.exit_code == 0
    assert "SECRET" not in result.output and "hunter2" not in result.output
    assert "stripe_secret_key = sk_live_…(masked)" in result.output
    assert "database_url = postgresql://paywire:***@db:5432/paywire" in result.output
    monkeypatch.setenv("PAYWIRE_PUBLIC_URL", "nope")
    bad = CliRunner().invoke(app, ["config"])
    assert bad.exit_code == 2 and "setting public_url (PAYWIRE_PUBLIC_URL)" in bad.output


def test_docs_list_every_setting_with_its_default() -> None:
    text = DOCS.read_text()
    defaults = dict(describe(Settings.model_construct()))
    for name, field in Settings.model_fields.items():
        default = "(unset)" if field.default is None else f"`{defaults[name]}`"
        row = f"| `{name}` | `PAYWIRE_{name.upper()}` | {default} | {field.description} |"
        assert row in text, f"docs/configuration.md lacks or misstates {name}: expected {row}"


def test_delivery_pool_http_and_log_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from paywire.app import delivery_config
    from paywire.cli.server import http_limits

    monkeypatch.setenv("PAYWIRE_WEBHOOK_TIMEOUT", "3")
    monkeypatch.setenv("PAYWIRE_WEBHOOK_RETRY_SCHEDULE", "0.2, 0.5,1")
    monkeypatch.setenv("PAYWIRE_WEBHOOK_LEASE", "")  # empty: unset, as before
    monkeypatch.setenv("PAYWIRE_WEBHOOK_POLL_INTERVAL", "0.1")
    monkeypatch.setenv("PAYWIRE_ALLOW_PRIVATE_NETWORKS", "yes")
    monkeypatch.setenv("PAYWIRE_DATABASE_POOL_TIMEOUT", "0.5")
    monkeypatch.setenv("PAYWIRE_HTTP_LIMIT_CONCURRENCY", "0")
    monkeypatch.setenv("PAYWIRE_LOG_FORMAT", "json")
    settings = load(http_header_timeout=2.5)  # a flag on top
    config = delivery_config(settings, concurrency=7)
    assert (config.timeout, config.schedule, config.lease_seconds) == (3.0, (0.2, 0.5, 1.0), 33.0)
    assert config.poll_interval == 0.1
    assert config.allow_private_networks and config.concurrency == 7 and config.per_endpoint == 10
    assert settings.database_pool_timeout == 0.5 and settings.log_format == "json"
    limits = http_limits(settings)
    assert (limits.header_timeout, limits.limit_concurrency, limits.max_header_bytes) == (2.5, None, 16384)
    monkeypatch.delenv("PAYWIRE_WEBHOOK_RETRY_SCHEDULE")
    from paywire.webhooks.retry import RETRY_SCHEDULE

    assert delivery_config(load()).schedule == RETRY_SCHEDULE


def test_toml_takes_a_retry_schedule_as_a_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAYWIRE_CONFIG", raising=False)
    config = tmp_path / "paywire.toml"
    config.write_text("webhook_retry_schedule = [5, 300]\nwebhook_per_endpoint = 4\n")
    settings = load(config)
    assert settings.webhook_retry_schedule == (5.0, 300.0) and settings.webhook_per_endpoint == 4


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("PAYWIRE_WEBHOOK_RETRY_SCHEDULE", "5,soon", "must be comma-separated seconds, for example 5,300,1800"),
        (
            "PAYWIRE_WEBHOOK_RETRY_SCHEDULE",
            "5,-1",
            "must be one or more seconds (none negative), for example 5,300,1800",
        ),
        ("PAYWIRE_WEBHOOK_TIMEOUT", "0", "Input should be greater than 0"),
        ("PAYWIRE_DATABASE_POOL_TIMEOUT", "soon", "Input should be a valid number, unable to parse string as a number"),
        ("PAYWIRE_ALLOW_PRIVATE_NETWORKS", "maybe", "Input should be a valid boolean, unable to interpret input"),
        ("PAYWIRE_HTTP_MAX_HEADER_BYTES", "100", "Input should be greater than or equal to 1024"),
        ("PAYWIRE_LOG_FORMAT", "xml", "Input should be 'text' or 'json'"),
    ],
)
def test_a_bad_delivery_http_or_log_setting_stops_start_up_naming_it(
    variable: str, value: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    name = variable.removeprefix("PAYWIRE_").lower()
    with pytest.raises(SettingsError) as raised:
        load()
    assert str(raised.value) == f"setting {name} ({variable}): {message}"
    result = CliRunner().invoke(app, ["serve", "--no-worker"])  # stops before listening or touching a database
    assert result.exit_code == 2 and f"setting {name} ({variable})" in result.output


def test_retention_pacing_comes_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from paywire.ops.retention import Policy

    monkeypatch.setenv("PAYWIRE_RETENTION_DUTY", "0.05")
    monkeypatch.setenv("PAYWIRE_RETENTION_BATCH_SECONDS", "0.01")
    policy = Policy.from_settings(load())
    assert (policy.duty, policy.batch_seconds) == (0.05, 0.01)
    monkeypatch.setenv("PAYWIRE_RETENTION_DUTY", "0")
    with pytest.raises(SettingsError, match="retention_duty"):
        load()
