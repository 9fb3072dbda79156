"""Fixtures shared by the store contract suites.

``meta_backend`` is parametrized over every MetaStore implementation. A backend
opens any number of store instances on the *same* backing database (that is how
worker processes share one), and closes them all at teardown. To add PostgreSQL,
add a backend class with ``open()`` and ``close_all()`` and list it in
``META_BACKENDS``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from lampi.store.meta.sqlite import SQLiteMetaStore


class SQLiteBackend:
    def __init__(self, tmp: Path) -> None:
        self.path = tmp / "meta" / "lampi.db"
        self.stores: list[Any] = []

    def open(self) -> SQLiteMetaStore:
        store = SQLiteMetaStore(self.path)
        self.stores.append(store)
        return store

    def close_all(self) -> None:
        async def _close() -> None:
            for s in self.stores:
                await s.close()

        asyncio.run(_close())


META_BACKENDS = {"sqlite": SQLiteBackend}


@pytest.fixture(params=sorted(META_BACKENDS))
def meta_backend(request: pytest.FixtureRequest, tmp_path: Path):
    backend = META_BACKENDS[request.param](tmp_path)
    yield backend
    backend.close_all()


@pytest.fixture
def meta(meta_backend):
    return meta_backend.open()
