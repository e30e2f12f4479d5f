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
    sa.Column("provider_customer_ref", sa.String(80), nullable=True),  # e.g. the Stripe customer (cus_…)
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
    sa.Column("secret", sa.String(400), nullable=False),  # enc:v1:… (paywire.secrets_at_rest)
    # Secrets still valid during a rotation: [{"secret": "enc:v1:…", "expires": unix}].
    sa.Column("previous_secrets", Json, nullable=False),
    sa.Column("disabled_reason", sa.String(40), nullable=True),
    sa.Column("last_success", sa.Float, nullable=True),
    # First failure since the last success (None while healthy): the 5-day auto-disable clock.
    sa.Column("failing_since", sa.Float, nullable=True),
    sa.Column("created", sa.BigInteger, nullable=False),
    sa.Column("updated", sa.BigInteger, nullable=False),
    # An event destination of any type (paywire.destinations): `url` is "" for a broker, whose
    # `config` (its JSON, encrypted like `secret`: a connection string may hold credentials) says
    # where to publish. `ordering`: none | per_object.
    sa.Column("type", sa.String(16), nullable=False, server_default="webhook"),
    sa.Column("config", sa.Text, nullable=True),
    sa.Column("ordering", sa.String(16), nullable=False, server_default="none"),
    sa.Index(None, "livemode", "status"),
)

# One row (id 1): a token every write that changes which destinations get an event replaces,
# in its own transaction, so `events.log.append` can keep the enabled destinations cached.
destination_versions = sa.Table(
    "destination_versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("token", sa.String(40), nullable=False),
)

# One row per (event, endpoint): the outbox the dispatcher drains.
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    _seq(),
    sa.Column("event_id", sa.String(40), nullable=False, index=True),
    sa.Column("endpoint_id", sa.String(40), nullable=False),
    sa.Column("livemode", sa.Boolean, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending | succeeded | failed | canceled
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt", sa.Float, nullable=False),
    sa.Column("lease_until", sa.Float, nullable=True),
    sa.Column("lease_owner", sa.String(40), nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created", sa.BigInteger, nullable=False),
    sa.Column("updated", sa.BigInteger, nullable=False),
    # The event's object id, for a destination with `ordering: per_object` only (else NULL): a
    # delivery is claimed only once no earlier one with the same key is pending.
    sa.Column("order_key", sa.String(80), nullable=True),
    # Claims read each endpoint's due rows through this one (it also serves `endpoint_id =`).
    sa.Index(None, "endpoint_id", "status", "next_attempt"),
    # Partial: unordered deliveries (the common case) pay nothing for it when inserted.
    sa.Index(
        "ix_webhook_deliveries_ordered",
        "endpoint_id",
        "order_key",
        "seq",
        postgresql_where=sa.text("order_key IS NOT NULL"),
        sqlite_where=sa.text("order_key IS NOT NULL"),
    ),
)

# On PostgreSQL partitioned by day of `created` (db/partitions.py, migration 0015): there each
# partition holds the primary key on `seq` and the unique `id`, the parent table neither.
webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    _seq(),
    sa.Column("id", sa.String(40), nullable=False, unique=True),
    sa.Column("livemode", sa.Boolean, nullable=False),
    sa.Column("delivery_seq", sa.BigInteger, nullable=False),
    sa.Column("event_id", sa.String(40), nullable=False, index=True),
    sa.Column("endpoint_id", sa.String(40), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # succeeded | failed
    sa.Column("response_status", sa.Integer, nullable=True),
    sa.Column("response_body", sa.Text, nullable=True),
    sa.Column("retry_count", sa.Integer, nullable=False),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    # The error's class (timeout, connection_refused, http_status, ssrf_blocked…) for filtering.
    sa.Column("error_type", sa.String(32), nullable=True),
    sa.Column("next_retry", sa.Float, nullable=True),
    sa.Column("created", sa.Float, nullable=False),
    sa.Index(None, "livemode", "seq"),
)

# Attempts rolled up per endpoint and UTC hour (`hour` is the hour's start, unix seconds), kept by
# `webhooks/rollups.py` as attempts are recorded: counts by outcome and a latency histogram
# (`l0`…`l11`, the buckets of `rollups.LATENCY_BOUNDS`). The overview chart and the endpoints'
# health read these instead of the ~100,000 attempts of a busy day. `slot` spreads one hour over
# a few rows (one per worker, by its owner id), so two workers never wait on each other's row lock.
webhook_attempt_rollups = sa.Table(
    "webhook_attempt_rollups",
    metadata,
    sa.Column("endpoint_id", sa.String(40), primary_key=True),
    sa.Column("hour", sa.BigInteger, primary_key=True),
    sa.Column("slot", sa.SmallInteger, primary_key=True),
    sa.Column("livemode", sa.Boolean, nullable=False),
    sa.Column("succeeded", sa.Integer, nullable=False),
    sa.Column("failed", sa.Integer, nullable=False),
    *(sa.Column(f"l{i}", sa.Integer, nullable=False) for i in range(12)),
    sa.Index(None, "livemode", "hour"),
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

# --- billing --------------------------------------------------------------------------------
# Amounts are integer minor units; lists that are always read whole (items, lines) are JSON.

test_clocks = sa.Table(
    "test_clocks",
    metadata,
    _seq(),
    sa.Column("id", sa.String(40), nullable=False, unique=True),
    sa.Column("livemode", sa.Boolean, nullable=False),
    sa.Column("name", sa.String(256), nullable=True),
    sa.Column("frozen_time", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # ready | advancing
    sa.Column("advance_to", sa.BigInteger, nullable=True),
    sa.Column("advance_owner", sa.String(300), nullable=True),  # host:pid:start of the advancing process
    sa.Column("advance_lease", sa.Float, nullable=True),  # the owner renews it while advancing
    sa.Column("metadata", Json, nullable=False),
    sa.Column("created", sa.BigInteger, nullable=False),
    sa.Column("updated", sa.BigInteger, nullable=False),
    sa.Index(None, "livemode", "seq"),
)

checkout_sessions = sa.Table(
    "checkout_sessions",
    metadata,
    _seq(),
    sa.Column("id", sa.String(40), nullable=False, unique=True),
    sa.Column("livemode", sa.Boolean, nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),  # payment | subscription
    sa.Column("status", sa.String(16), nullable=False),  # open | complete | expired
    sa.Column("payment_status", sa.String(24), nullable=False),  # unpaid | paid | no_payment_required
    sa.Column("customer_id", sa.String(40), nullable=True, index=True),
    sa.Column("customer_email", sa.String(320), nullable=True),
    sa.Column("line_items", Json, nullable=False),  # [{price_id, quantity}]
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("amount_subtotal", sa.BigInteger, nullable=False),
    sa.Column("amount_total", sa.BigInteger, nullable=False),
    sa.Column("trial_period_days", sa.Integer, nullable=True),
    sa.Column("subscription_metadata", Json, nullable=False),
    sa.Column("success_url", sa.String(2048), nullable=True),
    sa.Column("cancel_url", sa.String(2048), nullable=True),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
    sa.Column("payment_intent_id", sa.String(40), nullable=True),
    sa.Column("subscription_id", sa.String(40), nullable=True),
    sa.Column("invoice_id", sa.String(40), nullable=True),
    sa.Column("payment_method", sa.String(80), nullable=True),
    sa.Column("nft_mint_enabled", sa.Boolean, nullable=False),
    sa.Column("nft_mint_status", sa.String(16), nullable=True),  # pending | minted | error
    sa.Column("nft_mint_details", Json, nullable=True),
    sa.Column("test_clock_id", sa.String(40), nullable=True),
    sa.Column("completed_at", sa.BigInteger, nullable=True),
    sa.Column("metadata", Json, nullable=False),
    sa.Column("created", sa.BigInteger, nullable=False),
    sa.Column("updated", sa.BigInteger, nullable=False),
    sa.Index(None, "livemode", "seq"),
)

subscriptions = sa.Table(
    "subscriptions",
    metadata,
    _seq(),
    sa.Column("id", sa.String(40), nullable=False, unique=True),
    sa.Column("livemode", sa.Boolean, nullable=False),
    sa.Column("customer_id", sa.String(40), nullable=False, index=True),
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("items", Json, nullable=False),  # [{id: si_…, price_id, quantity}]
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("interval", sa.String(8), nullable=False),
    sa.Column("interval_count", sa.Integer, nullable=False),
    sa.Column("default_payment_method", sa.String(80), nullable=True),
    sa.Column("billing_cycle_anchor", sa.BigInteger, nullable=False),
    sa.Column("current_period_start", sa.BigInteger, nullable=False),
    sa.Column("current_period_end", sa.BigInteger, nullable=False),
    sa.Column("trial_start", sa.BigInteger, nullable=True),
    sa.Column("trial_end", sa.BigInteger, nullable=True),
    sa.Column("cancel_at_period_end", sa.Boolean, nullable=False),
    sa.Column("cancel_at", sa.BigInteger, nullable=True),
    sa.Column("canceled_at", sa.BigInteger, nullable=True),
    sa.Column("ended_at", sa.BigInteger, nullable=True),
    sa.Column("paused_at", sa.BigInteger, nullable=True),
    sa.Column("latest_invoice_id", sa.String(40), nullable=True),
    sa.Column("checkout_session_id", sa.String(40), nullable=True),
    sa.Column("test_clock_id", sa.String(40), nullable=True),
    sa.Column("metadata", Json, nullable=False),
    sa.Column("created", sa.BigInteger, nullable=False),
    sa.Column("updated", sa.BigInteger, nullable=False),
    sa.Index(None, "livemode", "seq"),
)

invoices = sa.Table(
    "invoices",
    metadata,
    _seq(),
    sa.Column("id", sa.String(40), nullable=False, unique=True),
    sa.Column("livemode", sa.Boolean, nullable=False),
    sa.Column("customer_id", sa.String(40), nullable=False, index=True),
    sa.Column("subscription_id", sa.String(40), nullable=True, index=True),
    sa.Column("status", sa.String(16), nullable=False),  # draft | open | paid | void | uncollectible
    sa.Column("billing_reason", sa.String(32), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("lines", Json, nullable=False),
    sa.Column("subtotal", sa.BigInteger, nullable=False),
    sa.Column("total", sa.BigInteger, nullable=False),
    sa.Column("amount_due", sa.BigInteger, nullable=False),
    sa.Column("amount_paid", sa.BigInteger, nullable=False),
    sa.Column("attempt_count", sa.Integer, nullable=False),
    sa.Column("next_payment_attempt", sa.BigInteger, nullable=True),
    sa.Column("payment_intent_id", sa.String(40), nullable=True),
    sa.Column("period_start", sa.BigInteger, nullable=False),
    sa.Column("period_end", sa.BigInteger, nullable=False),
    sa.Column("paid_at", sa.BigInteger, nullable=True),
    sa.Column("test_clock_id", sa.String(40), nullable=True),
    sa.Column("metadata", Json, nullable=False),
    sa.Column("created", sa.BigInteger, nullable=False),
    sa.Column("updated", sa.BigInteger, nullable=False),
    sa.Index(None, "livemode", "seq"),
)

# Proration lines not yet on an invoice (a downgrade's credit waits for the next invoice).
invoice_items = sa.Table(
    "invoice_items",
    metadata,
    _seq(),
    sa.Column("id", sa.String(40), nullable=False, unique=True),
    sa.Column("livemode", sa.Boolean, nullable=False),
    sa.Column("subscription_id", sa.String(40), nullable=False, index=True),
    sa.Column("invoice_id", sa.String(40), nullable=True),
    sa.Column("line", Json, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("created", sa.BigInteger, nullable=False),
)

payment_intents = sa.Table(
    "payment_intents",
    metadata,
    _seq(),
    sa.Column("id", sa.String(40), nullable=False, unique=True),
    sa.Column("livemode", sa.Boolean, nullable=False),
    sa.Column("customer_id", sa.String(40), nullable=True, index=True),
    sa.Column("invoice_id", sa.String(40), nullable=True),
    sa.Column("checkout_session_id", sa.String(40), nullable=True),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("amount_received", sa.BigInteger, nullable=False),
    sa.Column("amount_refunded", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    # requires_payment_method | processing | requires_action | succeeded | canceled
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("payment_method", sa.String(80), nullable=True),
    sa.Column("charge_ref", sa.String(80), nullable=True),  # the provider's id of the charge
    sa.Column("charge_attempts", sa.Integer, nullable=False),
    sa.Column("last_payment_error", Json, nullable=True),
    sa.Column("next_action", Json, nullable=True),  # requires_action: what the payer must do (3-D Secure)
    # A charge in flight (`processing`): the flow to finish once the provider has answered
    # (billing/charging.py), what it charges for, and since when (the reconciler's grace period).
    sa.Column("subject_id", sa.String(40), nullable=True, index=True),
    sa.Column("continuation", Json, nullable=True),
    sa.Column("processing_since", sa.Float, nullable=True),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("test_clock_id", sa.String(40), nullable=True),
    sa.Column("metadata", Json, nullable=False),
    sa.Column("created", sa.BigInteger, nullable=False),
    sa.Column("updated", sa.BigInteger, nullable=False),
    sa.Index(None, "livemode", "seq"),
)

refunds = sa.Table(
    "refunds",
    metadata,
    _seq(),
    sa.Column("id", sa.String(40), nullable=False, unique=True),
    sa.Column("livemode", sa.Boolean, nullable=False),
    sa.Column("payment_intent_id", sa.String(40), nullable=False, index=True),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending | succeeded | failed
    sa.Column("reason", sa.String(40), nullable=True),
    sa.Column("refund_ref", sa.String(80), nullable=True),
    sa.Column("processing_since", sa.Float, nullable=True),  # pending: asked the provider since then
    sa.Column("metadata", Json, nullable=False),
    sa.Column("created", sa.BigInteger, nullable=False),
    sa.Column("updated", sa.BigInteger, nullable=False),
    sa.Index(None, "livemode", "seq"),
)

# Time-driven work: one row per due transition. Wall-clock jobs (test_clock_id NULL) are run by
# the scheduler; a test clock's jobs run only when that clock advances.
billing_jobs = sa.Table(
    "billing_jobs",
    metadata,
    _seq(),
    sa.Column("livemode", sa.Boolean, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("object_id", sa.String(40), nullable=False, index=True),
    sa.Column("due", sa.BigInteger, nullable=False),
    sa.Column("payload", Json, nullable=False),
    sa.Column("test_clock_id", sa.String(40), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),  # pending | done | canceled | failed
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created", sa.BigInteger, nullable=False),
    sa.Column("updated", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("kind", "object_id", "due"),
    sa.Index(None, "status", "test_clock_id", "due", "seq"),  # the claim's whole order (0014)
)

# Keys of the built-in signed-receipt minter (Ed25519); the public half is served by the API.
minter_keys = sa.Table(
    "minter_keys",
    metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("kid", sa.String(40), nullable=False),
    sa.Column("private_key", sa.String(400), nullable=False),  # enc:v1:…
    sa.Column("created", sa.BigInteger, nullable=False),
)

# Operations: each background process (`paywire worker`, `paywire serve` with its worker) says
# it is alive every few seconds; `/readyz` reads it.
worker_heartbeats = sa.Table(
    "worker_heartbeats",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started", sa.Float, nullable=False),
    sa.Column("last_seen", sa.Float, nullable=False, index=True),
)

# Payer pages: hosted checkout, payment links, the customer portal.

# A checkout session's hosted page: its absolute `url`, the page's `locale` (auto | en | zh) and
# the payment link that created it, if any. Added to `checkout_sessions` here so all the payer
# pages' schema stays in one block.
checkout_sessions.append_column(sa.Column("url", sa.String(2048), nullable=True))
checkout_sessions.append_column(sa.Column("locale", sa.String(8), nullable=True))
checkout_sessions.append_column(sa.Column("payment_link_id", sa.String(40), nullable=True, index=True))

payment_links = sa.Table(
    "payment_links",
    metadata,
    _seq(),
    sa.Column("id", sa.String(40), nullable=False, unique=True),
    sa.Column("livemode", sa.Boolean, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("line_items", Json, nullable=False),  # [{price_id, quantity}]
    sa.Column("mode", sa.String(16), nullable=False),  # payment | subscription (from the prices)
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("trial_period_days", sa.Integer, nullable=True),
    sa.Column("after_completion_url", sa.String(2048), nullable=True),  # None: the built-in page
    sa.Column("locale", sa.String(8), nullable=False),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("metadata", Json, nullable=False),
    sa.Column("created", sa.BigInteger, nullable=False),
    sa.Column("updated", sa.BigInteger, nullable=False),
    sa.Index(None, "livemode", "seq"),
)

# A customer portal session: its URL carries a one-time token (only its SHA-256 is stored),
# exchanged on the first visit for a cookie whose SHA-256 is `cookie_hash`.
billing_portal_sessions = sa.Table(
    "billing_portal_sessions",
    metadata,
    _seq(),
    sa.Column("id", sa.String(40), nullable=False, unique=True),
    sa.Column("livemode", sa.Boolean, nullable=False),
    sa.Column("customer_id", sa.String(40), nullable=False, index=True),
    sa.Column("return_url", sa.String(2048), nullable=True),
    sa.Column("locale", sa.String(8), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("expires_at", sa.BigInteger, nullable=False),  # the URL must be opened by then
    sa.Column("opened_at", sa.BigInteger, nullable=True),
    sa.Column("cookie_hash", sa.String(64), nullable=True, unique=True),
    sa.Column("cookie_expires_at", sa.BigInteger, nullable=True),
    sa.Column("created", sa.BigInteger, nullable=False),
)

# Operator dashboard
# People who sign in to /dashboard (never API keys): argon2 password hashes, roles admin | viewer.
operators = sa.Table(
    "operators",
    metadata,
    _seq(),
    sa.Column("id", sa.String(40), nullable=False, unique=True),
    sa.Column("email", sa.String(320), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(256), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),  # admin | viewer
    sa.Column("created", sa.BigInteger, nullable=False),
    sa.Column("updated", sa.BigInteger, nullable=False),
)

# Server-side sessions: only the SHA-256 of the cookie's token is stored.
operator_sessions = sa.Table(
    "operator_sessions",
    metadata,
    _seq(),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("operator_id", sa.String(40), nullable=False, index=True),
    sa.Column("livemode", sa.Boolean, nullable=False),  # the dashboard's test/live switch
    sa.Column("created", sa.BigInteger, nullable=False),
    sa.Column("last_seen", sa.BigInteger, nullable=False),
    sa.Column("expires", sa.BigInteger, nullable=False),  # absolute limit
)

# Failed sign-ins, counted per email and per client address to slow down guessing.
sign_in_failures = sa.Table(
    "sign_in_failures",
    metadata,
    _seq(),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("ip", sa.String(64), nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Index(None, "email", "created"),
    sa.Index(None, "ip", "created"),
)

# What operators did, append-only: the dashboard never updates or deletes these rows.
audit_log = sa.Table(
    "audit_log",
    metadata,
    _seq(),
    sa.Column("operator_id", sa.String(40), nullable=True),
    sa.Column("operator_email", sa.String(320), nullable=False),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("object_id", sa.String(40), nullable=True),
    sa.Column("livemode", sa.Boolean, nullable=True),
    sa.Column("ip", sa.String(64), nullable=True),
    sa.Column("detail", Json, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
)

# Endpoint health over the last 24 h reads each endpoint's recent attempts from this index alone
# (covering: status and duration too). It replaces `webhook_attempts(endpoint_id)`, its prefix,
# so recording an attempt writes no more index entries than before.
sa.Index(
    "ix_webhook_attempts_endpoint_id_created",
    webhook_attempts.c.endpoint_id,
    webhook_attempts.c.created,
    webhook_attempts.c.status,
    webhook_attempts.c.duration_ms,
)

# Providers ------------------------------------------------------------------------------------
# Events a payment provider sent to its webhook (Stripe's `evt_…`), kept so a repeat is ignored.
provider_events = sa.Table(
    "provider_events",
    metadata,
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("provider", sa.String(16), nullable=False),
    sa.Column("type", sa.String(80), nullable=False),
    sa.Column("received", sa.BigInteger, nullable=False),
)
