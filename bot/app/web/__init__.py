"""The web case view (`groomguard web`): moderators sign in, work the case queue, open cases and decide."""

from groomguard.app.web.app import WebView

__all__ = ["WebView"]
