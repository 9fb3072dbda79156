"""EC2 credentials (S3 key pairs) of the SQLite MetaStore, their secrets sealed at rest.

Column ``secret`` holds the secret sealed (Fernet, ``lampi/store/keyring.py``) with the
key whose id is in ``key_hash``, as Keystone keeps ``encrypted_blob`` and ``key_hash``;
the sealed text binds the access key too, so secrets cannot be swapped between rows.
Sealing happens inside the write transaction, with the primary key as it is on disk at
that moment: a rotation (``rotate_credential_key``) writes its new key before it
re-seals, so no row can be sealed with a key it then removes. Callers only ever see
clear ``Credential`` objects.

Rows with ``key_hash`` NULL hold the secret in clear: stores written before sealing
existed. ``seal_credentials`` (run at every start) seals them once; their old bytes are
overwritten (``secure_delete``, then VACUUM and the WAL truncated), not left in the file.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

from lampi.core import errors
from lampi.core.models import Credential
from lampi.store.keyring import KeyRing, SealError, StoredKeyRing
from lampi.store.meta.base import SealReport
from lampi.store.meta.sqlite.conn import SQLiteBase
from lampi.store.meta.sqlite.schema import SCHEMA

log = logging.getLogger("lampi.store")


class CredentialsMixin(SQLiteBase):
    _CCOLS = "access, secret, user_id, project_id, created_at, key_hash"

    @property
    def credential_keys(self) -> KeyRing | StoredKeyRing:
        """The keys sealing EC2 secrets: ``keys/credential-*`` beside the database, or the
        ring ``credential`` of the keys table (``KeysMixin.keys``)."""
        return self.keys.ring("credential")  # type: ignore[attr-defined]

    def _seal(self, access: str, secret: str) -> tuple[str, str]:
        return self.credential_keys.seal(json.dumps([access, secret]).encode())

    def _unseal(self, access: str, sealed: str, kid: str) -> str:
        """The clear secret; SealError when it cannot be opened or is not ``access``'s."""
        try:
            payload = json.loads(self.credential_keys.open(kid, sealed))
        except ValueError:
            raise SealError("its sealed text is not what lampi seals") from None
        if not (isinstance(payload, list) and len(payload) == 2 and payload[0] == access
                and isinstance(payload[1], str)):
            raise SealError("its sealed text belongs to another access key")
        return payload[1]

    def _credential(self, row: tuple) -> Credential:  # type: ignore[type-arg]
        access, stored, user_id, project_id, created_at, kid = row
        if kid is None:
            secret = stored  # clear text of an older store: sealed at the next start
        else:
            try:
                secret = self._unseal(access, stored, kid)
            except SealError as exc:
                log.error("the secret of EC2 credential %s cannot be unsealed: %s", access, exc)
                raise errors.DataUnavailable(
                    f"The secret of EC2 credential {access} cannot be unsealed: {exc}.") from None
        return Credential(access, secret, user_id, project_id, created_at)

    async def create_credential(self, cred: Credential) -> Credential:
        # the first key is made before the write transaction: a key ring in the keys table
        # of this very SQLite file could not be written while the transaction holds the lock
        await asyncio.to_thread(self.credential_keys.primary, True)

        def fn(c: sqlite3.Connection) -> Credential:
            kid, sealed = self._seal(cred.access, cred.secret)
            try:
                c.execute(
                    f"INSERT INTO credentials ({self._CCOLS}) VALUES (?, ?, ?, ?, ?, ?)",
                    (cred.access, sealed, cred.user_id, cred.project_id, cred.created_at or time.time(), kid),
                )
            except sqlite3.IntegrityError:
                raise errors.Conflict("credential exists or refers to an unknown user/project") from None
            return cred

        return await self._tx(fn)

    async def get_credential(self, access: str) -> Credential | None:
        # Read when a worker's key cache (lampi/s3/sigv4.py) misses: the cache keeps the
        # unsealed credential until the identity generation moves, so a Fernet open
        # (~20 µs) is paid once per key and generation, not per request.
        def fn(c: sqlite3.Connection) -> Credential | None:
            row = c.execute(f"SELECT {self._CCOLS} FROM credentials WHERE access = ?", (access,)).fetchone()
            return self._credential(row) if row else None

        return await self._run(fn)

    async def list_credentials(self, user_id: str | None = None) -> list[Credential]:
        def fn(c: sqlite3.Connection) -> list[Credential]:
            if user_id is None:
                rows = c.execute(f"SELECT {self._CCOLS} FROM credentials ORDER BY created_at, access")
            else:
                rows = c.execute(
                    f"SELECT {self._CCOLS} FROM credentials WHERE user_id = ? ORDER BY created_at, access",
                    (user_id,),
                )
            return [self._credential(r) for r in rows.fetchall()]

        return await self._run(fn)

    async def delete_credential(self, access: str) -> None:
        def fn(c: sqlite3.Connection) -> None:
            if not c.execute("DELETE FROM credentials WHERE access = ?", (access,)).rowcount:
                raise errors.NotFound("credential not found")

        await self._tx(fn)

    # -- sealing older rows, rotation ----------------------------------------------------

    async def seal_credentials(self) -> SealReport:
        """Seal the secrets stored in clear (stores written before sealing existed).
        Idempotent and cheap when there are none (one indexed count, no key made)."""
        clear = await self._run(
            lambda c: c.execute("SELECT COUNT(*) FROM credentials WHERE key_hash IS NULL").fetchone()[0])
        if not clear:
            return SealReport()
        return await asyncio.to_thread(self._reseal, True)

    async def rotate_credential_key(self) -> SealReport:
        """Make a new primary key, re-seal every secret with it, then remove the key files
        no row needs any more. Safe beside a running server: workers meet the new key id
        and re-read ``keys/``; a credential made meanwhile is sealed with the new key."""
        await asyncio.to_thread(self.credential_keys.add_key)  # a read and a write of the key source
        report = await asyncio.to_thread(self._reseal, False)
        removed = await asyncio.to_thread(self._remove_unused_keys)
        return SealReport(report.sealed, report.primary, report.unopenable, removed, report.scrubbed)

    def _private_conn(self) -> sqlite3.Connection:
        conn = self._open(self.path, SCHEMA)
        # the values replaced or freed from here on are overwritten with zeros, not left
        # in free space of the file where a copy of meta.db would still show them
        conn.execute("PRAGMA secure_delete=ON")
        return conn

    def _reseal_rows(self, execute: Any, primary: str, only_clear: bool) -> tuple[int, list[str], bool]:
        """Seal with ``primary`` the secrets stored in clear (``only_clear``), or every one
        not sealed with it, through ``execute`` in the caller's write transaction (SQLite's
        or PostgreSQL's). Returns (rows sealed, access keys whose secret cannot be
        unsealed, whether a clear secret was among them)."""
        if only_clear:
            rows = execute("SELECT access, secret, key_hash FROM credentials WHERE key_hash IS NULL").fetchall()
        else:
            rows = execute("SELECT access, secret, key_hash FROM credentials "
                           "WHERE key_hash IS NULL OR key_hash != ?", (primary,)).fetchall()
        sealed, unopenable, had_clear = 0, [], False
        for access, stored, kid in rows:
            if kid is None:
                secret, had_clear = stored, True
            else:
                try:
                    secret = self._unseal(access, stored, kid)
                except SealError as exc:
                    log.error("the secret of EC2 credential %s cannot be unsealed: %s", access, exc)
                    unopenable.append(access)
                    continue
            new_kid, new_sealed = self._seal(access, secret)
            execute("UPDATE credentials SET secret = ?, key_hash = ? WHERE access = ?", (new_sealed, new_kid, access))
            sealed += 1
        return sealed, unopenable, had_clear

    def _reseal(self, only_clear: bool) -> SealReport:
        keys = self.credential_keys
        keys.primary(create=True)  # made before the write lock is taken (see create_credential)
        conn = self._private_conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                primary = keys.primary(create=True)  # read inside the write lock
                sealed, unopenable, had_clear = self._reseal_rows(conn.execute, primary, only_clear)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            vacuumed = not had_clear
            if had_clear:
                # secure_delete zeroes what this transaction replaced, but not copies of
                # the clear secrets that B-tree page splits and reuse left earlier in the
                # free space of other pages (most SQLite builds default to
                # secure_delete=OFF). VACUUM rebuilds every page: once per old store.
                try:
                    conn.execute("VACUUM")
                    vacuumed = True
                except sqlite3.Error as exc:  # e.g. no room for the rebuilt copy
                    log.warning("could not VACUUM %s after sealing its clear EC2 secrets (%s): old copies may "
                                "remain in its free space until `sqlite3 %s VACUUM` is run", self.path, exc,
                                self.path)
            truncated = True
            if sealed:
                # the WAL still holds the pages as they were: checkpoint them into the
                # database file (over the old bytes) and empty it
                truncated = not conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
                if not truncated:
                    log.warning("%s-wal is in use by another process: the old bytes of the secrets just sealed "
                                "stay in it until its next checkpoint", self.path)
            return SealReport(sealed, primary, tuple(unopenable), (), truncated and vacuumed)
        finally:
            conn.close()

    def _remove_unused_keys(self) -> tuple[Path | str, ...]:
        """Delete the key files of keys neither primary nor sealing any row. Decided
        under the write lock: a row being sealed now commits after, with the primary."""
        conn = self._open(self.path, SCHEMA)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                used = {r[0] for r in conn.execute(
                    "SELECT DISTINCT key_hash FROM credentials WHERE key_hash IS NOT NULL")}
                keys = self.credential_keys
                # key rows go in this transaction (files: removed under its lock)
                removed = keys.remove((k for k in keys.key_ids() if k not in used), execute=conn.execute)
                conn.execute("COMMIT")
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            return tuple(removed)
        finally:
            conn.close()

