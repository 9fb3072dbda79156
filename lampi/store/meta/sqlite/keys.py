"""The ``keys`` table of both metadata stores (``lampi/store/keyring.py``: ``KeyTable``).

One row per key of a ring (``ring``: ``fernet``, ``credential``, ``sse``, ``kms/<name>``,
and ``master``'s check row), the key's text sealed with the master key, which is never
stored here. Synchronous, from any thread: the key rings are asked for keys from inside
other transactions' bodies (sealing an EC2 secret) and from the event loop (tokens), so
these run on connections of their own (SQLite: a short-lived one; PostgreSQL: the pool),
never inside the caller's transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from lampi.store.keyring import FileKeys, KeyTable, MasterKeySource, StoredKeys


class _Taken(Exception):
    """A row to insert exists already: roll the insertion back."""


class KeysMixin(KeyTable):
    """Needs ``_sync_read``/``_sync_tx`` (SQLiteBase, PGBase) and ``shares_keys``."""

    _master_source: MasterKeySource | None = None

    # -- the key source of this store ---------------------------------------------------

    def use_keys(self, source: MasterKeySource | None) -> None:
        """Where this store's keys live: with a master key (``source`` configured, or any
        PostgreSQL store) in the ``keys`` table, sealed with it; else (SQLite, no master
        key: one node) the files of ``<data-dir>/keys``, as ever."""
        self._master_source = source
        self.__dict__.pop("keys", None)

    @property
    def keys(self) -> FileKeys | StoredKeys:
        found = self.__dict__.get("keys")
        if found is None:
            found = self.__dict__["keys"] = self._make_keys()
        return found

    def _make_keys(self) -> FileKeys | StoredKeys:
        key_dir = self.path.parent / "keys"  # type: ignore[attr-defined]
        source = self._master_source
        if source is None or not source.configured:
            if not getattr(self, "shares_keys", False):
                return FileKeys(key_dir)
            source = MasterKeySource(value=source.value if source else "", file=source.file if source else "",
                                     default_file=str(self.path.parent / "master.key"))  # type: ignore[attr-defined]
        return StoredKeys(self, source, import_dir=key_dir)

    # -- KeyTable -------------------------------------------------------------------------

    def key_rows(self, ring: str) -> list[tuple[int, str, str]]:
        return self._sync_read(  # type: ignore[attr-defined]
            lambda c: [tuple(r) for r in c.execute(
            "SELECT n, kid, sealed FROM keys WHERE ring = ? ORDER BY n", (ring,)).fetchall()])

    def insert_key_rows(self, rows: list[tuple[str, int, str, str]], *, fresh_check: bool = False) -> bool:
        now = time.time()

        def fn(c: Any) -> bool:
            for i, (ring, n, kid, sealed) in enumerate(rows):
                cur = c.execute("INSERT OR IGNORE INTO keys (ring, n, kid, sealed, created_at) VALUES (?, ?, ?, ?, ?)",
                                (ring, n, kid, sealed, now))
                if cur.rowcount == 0:
                    if fresh_check and i == 0:
                        return False  # not a fresh store: insert nothing else
                    raise _Taken
            return True

        try:
            return bool(self._sync_tx(fn))  # type: ignore[attr-defined]
        except _Taken:
            return False

    def delete_key_rows(self, ring: str, ns: list[int]) -> int:
        def fn(c: Any) -> int:
            return sum(c.execute("DELETE FROM keys WHERE ring = ? AND n = ?", (ring, n)).rowcount for n in ns)

        return int(self._sync_tx(fn))  # type: ignore[attr-defined]

    def key_rings(self) -> list[str]:
        return self._sync_read(  # type: ignore[attr-defined]
            lambda c: [r[0] for r in c.execute(
            "SELECT DISTINCT ring FROM keys ORDER BY ring").fetchall()])

    def reseal_key_rows(
        self, change: Callable[[list[tuple[str, int, str, str]]], list[tuple[str, int, str, str]]]
    ) -> tuple[int, int]:
        def fn(c: Any) -> tuple[int, int]:
            rows = [tuple(r) for r in c.execute("SELECT ring, n, kid, sealed FROM keys ORDER BY ring, n").fetchall()]
            done = 0
            for ring, n, old, new in change(rows):  # type: ignore[arg-type]
                done += c.execute("UPDATE keys SET sealed = ? WHERE ring = ? AND n = ? AND sealed = ?",
                                  (new, ring, n, old)).rowcount
            return done, len(rows)

        return self._sync_tx(fn)  # type: ignore[attr-defined,no-any-return]
