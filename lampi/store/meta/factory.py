"""Open the MetaStore the settings name (``meta_url``): SQLite in the data dir by
default, PostgreSQL for ``postgresql://`` URLs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lampi.store.keyring import MasterKeySource
from lampi.store.meta.base import MetaStore


def master_key_source(settings: Any) -> MasterKeySource:
    """The master key the settings name (``master_key``, ``master_key_file``), with the
    data dir's ``master.key`` as the default file."""
    return MasterKeySource(value=settings.master_key, file=settings.master_key_file,
                           default_file=str(Path(settings.data_dir) / "master.key"))


def open_meta(meta_url: str, data_dir: str | Path, *, create: bool = False, durable: bool = True,
              master_key: MasterKeySource | None = None) -> Any:
    """The MetaStore of ``meta_url`` (empty: ``data_dir/meta.db``). ``create``: make the
    PostgreSQL schema in a database that has none (``lampi serve``, ``lampi init``);
    else a database without the schema, or with an older or newer one, is refused with
    ``SchemaError`` naming what to do. ``durable=False`` (``--ephemeral``): SQLite
    without fsync per commit (PostgreSQL keeps its own settings). ``master_key``: where
    the keys live (``KeysMixin.use_keys``; None: PostgreSQL looks for
    ``data_dir/master.key``, SQLite keeps its keys as files)."""
    if meta_url:
        from lampi.store.meta.postgres import PostgresMetaStore

        store: Any = PostgresMetaStore(meta_url, data_dir, create=create)
    else:
        from lampi.store.meta.sqlite import SQLiteMetaStore

        store = SQLiteMetaStore(Path(data_dir) / "meta.db", durable=durable)
    if master_key is not None:
        store.use_keys(master_key)
    return store


__all__ = ["MasterKeySource", "MetaStore", "master_key_source", "open_meta"]
