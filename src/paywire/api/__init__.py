"""The HTTP API (FastAPI): routes, authentication, errors, idempotency."""
