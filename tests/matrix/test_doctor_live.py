"""The Matrix access token is checked live, by `groomguard doctor` and at start, against the real Synapse (issue 12)."""

from __future__ import annotations

from pathlib import Path

import pytest
from groomguard.adapters.matrix.adapter import MatrixAdapter, MatrixError
from groomguard.app.doctor import check_live
from groomguard.config import MatrixSettings, load_settings
from groomguard.testing import running_engine

from tests.synapse.homeserver import Homeserver


def test_doctor_accepts_a_good_token_and_names_a_wrong_or_refused_one(synapse: Homeserver) -> None:
    user_id, token = synapse.register("doctorbot")
    other_id, _ = synapse.register("someoneelse")
    settings = load_settings(None)
    settings.matrix.enabled = True
    settings.matrix.homeserver = synapse.url
    settings.matrix.access_token = token  # type: ignore[assignment]
    settings.matrix.user_id = user_id
    [good] = check_live(settings)
    assert not good.failed and f"accepted live for {user_id}" in good.detail
    settings.matrix.user_id = other_id
    [wrong] = check_live(settings)
    assert wrong.failed and f"belongs to {user_id}, not {other_id}" in wrong.detail
    settings.matrix.access_token = "syt_not_a_real_token"  # type: ignore[assignment]
    [refused] = check_live(settings)
    assert refused.failed and "rejected the access token" in refused.detail
    settings.matrix.homeserver = "http://127.0.0.1:9"
    [down] = check_live(settings)
    assert down.failed and "cannot reach http://127.0.0.1:9" in down.detail
    assert token not in good.detail + wrong.detail + refused.detail + down.detail


async def test_adapter_start_with_a_refused_token_is_one_clear_error(synapse: Homeserver, tmp_path: Path) -> None:
    """Start-up proves the token once: a wrong one is an error naming the fix, not an endless retry loop."""
    user_id, _token = synapse.register("wrongtokenbot")
    settings = MatrixSettings(
        enabled=True, homeserver=synapse.url, user_id=user_id, access_token="syt_wrong", mod_room="!x:localhost"
    )
    adapter = MatrixAdapter(settings)
    async with running_engine(tmp_path / "m.db") as (engine, _sink):
        with pytest.raises(MatrixError, match="refused the access token"):
            await adapter.start(engine)
        await adapter.stop()
