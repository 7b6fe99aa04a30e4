"""Matrix alert cards carry the case picture, uploaded to the real Synapse's media repository, and the web link."""

from __future__ import annotations

import io
from typing import Any

import pytest
from groomguard.config import MatrixSettings
from nio import DownloadResponse, RoomMessagesResponse
from PIL import Image

from tests.matrix.test_adapter_commands import COMMUNITY, Bench, bench, expect, fan_out, room, until

__all__ = ["bench"]  # the fixture, imported for this module's tests


async def bot_messages(client: Any, room_id: str, bot: str) -> list[dict[str, Any]]:
    reply = expect(await client.room_messages(room_id, start=None, limit=100), RoomMessagesResponse)
    return [e.source for e in reversed(reply.chunk) if e.source.get("sender") == bot]


@pytest.mark.synapse
async def test_card_has_the_uploaded_graph_and_the_case_link(bench: Bench) -> None:
    bot_id, bot_token = bench.server.register("pic_bot")
    mod, adult = bench.user("pic_mod"), bench.user("pic_adult")
    mod_room = await room(mod, {bot_id: 100}, invite=[bot_id])
    settings = MatrixSettings(
        enabled=True,
        homeserver=bench.server.url,
        user_id=bot_id,
        access_token=bot_token,
        mod_room=mod_room,
        sync_timeout_ms=2_000,
    )
    engine, bot = await bench.start(settings)
    engine.settings.web.public_url = "https://mod.example.org"
    assert bot.mod_room_problem is None

    await engine.ingest(fan_out(adult.user_id))
    await until(lambda: any(c.suspect == adult.user_id for c in engine.cases.by_id.values()), "a case")
    [case] = [c for c in engine.cases.by_id.values() if c.suspect == adult.user_id]
    await engine.drain()
    card = await bot.mstore.card(COMMUNITY, case.id)  # type: ignore[union-attr]
    assert card is not None

    events = await bot_messages(mod, mod_room, bot_id)
    posted = next(e for e in events if e["event_id"] == card.event_id)["content"]
    html = posted["formatted_body"]
    assert f'<a href="https://mod.example.org/cases/{case.id}">Open the case</a>' in html
    assert f"Open the case: https://mod.example.org/cases/{case.id}" in posted["body"]
    start = html.index('<img src="') + len('<img src="')
    mxc = html[start : html.index('"', start)]
    assert mxc.startswith("mxc://localhost/")
    alt = html.split('alt="', 1)[1].split('"', 1)[0]
    assert alt.startswith("The suspect reached 8 children") and "synthetic_kid" not in alt
    assert "synthetic_kid" not in posted["body"].split("Picture:", 1)[1]

    # The upload is real: the homeserver serves the PNG back.
    server, media_id = mxc.removeprefix("mxc://").split("/", 1)
    download = expect(await mod.download(server_name=server, media_id=media_id), DownloadResponse)
    image = Image.open(io.BytesIO(download.body))
    assert image.format == "PNG" and image.size == (480, 315)
    assert download.content_type == "image/png"

    # An edit of the card carries the picture again; the same picture is not uploaded twice.
    edits = [e for e in events if e["content"].get("m.relates_to", {}).get("event_id") == card.event_id]
    shown = {mxc} | {
        e["content"]["m.new_content"]["formatted_body"].split('<img src="')[1].split('"')[0] for e in edits
    }
    assert shown == set(bot._uploads.values()), "one upload per distinct picture, every card version shows one"
