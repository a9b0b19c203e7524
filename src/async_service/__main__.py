"""`python -m async_service`: the same as the `async-service` console script."""

from .cli import app

app()
