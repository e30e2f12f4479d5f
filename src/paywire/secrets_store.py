"""Rewriting the stored secrets under the current key, in small transactions, while Paywire runs.

`encrypt_plain` (every start of `PaywireApp`): secrets a release before encryption stored plain
are encrypted. `reencrypt` (`paywire encryption rotate`): every secret not under the keyring's
current key is decrypted (with an older key) and encrypted again. Each batch is one short
transaction that locks its rows (PostgreSQL `FOR UPDATE`; SQLite has one writer), so an
endpoint's secret rotated meanwhile is never overwritten with a stale value. Both are idempotent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import sqlalchemy as sa

from paywire.db.engine import Database
from paywire.db.schema import minter_keys, webhook_endpoints
from paywire.minting.signed_receipt import private_key_aad
from paywire.secrets_at_rest import PREFIX, Keyring, SecretsError, envelope_key_id, is_encrypted
from paywire.webhooks.endpoints import encrypted_secrets

log = logging.getLogger("paywire.secrets")
BATCH = 200
e = webhook_endpoints


@dataclass
class Rewritten:
    endpoints: int = 0  # endpoints whose secret or previous secrets were rewritten
    minter_keys: int = 0

    @property
    def total(self) -> int:
        return self.endpoints + self.minter_keys


async def reencrypt(db: Database, keyring: Keyring, *, plain_only: bool = False, batch: int = BATCH) -> Rewritten:
    """Rewrite every stored secret not under `keyring`'s current key (`plain_only`: only the
    plain ones), `batch` endpoints per transaction."""
    done = Rewritten()
    after = -1
    while True:
        async with db.transaction() as tx:
            query = sa.select(e.c.seq, e.c.id, e.c.secret, e.c.previous_secrets, e.c.config).where(e.c.seq > after)
            if plain_only:  # only rows that can hold a plain value are read (start-up stays cheap)
                prev = sa.cast(e.c.previous_secrets, sa.Text)
                query = query.where(sa.or_(e.c.secret.not_like("enc:%"), prev.like('%"secret":"whsec%')))
            query = query.order_by(e.c.seq).limit(batch).with_for_update()
            rows = (await tx.conn.execute(query)).mappings().all()
            for row in rows:
                values = encrypted_secrets(row, keyring, plain_only=plain_only)
                if values:
                    await tx.conn.execute(e.update().where(e.c.seq == row["seq"]).values(**values))
                    done.endpoints += 1
        if len(rows) < batch:
            break
        after = rows[-1]["seq"]
    async with db.transaction() as tx:
        query = sa.select(minter_keys.c.name, minter_keys.c.private_key)
        for key_row in (await tx.conn.execute(query.with_for_update())).all():
            name, stored = str(key_row.name), str(key_row.private_key)
            if keyring.needs_encryption(stored) and not (plain_only and is_encrypted(stored)):
                aad = private_key_aad(name)
                await tx.conn.execute(
                    minter_keys.update()
                    .where(minter_keys.c.name == name)
                    .values(private_key=keyring.encrypt(keyring.decrypt(stored, aad), aad))
                )
                done.minter_keys += 1
    return done


async def encrypt_plain(db: Database, keyring: Keyring) -> Rewritten:
    """Encrypt the secrets stored plain (by a release before encryption at rest); logged."""
    done = await reencrypt(db, keyring, plain_only=True)
    if done.total:
        log.warning(
            "encrypted %d webhook endpoint secret(s) and %d minter key(s) stored in plain text "
            "(copies may remain in database free space, old WAL and backups)",
            done.endpoints,
            done.minter_keys,
        )
    return done


async def count_remaining(db: Database, keyring: Keyring) -> int:
    """How many stored secrets are not under the current key (0: a rotation is complete)."""
    remaining = 0
    async with db.read() as conn:
        for row in (await conn.execute(sa.select(e.c.secret, e.c.previous_secrets, e.c.config))).mappings():
            values = [row["secret"]] + [s["secret"] for s in row["previous_secrets"]]
            if row["config"] is not None:  # a broker destination's config
                values.append(row["config"])
            remaining += sum(keyring.needs_encryption(v) for v in values)
        for stored in (await conn.execute(sa.select(minter_keys.c.private_key))).scalars():
            remaining += keyring.needs_encryption(stored)
    return remaining


async def check_keys(db: Database, keyring: Keyring) -> None:
    """Refuse (SecretsError, one line) when stored secrets are under a key this process lacks:
    a wrong or missing `PAYWIRE_ENCRYPTION_KEY` is found at start-up, not at the first delivery."""
    used: set[str] = set()
    async with db.read() as conn:
        for column in (e.c.secret, minter_keys.c.private_key):  # the key id: 16 characters after the prefix
            kids = sa.select(sa.func.substr(column, len(PREFIX) + 1, 16)).where(column.like("enc:%")).distinct()
            used.update((await conn.execute(kids)).scalars())
        previous = sa.select(e.c.previous_secrets).where(sa.cast(e.c.previous_secrets, sa.Text).like("%enc:%"))
        for entries in (await conn.execute(previous)).scalars():
            used.update(kid for s in entries if (kid := envelope_key_id(s["secret"])) is not None)
    missing = sorted(used - set(keyring.key_ids))
    if missing and keyring.reload_keys():
        missing = sorted(used - set(keyring.key_ids))
    if missing:
        raise SecretsError(
            f"the database holds secrets encrypted with key {', '.join(missing)}, which this process does not "
            f"have (it has {', '.join(keyring.key_ids)}): check PAYWIRE_ENCRYPTION_KEY and PAYWIRE_ENCRYPTION_OLD_KEYS"
        )
