"""The web case view (`groomguard web`): moderators sign in, work the case queue, open cases and decide."""

from groomguard.app.web.app import WebView, peak_risk

__all__ = ["WebView", "peak_risk"]
