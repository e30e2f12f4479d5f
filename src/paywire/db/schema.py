"""The tables, as SQLAlchemy Core. One schema for SQLite and PostgreSQL; Alembic migrates both.

Conventions: `seq` is the row's order of insertion (lists are newest first by it), `id` the public
prefixed id, times are unix seconds (`created`, `updated`; floats where sub-second matters).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
    }
)

# SQLite autoincrements only an INTEGER PRIMARY KEY; PostgreSQL gets a bigint identity.
Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON()


def _seq() -> sa.Column[int]:
    return sa.Column("seq", Seq, primary_key=True, autoincrement=True)


api_keys = sa.Table(
    "api_keys",
    metadata,
    _seq(),
    sa.Column("id", sa.String(40), nullable=False, unique=True),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("livemode", sa.Boolean, nullable=False),
    sa.Column("hint", sa.String(20), nullable=False),
    sa.Column("created", sa.BigInteger, nullable=False),
    sa.Column("revoked", sa.BigInteger, nullable=True),
)

customers = sa.Table(
    "customers",
    metadata,
    _seq(),
    sa.Column("id", sa.String(40), nullable=False, unique=True),
    sa.Column("livemode", sa.Boolean, nullable=False),
    sa.Column("email", sa.String(320), nullable=True),
    sa.Column("name", sa.String(256), nullable=True),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("metadata", Json, nullable=False),
    sa.Column("test_clock_id", sa.String(40), nullable=True, index=True),
    sa.Column("created", sa.BigInteger, nullable=False),
    sa.Column("updated", sa.BigInteger, nullable=False),
    sa.Index(None, "livemode", "seq"),
)

products = sa.Table(
    "products",
    metadata,
    _seq(),
    sa.Column("id", sa.String(40), nullable=False, unique=True),
    sa.Column("livemode", sa.Boolean, nullable=False),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("metadata", Json, nullable=False),
    sa.Column("created", sa.BigInteger, nullable=False),
    sa.Column("updated", sa.BigInteger, nullable=False),
    sa.Index(None, "livemode", "seq"),
)

prices = sa.Table(
    "prices",
    metadata,
    _seq(),
    sa.Column("id", sa.String(40), nullable=False, unique=True),
    sa.Column("livemode", sa.Boolean, nullable=False),
    sa.Column("product_id", sa.String(40), nullable=False, index=True),
    sa.Column("unit_amount", sa.BigInteger, nullable=False),  # minor units (cents)
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("type", sa.String(16), nullable=False),  # one_time | recurring
    sa.Column("recurring_interval", sa.String(8), nullable=True),
    sa.Column("recurring_interval_count", sa.Integer, nullable=True),
    sa.Column("trial_period_days", sa.Integer, nullable=True),
    sa.Column("nickname", sa.String(256), nullable=True),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("metadata", Json, nullable=False),
    sa.Column("created", sa.BigInteger, nullable=False),
    sa.Column("updated", sa.BigInteger, nullable=False),
    sa.Index(None, "livemode", "seq"),
)

# The event log: the single source of truth. `seq` order is commit order (see events/log.py).
events = sa.Table(
    "events",
    metadata,
    _seq(),
    sa.Column("id", sa.String(40), nullable=False, unique=True),
    sa.Column("livemode", sa.Boolean, nullable=False),
    sa.Column("type", sa.String(80), nullable=False),
    sa.Column("api_version", sa.String(16), nullable=False),
    sa.Column("object_type", sa.String(40), nullable=False),
    sa.Column("object_id", sa.String(40), nullable=False, index=True),
    sa.Column("data", Json, nullable=False),
    sa.Column("request_id", sa.String(40), nullable=True),
    sa.Column("idempotency_key", sa.String(255), nullable=True),
    sa.Column("pending_webhooks", sa.Integer, nullable=False),
    sa.Column("metadata", Json, nullable=False),
    sa.Column("created", sa.BigInteger, nullable=False),
    sa.Index(None, "livemode", "seq"),
    sa.Index(None, "livemode", "type", "seq"),
)

webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    _seq(),
    sa.Column("id", sa.String(40), nullable=False, unique=True),
    sa.Column("livemode", sa.Boolean, nullable=False),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("enabled_events", Json, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # enabled | disabled
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("metadata", Json, nullable=False),
    sa.Column("api_version", sa.String(16), nullable=False),
    sa.Column("created_via", sa.String(16), nullable=False),
    sa.Column("secret", sa.String(80), nullable=False),
    # Secrets still valid during a rotation: [{"secret": "whsec_…", "expires": unix}].
    sa.Column("previous_secrets", Json, nullable=False),
    sa.Column("disabled_reason", sa.String(40), nullable=True),
    sa.Column("last_success", sa.Float, nullable=True),
    sa.Column("created", sa.BigInteger, nullable=False),
    sa.Column("updated", sa.BigInteger, nullable=False),
    sa.Index(None, "livemode", "status"),
)

# One row per (event, endpoint): the outbox the dispatcher drains.
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    _seq(),
    sa.Column("event_id", sa.String(40), nullable=False, index=True),
    sa.Column("endpoint_id", sa.String(40), nullable=False, index=True),
    sa.Column("livemode", sa.Boolean, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending | succeeded | failed | canceled
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt", sa.Float, nullable=False),
    sa.Column("lease_until", sa.Float, nullable=True),
    sa.Column("lease_owner", sa.String(40), nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created", sa.BigInteger, nullable=False),
    sa.Column("updated", sa.BigInteger, nullable=False),
    sa.Index(None, "status", "next_attempt"),
)

webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    _seq(),
    sa.Column("id", sa.String(40), nullable=False, unique=True),
    sa.Column("livemode", sa.Boolean, nullable=False),
    sa.Column("delivery_seq", sa.BigInteger, nullable=False, index=True),
    sa.Column("event_id", sa.String(40), nullable=False, index=True),
    sa.Column("endpoint_id", sa.String(40), nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False),  # succeeded | failed
    sa.Column("response_status", sa.Integer, nullable=True),
    sa.Column("response_body", sa.Text, nullable=True),
    sa.Column("retry_count", sa.Integer, nullable=False),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("next_retry", sa.Float, nullable=True),
    sa.Column("created", sa.Float, nullable=False),
)

# Durable EventBus positions: the last event a named consumer has handled.
event_consumers = sa.Table(
    "event_consumers",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("scope", sa.String(8), primary_key=True),  # test | live | all
    sa.Column("last_seq", sa.BigInteger, nullable=False),
    sa.Column("last_event_id", sa.String(40), nullable=True),
    sa.Column("updated", sa.BigInteger, nullable=False),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    _seq(),
    sa.Column("livemode", sa.Boolean, nullable=False),
    sa.Column("key", sa.String(255), nullable=False),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # started | done
    sa.Column("response_status", sa.Integer, nullable=True),
    sa.Column("response_body", sa.Text, nullable=True),
    sa.Column("created", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("livemode", "key"),
)
