"""The adapter's own card table: erasing a child scrubs them from other suspects' stored cards."""

from __future__ import annotations

from pathlib import Path

from groomguard.actions import ModAlert, Reason
from groomguard.adapters.discord.cardstore import Card, CardStore
from groomguard.findings import Evidence
from groomguard.store.sqlite import SqliteStore
from groomguard.testing import T0


async def test_forget_scrubs_a_child_from_other_cards(tmp_path: Path) -> None:
    engine_store = SqliteStore(tmp_path / "cards.db")
    await engine_store.open()  # migration 005 creates the card tables
    store = CardStore(engine_store.tables())
    await store.open()
    try:
        alert = ModAlert(
            action_id="alert:g:1:1",
            platform="discord",
            community="g",
            case_id=1,
            suspect="111",
            risk=0.7,
            reasons=(Reason(detector="fan_out", text="contacted 6 under-18 accounts", score=0.7),),
            evidence=(Evidence(kind="account", ref="222", label="contacted"), Evidence(kind="account", ref="333")),
            children=("222", "333"),
            at=T0,
        )
        await store.save(
            Card(case_id=1, guild_id=1, channel_id=2, message_id=3, version=1, alert=alert, undelivered=["222"])
        )
        assert await store.forget("222") == 0  # not a suspect: no card removed...
        card = await store.card(1)
        assert card is not None
        assert card.alert.children == ("333",)  # ...but no longer named on the stored card
        assert [e.ref for e in card.alert.evidence] == ["333"]
        assert card.undelivered == []
        assert await store.forget("111") == 1 and await store.card(1) is None
    finally:
        await store.close()
        await engine_store.close()
