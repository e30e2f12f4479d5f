"""Running Paywire in production: backups, health and readiness, metrics."""
