"""Allows `python -m groomguard` as well as the `groomguard` script."""

from groomguard.cli import app

app()
