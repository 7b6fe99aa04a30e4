"""The web case view (`groomguard web`): moderators sign in, work the case queue, open cases and decide."""

from groomguard.web.app import WebView, case_url, peak_risk

__all__ = ["WebView", "case_url", "peak_risk"]
