"""Allows `python -m bot` as well as the `groomguard` script."""

from bot.cli import app

app()
