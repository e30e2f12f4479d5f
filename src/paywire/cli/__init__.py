"""The `paywire` command."""
