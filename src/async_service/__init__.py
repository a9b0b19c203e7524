"""The platform team's `async-service` CLI for the copier-async-service template."""
