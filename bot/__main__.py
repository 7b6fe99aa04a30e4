"""Allows `python -m groomguard` as well as the `groomguard` script."""

from groomguard.app.cli import app

app()
