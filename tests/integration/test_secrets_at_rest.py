"""Secrets at rest, on SQLite and PostgreSQL: no endpoint secret and no minter key in the database
files or a pg_dump; signing and minting still verify; `paywire encryption rotate` while a server
runs; plain secrets of the previous release encrypted at start-up; a wrong key is a clear error."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import sqlalchemy as sa
import uvicorn

from paywire.app import PaywireApp
from paywire.db import migrate
from paywire.db.engine import Database
from paywire.db.schema import minter_keys, webhook_endpoints
from paywire.minting import verify_receipt
from paywire.minting.signed_receipt import signing_key
from paywire.schemas import WebhookEndpointCreate
from paywire.secrets_at_rest import Keyring, SecretsError, envelope_key_id, generate_key, key_file_for
from paywire.webhooks import endpoint_secrets, endpoints
from tests.conftest import PG_ADMIN_URL, Server, new_key, start_server, stop_server
from tests.integration.delivery_receiver import Receiver, until
from tests.integration.test_billing_timelines import ok, price

OLD, NEW = generate_key(), generate_key()
PREVIOUS_RELEASE = "0009_stripe_provider"  # the head before 0010_secrets_encrypted


class Running:
    """A PaywireApp (API, dispatcher, scheduler) serving on 127.0.0.1, with a test key."""

    def __init__(self, app: PaywireApp, url: str, key: str) -> None:
        self.app, self.url, self.key = app, url, key

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=15)


Handle = tuple[uvicorn.Server, "asyncio.Task[None]"]


async def _running(database_url: str, keyring: Keyring | None) -> tuple[Running, Handle]:
    app = PaywireApp(database_url, keyring=keyring)
    uv, task, url = await start_server(app)
    return Running(app, url, await new_key(app)), (uv, task)


async def _stop(handle: Handle) -> None:
    await stop_server(*handle)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    try:
        yield r
    finally:
        await r.stop()


async def _delivered_and_verified(api: httpx.AsyncClient, receiver: Receiver, secrets: list[str]) -> None:
    """A new event reaches /ok, signed so that each of `secrets` verifies it (standardwebhooks, svix)."""
    receiver.secrets["/ok"] = secrets
    before = len(receiver.on("/ok"))
    await ok(api.post("/api/customers", json={"email": "a@example.com"}))
    await until(lambda: len(receiver.on("/ok")) > before, timeout=20)
    got = receiver.on("/ok")[-1]
    assert got.verified == {s: True for s in secrets}, got.verified


def _raw_database(database_url: str) -> bytes:
    """Every byte the database keeps: the SQLite file with its WAL, or a pg_dump."""
    if database_url.startswith("sqlite"):
        path = Path(database_url.removeprefix("sqlite:///"))
        return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
    return subprocess.run(["pg_dump", "--dbname", database_url], check=True, capture_output=True).stdout


def _forms(secret: str) -> list[bytes]:
    """The ways a secret could sit in the database: as given, its key material, re-encoded."""
    material = secret.removeprefix("whsec_")
    raw = base64.urlsafe_b64decode(material.replace("+", "-").replace("/", "_") + "=" * (-len(material) % 4))
    return [secret.encode(), material.encode(), base64.b64encode(raw), base64.urlsafe_b64encode(raw).rstrip(b"=")]


async def _stored(db: Database) -> list[str]:
    async with db.read() as conn:
        rows = (await conn.execute(sa.select(webhook_endpoints.c.secret, webhook_endpoints.c.previous_secrets))).all()
        keys = list((await conn.execute(sa.select(minter_keys.c.private_key))).scalars())
    return [r.secret for r in rows] + [s["secret"] for r in rows for s in r.previous_secrets] + keys


async def test_no_secret_in_the_database_files_and_signing_and_minting_verify(
    database_url: str, receiver: Receiver
) -> None:
    server, handle = await _running(database_url, None)
    try:
        async with server.client() as api:
            created = await ok(
                api.post("/api/webhook-endpoints", json={"url": receiver.at("/ok"), "enabled_events": ["*"]})
            )
            first = created["secret"]
            assert (await ok(api.get(f"/api/webhook-endpoints/{created['id']}/secret")))["secret"] == first
            await _delivered_and_verified(api, receiver, [first])
            rotated = await ok(
                api.post(f"/api/webhook-endpoints/{created['id']}/rotate-secret", json={"expires_in": 3600})
            )
            second = rotated["secret"]
            assert (await ok(api.get(f"/api/webhook-endpoints/{created['id']}/secret")))["secret"] == second
            await _delivered_and_verified(api, receiver, [second, first])  # both sign during the rotation
            # A minted receipt verifies with the public key.
            one = await price(api, "5.00", interval=None)
            session = await ok(
                api.post(
                    "/api/checkout-sessions",
                    json={"mode": "payment", "line_items": [{"price_id": one}], "nft_mint_settings": {"enabled": True}},
                )
            )
            await ok(
                api.post(f"/api/checkout-sessions/{session['id']}/confirm", json={"payment_method": "pm_card_visa"})
            )

            async def minted() -> dict[str, object]:
                return await ok(api.get(f"/api/checkout-sessions/{session['id']}"))

            deadline = time.monotonic() + 20
            while (done := await minted())["nft_mint_status"] != "minted":
                assert time.monotonic() < deadline, done
                await asyncio.sleep(0.1)
            public = await ok(api.get("/api/nft/public-key"))
            token = done["nft_mint_details"]["token"]  # type: ignore[index]
            assert verify_receipt(token, public["public_key"])["checkout_session_id"] == session["id"]
        async with server.app.db.transaction() as tx:
            _, private = await signing_key(tx.conn, server.app.keyring)
        private_b64 = base64.urlsafe_b64encode(private.private_bytes_raw()).rstrip(b"=").decode()
    finally:
        await _stop(handle)
    stored = await _stored(Database(database_url, keyring=server.app.keyring))
    assert len(stored) == 3 and all(v.startswith("enc:v1:") for v in stored), stored
    raw = _raw_database(database_url)
    assert b"minter_keys" in raw or database_url.startswith("sqlite")  # the dump is the real one
    for secret in (first, second, "whsec_" + private_b64):
        for form in _forms(secret):
            assert form not in raw, f"{form[:10]!r}… found in the database"
    assert b"whsec_" not in raw


def _paywire_cli(*args: str, env: dict[str, str | None]) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ}
    for name, value in env.items():
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value
    command = [sys.executable, "-m", "paywire.cli.main", *args]
    return subprocess.run(command, env=environ, capture_output=True, text=True, timeout=120)


async def test_rotate_while_a_server_with_the_old_key_runs_then_only_the_new_key(
    database_url: str, receiver: Receiver
) -> None:
    # The running server encrypts under the old key and already accepts the new one (step 1 of
    # the rotation in docs/security.md); `rotate` runs beside it, in another process.
    server, handle = await _running(database_url, Keyring.from_text(OLD, [NEW]))
    try:
        async with server.client() as api:
            ids, secrets = [], {}
            for _ in range(5):
                e = await ok(
                    api.post("/api/webhook-endpoints", json={"url": receiver.at("/ok"), "enabled_events": ["*"]})
                )
                ids.append(e["id"])
                secrets[e["id"]] = e["secret"]
            rotated = await ok(api.post(f"/api/webhook-endpoints/{ids[0]}/rotate-secret", json={"expires_in": 3600}))
            both = [rotated["secret"], secrets[ids[0]]]
            secrets[ids[0]] = rotated["secret"]
            for other in ids[1:]:  # one receiving endpoint keeps the checks simple
                await ok(api.delete(f"/api/webhook-endpoints/{other}"))
            kid = (await ok(api.get("/api/nft/public-key")))["kid"]  # the minter's key, created now
            stored = await _stored(server.app.db)
            assert {envelope_key_id(v) for v in stored} == {Keyring.from_text(OLD).current_id}
            rotate = asyncio.create_task(
                asyncio.to_thread(
                    _paywire_cli,
                    "encryption", "rotate", "--new-key", NEW, "--batch", "1", "--database-url", database_url,
                    env={"PAYWIRE_ENCRYPTION_KEY": OLD, "PAYWIRE_ENCRYPTION_OLD_KEYS": None},
                )
            )  # fmt: skip
            while not rotate.done():  # the server keeps serving and delivering meanwhile
                await _delivered_and_verified(api, receiver, both)
                assert (await ok(api.get(f"/api/webhook-endpoints/{ids[0]}/secret")))["secret"] == both[0]
            result = await rotate
            assert result.returncode == 0, result.stderr
            assert "0 value(s) not under it" in result.stderr
            await _delivered_and_verified(api, receiver, both)  # the old-key server reads new-key values
    finally:
        await _stop(handle)
    new_id = Keyring.from_text(NEW).current_id
    assert {envelope_key_id(v) for v in await _stored(Database(database_url, keyring=Keyring.from_text(NEW)))} == {
        new_id
    }
    # A server with only the new key: the same secrets sign, the same minter key.
    server, handle = await _running(database_url, Keyring.from_text(NEW))
    try:
        async with server.client() as api:
            assert (await ok(api.get(f"/api/webhook-endpoints/{ids[0]}/secret")))["secret"] == both[0]
            await _delivered_and_verified(api, receiver, both)
            assert (await ok(api.get("/api/nft/public-key")))["kid"] == kid
    finally:
        await _stop(handle)
    # Only the old key: a clear error naming the key, not garbage.
    db = Database(database_url, keyring=Keyring.from_text(OLD))
    try:
        async with db.read() as conn:
            with pytest.raises(SecretsError, match=f"encrypted with key {new_id}, which this process does not have"):
                await endpoints.secret(conn, db.keyring, ids[0], livemode=False)
    finally:
        await db.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def old_release_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of its own, at the previous release's schema (the revision before 0010)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        name = f"paywire_secrets_{uuid.uuid4().hex[:10]}"
        admin = await asyncpg.connect(PG_ADMIN_URL)
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    db = Database(url)
    await migrate.upgrade(db, PREVIOUS_RELEASE)
    await db.dispose()
    try:
        yield url
    finally:
        if request.param != "sqlite":
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


async def test_plain_secrets_of_the_previous_release_get_encrypted(old_release_url: str) -> None:
    url = old_release_url
    now = time.time()
    plain, previous, private = (
        "whsec_" + base64.b64encode(os.urandom(32)).decode(),
        "whsec_" + base64.b64encode(os.urandom(32)).decode(),
        base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode(),
    )
    db = Database(url)
    async with db.transaction() as tx:  # what the previous release wrote
        await tx.conn.execute(
            webhook_endpoints.insert(),
            {
                "id": "we_old", "livemode": False, "url": "http://127.0.0.1:9/hook", "enabled_events": ["*"],
                "status": "enabled", "description": None, "metadata": {}, "api_version": "2026-11-26",
                "created_via": "api", "secret": plain, "created": int(now), "updated": int(now),
                "previous_secrets": [{"secret": previous, "expires": now + 3600}],
            },
        )  # fmt: skip
        await tx.conn.execute(
            minter_keys.insert(), {"name": "signed_receipt", "kid": "key_old", "private_key": private, "created": 1}
        )
    await db.dispose()
    app = PaywireApp(url, run_worker=False, keyring=Keyring.from_text(NEW))
    async with app.running():  # migrates to head, then encrypts what is plain
        stored = await _stored(app.db)
        assert len(stored) == 3 and all(v.startswith("enc:v1:") for v in stored), stored
        async with app.db.read() as conn:
            assert await endpoints.secret(conn, app.keyring, "we_old", livemode=False) == plain
            row = (await conn.execute(sa.select(webhook_endpoints))).mappings().one()
            assert endpoint_secrets.valid_secrets(row, time.time(), app.keyring) == [plain, previous]
        async with app.db.transaction() as tx:
            kid, key = await signing_key(tx.conn, app.keyring)
        assert kid == "key_old"
        assert base64.urlsafe_b64encode(key.private_bytes_raw()).rstrip(b"=").decode() == private
    again = PaywireApp(url, run_worker=False, keyring=Keyring.from_text(NEW))
    async with again.running():  # idempotent: nothing plain is left, the values stay as they are
        assert await _stored(again.db) == stored
    raw = _raw_database(url)
    assert plain.encode() not in raw and previous.encode() not in raw and private.encode() not in raw


async def test_a_plain_value_is_read_until_it_is_encrypted(database_url: str) -> None:
    """Between the migration and the start-up pass (or written by an old process meanwhile)."""
    plain = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    keyring = Keyring.from_text(NEW)
    row = {"id": "we_x", "secret": plain, "previous_secrets": []}
    assert endpoint_secrets.valid_secrets(row, time.time(), keyring) == [plain]
    envelope = keyring.encrypt(plain, endpoint_secrets.secret_aad("we_x"))
    assert endpoint_secrets.valid_secrets({**row, "secret": envelope}, time.time(), keyring) == [plain]
    # Moved to another row, the ciphertext does not decrypt.
    with pytest.raises(SecretsError, match="moved from another row"):
        endpoint_secrets.valid_secrets({**row, "id": "we_y", "secret": envelope}, time.time(), keyring)


def test_key_file_beside_sqlite_and_postgres_refuses_without_a_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PAYWIRE_ENCRYPTION_KEY", raising=False)
    url = f"sqlite:///{tmp_path / 'data' / 'paywire.db'}"
    app = PaywireApp(url, run_worker=False)
    path = key_file_for(url)
    assert path == tmp_path / "data" / "encryption.key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert PaywireApp(url, run_worker=False).keyring.current_id == app.keyring.current_id  # the same key
    with pytest.raises(
        SecretsError, match=r"^setting encryption_key \(PAYWIRE_ENCRYPTION_KEY\): required with PostgreSQL"
    ):
        PaywireApp("postgresql://postgres@127.0.0.1:5432/test", run_worker=False)
    result = _paywire_cli(
        "worker", "--database-url", "postgresql://postgres@127.0.0.1:5432/test",
        env={"PAYWIRE_ENCRYPTION_KEY": None},
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "paywire: setting encryption_key (PAYWIRE_ENCRYPTION_KEY): required with PostgreSQL (every host must share "
        "it); generate one with `paywire encryption generate-key`"
    ]
    bad = _paywire_cli("worker", "--database-url", url, env={"PAYWIRE_ENCRYPTION_KEY": "c2hvcnQ="})
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "paywire: setting encryption_key (PAYWIRE_ENCRYPTION_KEY): each key must be base64 of 32 random bytes "
        "(got 5 bytes)"
    ]


async def test_rotate_with_the_key_file_while_the_server_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    monkeypatch.delenv("PAYWIRE_ENCRYPTION_KEY", raising=False)
    url = f"sqlite:///{tmp_path / 'paywire.db'}"
    server, handle = await _running(url, None)
    try:
        async with server.client() as api:
            e = await ok(api.post("/api/webhook-endpoints", json={"url": receiver.at("/ok"), "enabled_events": ["*"]}))
            old_id = server.app.keyring.current_id
            result = await asyncio.to_thread(
                _paywire_cli, "encryption", "rotate", "--database-url", url, env={"PAYWIRE_ENCRYPTION_KEY": None}
            )
            assert result.returncode == 0, result.stderr
            path = key_file_for(url)
            assert path is not None and path.stat().st_mode & 0o777 == 0o600
            lines = [x for x in path.read_text().splitlines() if not x.startswith("#")]
            assert len(lines) == 2 and Keyring.from_text(lines[1]).current_id == old_id
            # The running server meets a value under the new key, reads the key file again, goes on.
            assert (await ok(api.get(f"/api/webhook-endpoints/{e['id']}/secret")))["secret"] == e["secret"]
            await _delivered_and_verified(api, receiver, [e["secret"]])
            assert server.app.keyring.current_id != old_id  # and encrypts under the new key now
    finally:
        await _stop(handle)


async def test_an_idempotent_create_leaves_no_secret_in_the_database(database_url: str) -> None:
    server, handle = await _running(database_url, None)
    try:
        async with server.client() as api:
            created = await ok(
                api.post(
                    "/api/webhook-endpoints",
                    json={"url": "http://127.0.0.1:9/hook", "enabled_events": ["*"]},
                    headers={"Idempotency-Key": "create-1"},
                )
            )
    finally:
        await _stop(handle)
    assert created["secret"].encode() not in _raw_database(database_url)


async def test_rotate_to_the_configured_key_finishes_a_rotation_and_is_idempotent(tmp_path: Path) -> None:
    """Step 4 of docs/security.md: the new key already current, the old one among the old keys."""
    url = f"sqlite:///{tmp_path / 'paywire.db'}"
    app = PaywireApp(url, run_worker=False, keyring=Keyring.from_text(OLD))
    async with app.running(), app.db.transaction() as tx:
        params = WebhookEndpointCreate(url="http://127.0.0.1:9/hook", enabled_events=["*"])
        created = await endpoints.create(tx, params, livemode=False, now=time.time())
        await endpoints.rotate_secret(tx, created["id"], expires_in=3600, livemode=False, now=time.time())
        await signing_key(tx.conn, app.keyring)
    env: dict[str, str | None] = {"PAYWIRE_ENCRYPTION_KEY": NEW, "PAYWIRE_ENCRYPTION_OLD_KEYS": OLD}
    first = await asyncio.to_thread(_paywire_cli, "encryption", "rotate", "--database-url", url, env=env)
    assert first.returncode == 0, first.stderr
    assert first.stderr.startswith("re-encrypted 1 endpoint(s) and 1 minter key(s)")
    db = Database(url, keyring=Keyring.from_text(NEW))
    try:
        stored = await _stored(db)
        assert len(stored) == 3 and {envelope_key_id(v) for v in stored} == {db.keyring.current_id}
    finally:
        await db.dispose()
    again = await asyncio.to_thread(_paywire_cli, "encryption", "rotate", "--database-url", url, env=env)
    assert again.returncode == 0 and again.stderr.startswith("re-encrypted 0 endpoint(s) and 0 minter key(s)")
    lost = await asyncio.to_thread(
        _paywire_cli, "encryption", "rotate", "--database-url", url, env={"PAYWIRE_ENCRYPTION_KEY": OLD}
    )
    assert lost.returncode == 1 and "which this process does not have" in lost.stderr


async def test_a_wrong_key_stops_start_up_in_one_line(database_url: str) -> None:
    app = PaywireApp(database_url, run_worker=False, keyring=Keyring.from_text(OLD))
    async with app.running(), app.db.transaction() as tx:
        params = WebhookEndpointCreate(url="http://127.0.0.1:9/hook", enabled_events=["*"])
        await endpoints.create(tx, params, livemode=False, now=time.time())
    wrong = PaywireApp(database_url, run_worker=False, keyring=Keyring.from_text(NEW))
    old_id, new_id = Keyring.from_text(OLD).current_id, Keyring.from_text(NEW).current_id
    with pytest.raises(SecretsError, match=f"encrypted with key {old_id}, which this process does not have"):
        await wrong.start()
    await wrong.db.dispose()
    result = await asyncio.to_thread(
        _paywire_cli, "worker", "--database-url", database_url, env={"PAYWIRE_ENCRYPTION_KEY": NEW}
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1:] == [  # after the migration's log lines
        f"paywire: the database holds secrets encrypted with key {old_id}, which this process does not have (it "
        f"has {new_id}): check PAYWIRE_ENCRYPTION_KEY and PAYWIRE_ENCRYPTION_OLD_KEYS"
    ]


async def test_the_dashboard_reveals_the_secret_not_its_envelope(server: Server) -> None:
    from tests.web.dashboard_helpers import ADMIN, Browserless, create_operator

    await create_operator(server.app, *ADMIN)
    async with server.client() as api:
        created = await ok(
            api.post("/api/webhook-endpoints", json={"url": "http://127.0.0.1:9/hook", "enabled_events": ["*"]})
        )
    admin = Browserless(server)
    try:
        await admin.sign_in(*ADMIN)
        await admin.get(f"/dashboard/endpoints/{created['id']}")
        revealed = await admin.post(f"/dashboard/endpoints/{created['id']}/reveal-secret")
        assert revealed.status_code == 200
        assert "enc:v1:" not in revealed.text
        assert created["secret"] in revealed.text
    finally:
        await admin.close()
