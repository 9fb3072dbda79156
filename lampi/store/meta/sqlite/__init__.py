"""SQLite MetaStore for one node.

WAL journal with ``synchronous=FULL``: a committed transaction is on disk before the
client hears 2xx. Several worker processes share one database file; writes take
``BEGIN IMMEDIATE`` so counters stay exact under concurrent writers. Reads run on one
dedicated thread per process and write transactions on another (each with its own
connection; a sqlite3 connection belongs to its thread), so the event loop never blocks
on the database and reads never wait for a commit's fsync. Concurrent write
transactions are group-committed (see ``_tx``).

Token revocations live in a second small database file so that workers can notice a
new revocation with ``PRAGMA data_version`` (no query on the hot path).

Split by concern: ``conn`` (connections, threads, group commit), ``schema`` (tables,
triggers, migrations), ``listing`` (listing semantics over range scans) and a mixin per
record family (``identity``, ``credentials`` (sealed EC2 secrets), ``containers``, ``objects``, ``versions``, ``multipart``,
``quotas``, ``rows`` (whole tables, for lampi migrate)), combined here.
"""

from __future__ import annotations

from lampi.store.meta.sqlite.containers import ContainersMixin
from lampi.store.meta.sqlite.credentials import CredentialsMixin
from lampi.store.meta.sqlite.identity import IdentityMixin
from lampi.store.meta.sqlite.keys import KeysMixin
# _LIST_BATCH is re-exported for reading; to change it, patch lampi.store.meta.sqlite.listing
from lampi.store.meta.sqlite.listing import _LIST_BATCH, fold_listing  # noqa: F401
from lampi.store.meta.sqlite.multipart import MultipartMixin
from lampi.store.meta.sqlite.objects import ObjectsMixin
from lampi.store.meta.sqlite.quotas import QuotasMixin
from lampi.store.meta.sqlite.rows import RowsMixin
from lampi.store.meta.sqlite.schema import REVOKE_SCHEMA, SCHEMA
from lampi.store.meta.sqlite.versions import VersionsMixin

__all__ = ["REVOKE_SCHEMA", "SCHEMA", "SQLiteMetaStore", "fold_listing"]


class SQLiteMetaStore(IdentityMixin, CredentialsMixin, ContainersMixin, VersionsMixin, MultipartMixin, ObjectsMixin,
                     QuotasMixin, KeysMixin, RowsMixin):
    """The MetaStore (lampi/store/meta/base.py) on one SQLite database file."""
