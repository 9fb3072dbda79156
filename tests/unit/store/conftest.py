"""Fixtures shared by the store contract suites.

``meta_backend`` is parametrized over every MetaStore implementation. A backend
opens any number of store instances on the *same* backing database (that is how
worker processes share one), and closes them all at teardown. To add PostgreSQL,
add a backend class with ``open()`` and ``close_all()`` and list it in
``META_BACKENDS``.

The PostgreSQL backend runs on one throw-away cluster for the session (tests/pgcluster.py),
a fresh database per test copied from a template that holds the schema. Without
PostgreSQL its params skip, or fail when LAMPI_REQUIRE_POSTGRES=1 (CI).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from lampi.store.meta.sqlite import SQLiteMetaStore
from tests.pgcluster import PGCluster, require_postgres


class _Backend:
    """Opens stores of one kind; closes every one it opened."""

    def __init__(self) -> None:
        self.stores: list[Any] = []

    def _kept(self, store: Any) -> Any:
        self.stores.append(store)
        return store

    def close_all(self) -> None:
        async def _close() -> None:
            for s in self.stores:
                await s.close()

        asyncio.run(_close())


class SQLiteBackend(_Backend):
    def __init__(self, tmp: Path) -> None:
        super().__init__()
        self.path = tmp / "meta" / "lampi.db"

    def open(self) -> SQLiteMetaStore:
        return self._kept(SQLiteMetaStore(self.path))


class PostgresBackend(_Backend):
    def __init__(self, tmp: Path, url: str) -> None:
        super().__init__()
        self.tmp = tmp
        self.url = url

    def open(self):  # noqa: ANN201
        from lampi.store.meta.postgres import PostgresMetaStore

        return self._kept(PostgresMetaStore(self.url, self.tmp, pool_size=4))


META_BACKENDS = {"sqlite": SQLiteBackend, "postgres": PostgresBackend}


@pytest.fixture(scope="session")
def pg_cluster():  # noqa: ANN201
    """A throw-away PostgreSQL cluster and the name of a template database holding the
    lampi schema."""
    cluster = PGCluster(require_postgres())
    try:
        cluster.start()
        import psycopg

        from lampi.store.meta.postgres.schema import upgrade

        url = cluster.create_db()
        with psycopg.connect(url, autocommit=True) as conn:
            upgrade(conn)
        yield cluster, url.rsplit("/", 1)[1]
    finally:
        cluster.stop()


@pytest.fixture(params=sorted(META_BACKENDS))
def meta_backend(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "postgres":
        cluster, template = request.getfixturevalue("pg_cluster")
        backend: Any = PostgresBackend(tmp_path, cluster.create_db(template))
    else:
        backend = META_BACKENDS[request.param](tmp_path)
    yield backend
    backend.close_all()


@pytest.fixture
def meta(meta_backend):
    return meta_backend.open()
