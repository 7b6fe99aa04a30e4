"""Rows that older GroomGuard versions wrote and the current code no longer does, for upgrade and erasure tests."""

from __future__ import annotations

from datetime import datetime

from groomguard.adapters.matrix.store import MatrixStore


async def plant_matrix_invite(matrix: MatrixStore, suspect: str, kid: str, event_id: str, at: datetime) -> None:
    """A pending invite as versions before the rejections detector owned request expiry kept it."""
    await matrix.db.execute(
        "INSERT INTO matrix_invites VALUES ($1, $2, $3, $4, $5, $6)",
        f"{suspect}>{kid}",
        "test-community",
        suspect,
        kid,
        event_id,
        at.isoformat(),
    )
