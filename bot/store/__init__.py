"""Store backends behind the port in groomguard.storage: SQLite by default, PostgreSQL to scale out."""

from __future__ import annotations

from groomguard.config import StoreSettings
from groomguard.storage import ActionT, BatchWrite, Snapshot, Store

__all__ = ["ActionT", "BatchWrite", "Snapshot", "Store", "open_store"]


def open_store(settings: StoreSettings, *, process: bool = True) -> Store:
    """The store the settings ask for (SQLite unless a database_url is set); `process=False` for tools that
    only read or erase: on PostgreSQL they then take no partition (groomguard.store.partitions)."""
    if settings.database_url:
        try:
            from groomguard.store.postgres import PostgresStore
        except ImportError as error:
            raise RuntimeError(
                f"store.database_url is set but PostgreSQL support is missing ({error}): pip install 'groomguard[postgres]'"
            ) from None
        return PostgresStore(
            settings.database_url, settings.partitions, settings.partition_lease_seconds, process=process
        )
    from groomguard.store.sqlite import SqliteStore

    return SqliteStore(settings.path, writer_process=settings.writer_process)
