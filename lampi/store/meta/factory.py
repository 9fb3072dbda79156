"""Open the MetaStore the settings name (``meta_url``): SQLite in the data dir by
default, PostgreSQL for ``postgresql://`` URLs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lampi.store.meta.base import MetaStore


def open_meta(meta_url: str, data_dir: str | Path, *, create: bool = False, durable: bool = True) -> Any:
    """The MetaStore of ``meta_url`` (empty: ``data_dir/meta.db``). ``create``: make the
    PostgreSQL schema in a database that has none (``lampi serve``, ``lampi init``);
    else a database without the schema, or with an older or newer one, is refused with
    ``SchemaError`` naming what to do. ``durable=False`` (``--ephemeral``): SQLite
    without fsync per commit (PostgreSQL keeps its own settings)."""
    if meta_url:
        from lampi.store.meta.postgres import PostgresMetaStore

        return PostgresMetaStore(meta_url, data_dir, create=create)
    from lampi.store.meta.sqlite import SQLiteMetaStore

    return SQLiteMetaStore(Path(data_dir) / "meta.db", durable=durable)


__all__ = ["MetaStore", "open_meta"]
