"""The MetaStore (lampi/store/meta/base.py) on PostgreSQL: many stateless gateways over
one database (``meta_url = "postgresql://user@host:port/db"``).

The record families are the SQLite store's mixins (one implementation of the semantics;
their statements translated by ``dialect``) over ``PGBase`` (a psycopg 3 pool,
SERIALIZABLE transactions retried on conflict). What SQLite does with files of its own
is done here in the database: token revocations (a table, re-read by a gateway when a
one-row generation moved), the identity
generation (read per S3 request, one row), the re-sealing of EC2 secrets (one transaction holding the
credentials table's lock). Schema: ``schema`` (versioned; ``lampi db upgrade``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from lampi.core import errors
from lampi.core.models import ObjectRecord, WriteCondition
from lampi.store.keyring import SealError
from lampi.store.meta import arrival, memo
from lampi.store.meta.base import SealReport
from lampi.store.meta.postgres.conn import PGBase
from lampi.store.meta.postgres.schema import SCHEMA_VERSION, SchemaError, upgrade
from lampi.store.meta.sqlite.containers import ContainersMixin
from lampi.store.meta.sqlite.credentials import CredentialsMixin
from lampi.store.meta.sqlite.identity import IdentityMixin
from lampi.store.meta.sqlite.keys import KeysMixin
from lampi.store.meta.sqlite.multipart import MultipartMixin
from lampi.store.meta.sqlite.objects import ObjectsMixin
from lampi.store.meta.sqlite.quotas import QuotasMixin
from lampi.store.meta.sqlite.rows import RowsMixin
from lampi.store.meta.sqlite.versions import VersionsMixin

__all__ = ["SCHEMA_VERSION", "PostgresMetaStore", "SchemaError", "is_postgres_url", "upgrade"]

log = logging.getLogger("lampi.store")



def is_postgres_url(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


class PostgresMetaStore(PGBase, IdentityMixin, CredentialsMixin, ContainersMixin, VersionsMixin, MultipartMixin,
                        ObjectsMixin, QuotasMixin, KeysMixin, RowsMixin):
    """The MetaStore on a PostgreSQL database (see the module's docstring)."""

    def __init__(self, url: str, data_dir: str | Path, *, create: bool = False, pool_size: int | None = None) -> None:
        kw: dict[str, Any] = {"create": create}
        if pool_size is not None:
            kw["pool_size"] = pool_size
        PGBase.__init__(self, url, data_dir, **kw)

    # -- object writes: the common case in one statement -------------------------------

    def _put_row(self, c: Any, record: ObjectRecord, cond: WriteCondition | None = None,
                 null_write: bool = False) -> list[str]:
        """The shared body (ObjectsMixin._put_row), an unversioned write with no condition
        as one call of ``lampi_put_object`` (schema versions 3, 4): one round trip in the
        container's write transaction instead of six, an inline blob's bytes included.
        The function writes nothing and
        answers NULL where the shared body must decide (object lock, an S3 null version
        replaced), which then runs in the same transaction."""
        if cond is None and record.version_id is None:
            values = self._values(record)[:12]
            used = self._stored_size(record.size, values[11])
            done = c.execute("SELECT lampi_put_object(" + ", ".join("?" * 15) + ")",
                             (*values, used, null_write, record.inline)).fetchone()[0]
            if done == "/no-container":
                raise errors.ContainerNotFound()
            if done is not None:
                return [done] if done else []
        return super()._put_row(c, record, cond, null_write)

    def _delete_row(self, c: Any, container: str, name: str, if_blob: str | None = None,
                    bypass_governance: bool = False) -> str | None:
        """The shared body (ObjectsMixin._delete_row) as one call of
        ``lampi_delete_object``, unless the object may be under object lock (then the
        shared body runs, in the same transaction)."""
        done = c.execute("SELECT lampi_delete_object(?, ?, ?)", (container, name, if_blob)).fetchone()[0]
        if done == "/no-container":
            raise errors.ContainerNotFound()
        if done == "/none":
            return None
        if done is not None:
            return str(done)
        return super()._delete_row(c, container, name, if_blob, bypass_governance)

    # -- token revocations -------------------------------------------------------------

    async def revoke_token(self, audit_id: str, expires_at: float) -> None:
        def fn(c: Any) -> None:
            c.execute("INSERT OR REPLACE INTO revoked (audit_id, expires_at) VALUES (?, ?)", (audit_id, expires_at))
            c.execute("DELETE FROM revoked WHERE expires_at < ?", (time.time() - 3600,))
            c.execute("UPDATE revoke_gen SET gen = gen + 1 WHERE id = 0")

        await self._tx(fn)

    async def revoked_tokens(self) -> set[str]:
        """The revoked token audit ids: one row read (the revocation generation), the
        list re-read only when it moved (another gateway's revocation is honoured at
        once). The row read is shared (``memo.Shared``) by the requests that arrived
        before it began: a revocation committed before a request arrived is still seen;
        at 16 concurrent requests that is most of them, a round trip each saved."""

        def fn(c: Any) -> set[str]:
            gen = c.execute("SELECT gen FROM revoke_gen WHERE id = 0").fetchone()[0]
            if self._revoke_version is None or gen > self._revoke_version:  # reads may end out of order
                rows = c.execute("SELECT audit_id FROM revoked").fetchall()
                with self._revoke_lock:
                    if self._revoke_version is None or gen > self._revoke_version:
                        self._revoked, self._revoke_version = {r[0] for r in rows}, gen
            return self._revoked

        return await memo.shared(("revoke_gen",), lambda: self._read(fn), self._shared)  # type: ignore[no-any-return]

    # -- identity generation -----------------------------------------------------------

    async def identity_generation(self) -> int:  # type: ignore[override]
        """The identity generation (a row moved by triggers on every credential, user,
        project and assignment write), read per S3 request: a key deleted or a user
        disabled through any gateway or admin command is refused by every gateway at
        once. One indexed row, shared as the revocation generation is; still one read
        instead of the four the key cache saves."""
        def fn(c: Any) -> int:
            return c.execute("SELECT gen FROM identity_gen WHERE id = 0").fetchone()[0]  # type: ignore[no-any-return]

        return await memo.shared(("identity_gen",), lambda: self._read(fn), self._shared)  # type: ignore[no-any-return]

    # -- EC2 secrets: sealing older rows, rotation ----------------------------------------

    async def seal_credentials(self) -> SealReport:
        clear = await self._run(
            lambda c: c.execute("SELECT COUNT(*) FROM credentials WHERE key_hash IS NULL").fetchone()[0])
        if not clear:
            return SealReport()
        return await self._tx(lambda c: self._reseal_in(c, True))

    async def rotate_credential_key(self) -> SealReport:
        await asyncio.to_thread(self.credential_keys.add_key)  # a read and a write of the key source
        report = await self._tx(lambda c: self._reseal_in(c, False))
        removed = await self._tx(self._remove_unused_in)
        return SealReport(report.sealed, report.primary, report.unopenable, removed, report.scrubbed)

    def _reseal_in(self, c: Any, only_clear: bool) -> SealReport:
        """Re-seal in the caller's transaction, the credentials table locked against
        writers (a credential made meanwhile waits, then is sealed with the new primary)."""
        c.execute("LOCK TABLE credentials IN SHARE ROW EXCLUSIVE MODE")
        keys = self.credential_keys
        primary = keys.primary(create=True)
        sealed, unopenable, _ = self._reseal_rows(c.execute, primary, only_clear)
        # PostgreSQL keeps replaced row versions until VACUUM: old clear text may remain
        # in the table's free space until then (docs/scale-out.md)
        return SealReport(sealed, primary, tuple(unopenable), (), scrubbed=False if sealed else True)

    def _remove_unused_in(self, c: Any) -> tuple[Path | str, ...]:
        c.execute("LOCK TABLE credentials IN SHARE ROW EXCLUSIVE MODE")
        used = {r[0] for r in c.execute("SELECT DISTINCT key_hash FROM credentials WHERE key_hash IS NOT NULL")}
        keys = self.credential_keys
        return tuple(keys.remove((k for k in keys.key_ids() if k not in used), execute=c.execute))
