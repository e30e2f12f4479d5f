"""The envelope format of `paywire.secrets_at_rest`: AES-256-GCM, random nonce, associated data,
several keys, clear errors for a wrong key, a moved or damaged value, a bad key setting."""

from __future__ import annotations

import base64
import time

import pytest

from paywire.secrets_at_rest import (
    Keyring,
    SecretsError,
    envelope_key_id,
    generate_key,
    is_encrypted,
    key_id,
    parse_key,
)
from paywire.settings import SettingsError, describe, load

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
AAD = "webhook_endpoints.secret:we_1"


def test_round_trip_with_a_fresh_nonce_each_time() -> None:
    keyring = Keyring.from_text(generate_key())
    one, two = keyring.encrypt(SECRET, AAD), keyring.encrypt(SECRET, AAD)
    assert one != two and one.startswith(f"enc:v1:{keyring.current_id}:") and is_encrypted(one)
    assert SECRET not in one and SECRET.removeprefix("whsec_") not in one
    raw = base64.b64decode(one.rsplit(":", 1)[1])
    assert len(raw) == 12 + len(SECRET) + 16  # nonce, ciphertext, tag
    assert keyring.decrypt(one, AAD) == keyring.decrypt(two, AAD) == SECRET
    assert keyring.decrypt(SECRET, AAD) == SECRET  # a plain value of an older release


def test_associated_data_binds_the_value_to_its_row_and_column() -> None:
    keyring = Keyring.from_text(generate_key())
    sealed = keyring.encrypt(SECRET, AAD)
    for other in ("webhook_endpoints.secret:we_2", "webhook_endpoints.previous_secrets:we_1"):
        with pytest.raises(SecretsError, match="does not decrypt"):
            keyring.decrypt(sealed, other)


def test_wrong_key_and_damaged_values_are_clear_errors() -> None:
    old, new = generate_key(), generate_key()
    sealed = Keyring.from_text(old).encrypt(SECRET, AAD)
    with pytest.raises(SecretsError, match=f"encrypted with key {key_id(parse_key(old))}, which this process"):
        Keyring.from_text(new).decrypt(sealed, AAD)
    # The same id with other key bytes (a damaged envelope, or a forged id): no garbage either.
    forged = sealed.replace(envelope_key_id(sealed) or "", Keyring.from_text(new).current_id)
    with pytest.raises(SecretsError, match="does not decrypt"):
        Keyring.from_text(new).decrypt(forged, AAD)
    flipped = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]
    with pytest.raises(SecretsError, match="does not decrypt"):
        Keyring.from_text(old).decrypt(flipped, AAD)
    with pytest.raises(SecretsError, match="does not decrypt"):
        Keyring.from_text(old).decrypt(sealed.rsplit(":", 1)[0] + ":not base64!", AAD)


def test_old_keys_decrypt_only_the_current_one_encrypts() -> None:
    old, new = generate_key(), generate_key()
    sealed = Keyring.from_text(old).encrypt(SECRET, AAD)
    both = Keyring.from_text(new, [old])
    assert both.decrypt(sealed, AAD) == SECRET
    assert both.needs_encryption(sealed) and both.needs_encryption(SECRET)
    again = both.encrypt(SECRET, AAD)
    assert envelope_key_id(again) == both.current_id and not both.needs_encryption(again)


@pytest.mark.parametrize("bad", ["", "not base64!", base64.b64encode(b"short").decode(), "QUFB" * 20])
def test_a_bad_key_is_refused(bad: str) -> None:
    with pytest.raises(SecretsError, match="base64 of 32 random bytes"):
        parse_key(bad)


def test_a_bad_key_setting_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYWIRE_ENCRYPTION_KEY", "c2hvcnQ=")
    with pytest.raises(
        SettingsError,
        match=r"^setting encryption_key \(PAYWIRE_ENCRYPTION_KEY\): each key must be base64 of 32 random bytes "
        r"\(got 5 bytes\)$",
    ):
        load()
    monkeypatch.setenv("PAYWIRE_ENCRYPTION_KEY", generate_key())
    monkeypatch.setenv("PAYWIRE_ENCRYPTION_OLD_KEYS", f"{generate_key()},nope")
    with pytest.raises(SettingsError, match=r"^setting encryption_old_keys \(PAYWIRE_ENCRYPTION_OLD_KEYS\)"):
        load()
    monkeypatch.delenv("PAYWIRE_ENCRYPTION_OLD_KEYS")
    shown = dict(describe(load()))
    assert shown["encryption_key"] == "…(masked)"  # not even a prefix of a key


def test_decrypt_cost(capsys: pytest.CaptureFixture[str]) -> None:
    """What the delivery path pays per endpoint and claim: a decrypt when the secret is new to
    the process, a dictionary look-up after that."""
    keyring = Keyring.from_text(generate_key())
    sealed = [keyring.encrypt(SECRET, f"webhook_endpoints.secret:we_{i}") for i in range(2000)]
    start = time.perf_counter()
    for i, value in enumerate(sealed):
        keyring.decrypt(value, f"webhook_endpoints.secret:we_{i}")
    cold = (time.perf_counter() - start) / len(sealed) * 1e6
    for i, value in enumerate(sealed):
        keyring.decrypt_cached(value, f"webhook_endpoints.secret:we_{i}")
    start = time.perf_counter()
    for _ in range(10):
        for i, value in enumerate(sealed):
            keyring.decrypt_cached(value, f"webhook_endpoints.secret:we_{i}")
    warm = (time.perf_counter() - start) / len(sealed) / 10 * 1e6
    with capsys.disabled():
        print(f"\ndecrypt: {cold:.1f} µs; cached: {warm:.2f} µs (per endpoint secret)")
    assert cold < 1000 and warm < cold
