"""Platform adapters: each turns platform objects into events and carries actions back out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from groomguard.actions import ChildNotice, Enforcement, ModAlert
    from groomguard.config import Settings
    from groomguard.port import EnginePort


@runtime_checkable
class Adapter(Protocol):
    """What `groomguard run` starts: an event source that is also the sink for its platform's actions.

    `deliver` must ignore actions whose `platform` is not its own, and be idempotent on `action_id`.
    """

    name: str

    async def start(self, engine: EnginePort) -> None: ...

    async def stop(self) -> None: ...

    async def deliver(self, action: ModAlert | ChildNotice | Enforcement) -> None: ...


def enabled_adapters(settings: Settings) -> list[Adapter]:
    """Build the adapters the config switches on; imports are lazy so extras stay optional."""
    adapters: list[Adapter] = []
    if settings.webhook.enabled:
        from groomguard.adapters.webhook import WebhookAdapter

        adapters.append(WebhookAdapter(settings.webhook))
    if settings.discord.enabled:
        from groomguard.adapters.discord import DiscordAdapter

        adapters.append(DiscordAdapter(settings.discord))
    if settings.matrix.enabled:
        from groomguard.adapters.matrix.adapter import MatrixAdapter

        adapters.append(MatrixAdapter(settings.matrix))
    return adapters
