"""Secrets at rest: AES-256-GCM envelopes for the values Paywire must be able to read back.

A stored secret is `enc:v1:<key id>:<base64(nonce + ciphertext)>`: a random 96-bit nonce per
value, and associated data naming the column and the row (`webhook_endpoints.secret:we_…`), so a
ciphertext copied into another row or column does not decrypt. The key id is the first 8 bytes
of SHA-256 of the key (hex), so several keys can be in use at once during a rotation.

A `Keyring` is the current key (which encrypts) and older keys (which still decrypt). It is built
once by `PaywireApp` (`keyring_for`) from `PAYWIRE_ENCRYPTION_KEY` / `PAYWIRE_ENCRYPTION_OLD_KEYS`
or, for a SQLite file without them, from a key file beside the database created on first start.
A value without the `enc:` prefix is a plain secret written by a release before encryption; it is
still read as it is, and `PaywireApp` encrypts such values at start-up (`paywire.secrets_store`).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.engine import make_url

PREFIX = "enc:v1:"
KEY_BYTES = 32
NONCE_BYTES = 12
KEY_FILE = "encryption.key"
CACHE_SIZE = 20_000  # decrypted values `decrypt_cached` keeps (the delivery path), least recent dropped


class SecretsError(ValueError):
    """A stored secret that cannot be read, or a key that cannot be used; the message says which."""


def parse_key(text: str, what: str = "encryption key") -> bytes:
    """A key given as base64 (standard or URL-safe, padding optional) of exactly 32 bytes."""
    cleaned = text.strip().replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SecretsError(f"{what} must be base64 of 32 random bytes (not base64)") from None
    if len(raw) != KEY_BYTES:
        raise SecretsError(f"{what} must be base64 of 32 random bytes (got {len(raw)} bytes)")
    return raw


def generate_key() -> str:
    """A new key, as base64 of 32 random bytes (the form `PAYWIRE_ENCRYPTION_KEY` takes)."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


def is_encrypted(value: str) -> bool:
    return value.startswith(PREFIX)


def envelope_key_id(value: str) -> str | None:
    """The key id of an envelope; None for a plain value."""
    if not is_encrypted(value):
        return None
    return value[len(PREFIX) :].split(":", 1)[0]


class Keyring:
    """The current key, which encrypts, and older keys, which only decrypt."""

    def __init__(
        self, current: bytes, old: Iterable[bytes] = (), *, reload: Callable[[], list[bytes]] | None = None
    ) -> None:
        self._reload = reload  # the key file's keys, re-read when a value has an unknown key id
        if len(current) != KEY_BYTES:
            raise SecretsError("encryption key must be 32 bytes")
        self.current_id = key_id(current)
        self._current = AESGCM(current)
        self._keys: dict[str, AESGCM] = {self.current_id: self._current}
        for key in old:
            if len(key) != KEY_BYTES:
                raise SecretsError("old encryption key must be 32 bytes")
            self._keys.setdefault(key_id(key), AESGCM(key))
        self._cache: OrderedDict[tuple[str, str], str] = OrderedDict()

    @classmethod
    def from_text(cls, current: str, old: Iterable[str] = ()) -> Keyring:
        return cls(parse_key(current), [parse_key(k, "old encryption key") for k in old if k.strip()])

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    def encrypt(self, plaintext: str, aad: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._current.encrypt(nonce, plaintext.encode(), aad.encode())
        return f"{PREFIX}{self.current_id}:{base64.b64encode(nonce + sealed).decode('ascii')}"

    def decrypt(self, envelope: str, aad: str) -> str:
        """The plaintext of `envelope`; a plain (pre-encryption) value is returned as it is."""
        if not is_encrypted(envelope):
            return envelope
        kid, _, data = envelope[len(PREFIX) :].partition(":")
        key = self._keys.get(kid)
        if key is None and self._reload is not None:
            self._learn(self._reload())
            key = self._keys.get(kid)
        if key is None:
            raise SecretsError(
                f"{aad}: encrypted with key {kid}, which this process does not have (it has "
                f"{', '.join(self._keys)}); set PAYWIRE_ENCRYPTION_KEY or PAYWIRE_ENCRYPTION_OLD_KEYS"
            )
        try:
            raw = base64.b64decode(data, validate=True)
            if len(raw) < NONCE_BYTES + 16:
                raise ValueError("too short")
            return key.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad.encode()).decode()
        except (InvalidTag, binascii.Error, ValueError):
            raise SecretsError(
                f"{aad}: the stored secret does not decrypt with key {kid} (corrupted, or moved from another row)"
            ) from None

    def reload_keys(self) -> bool:
        """Read the key file again (if the keys came from one); whether there was one."""
        if self._reload is None:
            return False
        self._learn(self._reload())
        return True

    def _learn(self, keys: list[bytes]) -> None:
        """Keys re-read from the key file: `paywire encryption rotate` put a new current key first."""
        for key in keys:
            self._keys.setdefault(key_id(key), AESGCM(key))
        if keys:
            self.current_id = key_id(keys[0])
            self._current = self._keys[self.current_id]

    def decrypt_cached(self, envelope: str, aad: str) -> str:
        """`decrypt`, remembering the result per (aad, envelope): the delivery path's hot loop."""
        cache_key = (aad, envelope)
        found = self._cache.get(cache_key)
        if found is not None:
            self._cache.move_to_end(cache_key)  # least recently used goes first
            return found
        plain = self.decrypt(envelope, aad)
        self._cache[cache_key] = plain
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return plain

    def needs_encryption(self, value: str) -> bool:
        """Plain, or under another key than the current one: `rotate` rewrites it."""
        return envelope_key_id(value) != self.current_id


def key_file_for(database_url: str) -> Path | None:
    """Where a SQLite file database keeps its key when no key is configured; None otherwise."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).parent / KEY_FILE


def read_key_file(path: Path) -> list[str]:
    """The keys of a key file: the current one first, then older ones still accepted."""
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def write_key_file(path: Path, keys: list[str], *, replace: bool = True) -> None:
    """Write a key file (mode 0600, atomically): the current key first, then older ones.

    `replace=False`: only if there is none yet (two processes starting at once agree on one).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write("# Paywire encryption keys: the current one first, then older ones still read\n")
            out.write("".join(k + "\n" for k in keys))
        if replace:
            os.replace(tmp, path)
        else:
            with contextlib.suppress(FileExistsError):  # another process made it first: theirs wins
                os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def keyring_for(database_url: str, current: str | None, old: str | None, *, create: bool = True) -> Keyring:
    """The keyring a process uses: the configured keys, else the SQLite key file (created on
    first start), else an error. PostgreSQL needs the key configured: a key file on one host
    would not be shared by the other hosts using the database."""
    old_keys = [k for k in (old or "").split(",") if k.strip()]
    if current:
        return Keyring.from_text(current, old_keys)
    path = key_file_for(database_url)
    if path is None:
        if make_url(database_url).get_backend_name() == "sqlite":  # in memory: dies with the process
            return Keyring(secrets.token_bytes(KEY_BYTES))
        raise SecretsError(
            "setting encryption_key (PAYWIRE_ENCRYPTION_KEY): required with PostgreSQL "
            "(every host must share it); generate one with `paywire encryption generate-key`"
        )
    if not path.exists():
        if not create:
            raise SecretsError(f"no encryption key: set PAYWIRE_ENCRYPTION_KEY or create {path}")
        write_key_file(path, [generate_key()], replace=False)
    keys = read_key_file(path)
    if not keys:
        raise SecretsError(f"key file {path} holds no key")

    def reload() -> list[bytes]:
        try:
            return [parse_key(k) for k in read_key_file(path)]
        except (OSError, SecretsError):
            return []

    return Keyring(parse_key(keys[0]), [parse_key(k, "old encryption key") for k in keys[1:] + old_keys], reload=reload)
