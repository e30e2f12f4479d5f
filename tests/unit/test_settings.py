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
