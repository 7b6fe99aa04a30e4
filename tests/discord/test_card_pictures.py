"""Alert cards carry the case picture as an attachment shown in the embed, and link to the web case view."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from dpy_harness import KIDS, MOD_CHANNEL, SUSPECT, Harness, discord_settings, frame
from PIL import Image


async def test_card_embeds_the_contact_graph_png_and_links_the_case(make_harness: Any, tmp_path: Path) -> None:
    settings = discord_settings(tmp_path / "groomguard.db", web__public_url="https://mod.example.org")
    h: Harness = await make_harness(settings=settings)
    h.feed(frame("message_create_reply.json"))
    h.feed(frame("message_create_mentions.json"))
    await h.settle()

    post = h.rest.find("POST", f"/channels/{MOD_CHANNEL}/messages")[0]
    embed = post.json["embeds"][0]
    assert embed["image"] == {"url": "attachment://case-1-contacts.png"}
    assert embed["url"] == "https://mod.example.org/cases/1"
    assert [a["filename"] for a in post.json["attachments"]] == ["case-1-contacts.png"]
    description = post.json["attachments"][0]["description"]
    assert description.startswith("The suspect reached ") and str(SUSPECT) not in description
    assert not any(str(kid) in description for kid in KIDS)
    [(name, png)] = post.files
    assert name == "case-1-contacts.png"
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and 300 <= image.width <= 640
    assert len(image.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 10, "a drawn graph, not an empty canvas"

    # Each edit of the card carries the picture of the case as it stands now.
    edits = h.rest.find("PATCH", f"/channels/{MOD_CHANNEL}/messages/{post.response['id']}")
    assert edits, h.rest.paths()
    assert edits[-1].json["embeds"][0]["image"] == {"url": "attachment://case-1-contacts.png"}
    assert [f[0] for f in edits[-1].files] == ["case-1-contacts.png"]


async def test_without_a_public_url_the_card_has_no_link(make_harness: Any) -> None:
    h: Harness = await make_harness()
    h.feed(frame("message_create_reply.json"))
    h.feed(frame("message_create_mentions.json"))
    await h.settle()
    embed = h.rest.find("POST", f"/channels/{MOD_CHANNEL}/messages")[0].json["embeds"][0]
    assert "url" not in embed and embed["image"]["url"].startswith("attachment://")
