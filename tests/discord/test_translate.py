"""Stripping Discord markup, and the explicit phrases the adapter translates."""

from __future__ import annotations

import pytest
from groomguard.adapters.discord.translate import is_dm_request, self_declared_age, strip_markup


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("hi <@123456789012345678> and <@!123456789012345678> there", "hi and there"),
        ("in <#123456789012345678> ask <@&123456789012345678>", "in #channel ask"),
        ("@everyone and @here", "everyone and here"),
        ("s**n**ap me ||secret|| `code`", "snap me secret code"),
        ("add\u200bme on <https://example.test/x>", "addme on https://example.test/x"),
        ("nice <:pixel_heart:123456789012345678> <t:1767225600:R>", "nice :pixel_heart: [time]"),
        ("ＤＭ me", "DM me"),
        ("> quoted\n\n\n\nnext", "quoted\n\nnext"),
        ("[my site](https://example.test)", "my site https://example.test"),
    ],
)
def test_normalize_text(raw: str, expected: str) -> None:
    assert strip_markup(raw) == expected


def test_dm_requests_and_self_declared_age() -> None:
    assert is_dm_request("you draw well, dm me") and is_dm_request("Add me pls")
    assert not is_dm_request("the admin will add meetings")
    assert self_declared_age("I'm 13") == 13 and self_declared_age("age 16") == 16
    assert self_declared_age("im 13 and my friend is 14") is None and self_declared_age("i am 300") is None
