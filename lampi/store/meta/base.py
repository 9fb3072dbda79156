"""The MetaStore protocol: everything lampi remembers except object bytes.

Implementations: ``sqlite.SQLiteMetaStore`` (one node) and ``postgres.PostgresMetaStore``
(many gateways over one PostgreSQL database, ``meta_url``). ``tests/unit/store/test_meta_contract.py``
is the contract every implementation must pass.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from lampi.core.models import (
    Account,
    CKey,
    Container,
    Credential,
    Domain,
    ListingEntry,
    ListParams,
    MultipartUpload,
    ObjectRecord,
    Project,
    UploadPart,
    User,
    WriteCondition,
)


class SchemaError(Exception):
    """The database's schema cannot be served by this lampi (message says what to do).
    Here, not in the PostgreSQL store's package, so that a gateway over SQLite catching
    it does not import psycopg (~150 ms of its start-up)."""


@dataclass(frozen=True, slots=True)
class SealReport:
    """What ``MetaStore.seal_credentials`` / ``rotate_credential_key`` did."""

    sealed: int = 0  # rows (re)sealed with the primary key
    primary: str | None = None  # the primary key's id
    unopenable: tuple[str, ...] = ()  # access keys whose sealed secret could not be opened
    removed_keys: tuple[Path | str, ...] = ()  # keys no row needed any more, removed (files, or rows named)
    scrubbed: bool = True  # False: old bytes may remain (WAL busy, VACUUM failed), see the log


# The tables ``lampi migrate`` copies, in an order that honours their foreign keys, with
# their primary keys (export order, resumption, upserts). Every other table of a store
# must be in ``NOT_MIGRATED``: ``lampi migrate`` refuses a store with a table in neither.
MIGRATED_TABLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("domains", ("id",)),
    ("projects", ("id",)),
    ("users", ("id",)),
    ("assignments", ("user_id", "project_id", "role")),
    ("roles", ("id",)),
    ("keys", ("ring", "n")),  # keys kept in the store, sealed with the master key: the target's gateways need the same one
    ("credentials", ("access",)),  # sealed: the keys go with them (lampi.store.keyring)
    ("project_quotas", ("project_id",)),
    ("accounts", ("project_id",)),  # account metadata: temp-URL keys, ACLs; counters
    ("containers", ("ckey",)),  # metadata: ACLs, quotas, versioning, lifecycle, CORS, policy...
    ("inline_blobs", ("blob_id",)),  # small objects' bytes (lampi.core.models.is_inline), before their rows
    ("objects", ("container", "name")),
    ("object_versions", ("container", "name", "version_id")),
    ("null_versions", ("container", "name")),
    ("mpu_uploads", ("upload_id",)),
    ("mpu_parts", ("upload_id", "part_number")),
    ("manifest_parts", ("owner", "blob_id")),
    ("revoked", ("audit_id",)),  # token revocations (SQLite: revocations.db)
)
# tables of a store that are not copied, and why
NOT_MIGRATED = {
    "leases": "held by the running passes of a server, for seconds",
    "identity_gen": "moved by the target's own triggers as rows arrive",
    "revoke_gen": "moved by the target when revocations arrive",
    "schema_version": "the target's own",
}


class MetaStore(Protocol):
    async def close(self) -> None: ...
    async def ping(self) -> None:
        """Raise when the store cannot be reached (readiness: a query on the open
        connection and a fresh open of the database)."""
        ...
    async def usage_by_project(self) -> list[tuple[str, int, int, int]]:
        """(account key, bytes used, objects, containers) of every storage account."""
        ...

    # identity
    async def create_domain(self, domain: Domain) -> Domain: ...
    async def get_domain(self, id_or_name: str) -> Domain | None: ...
    async def list_domains(self) -> list[Domain]: ...
    async def delete_domain(self, domain_id: str) -> None: ...
    async def create_role(self, role_id: str, name: str) -> None: ...
    async def list_roles(self) -> list[str]: ...
    async def delete_role(self, name: str) -> list[str]: ...
    async def create_project(self, project: Project) -> Project: ...
    async def get_project(self, project_id: str) -> Project | None: ...
    async def find_project(self, name: str, domain_id: str) -> Project | None: ...
    async def list_projects(self) -> list[Project]: ...
    async def delete_project(self, project_id: str) -> None: ...
    async def create_user(self, user: User) -> User: ...
    async def get_user(self, user_id: str) -> User | None: ...
    async def find_user(self, name: str, domain_id: str) -> User | None: ...
    async def list_users(self) -> list[User]: ...
    async def delete_user(self, user_id: str) -> None: ...
    async def set_password_hash(self, user_id: str, password_hash: str) -> None: ...
    async def grant_role(self, user_id: str, project_id: str, role: str) -> None: ...
    async def revoke_role(self, user_id: str, project_id: str, role: str) -> None: ...
    async def roles_for(self, user_id: str, project_id: str) -> list[str]: ...
    async def projects_for_user(self, user_id: str) -> list[Project]: ...
    async def revoke_token(self, audit_id: str, expires_at: float) -> None: ...
    async def revoked_tokens(self) -> set[str]: ...

    # accounts and containers
    async def get_account(self, project_id: str) -> Account: ...
    async def ensure_account(self, project_id: str) -> None: ...
    async def update_account_meta(self, project_id: str, updates: dict[str, str | None]) -> None: ...
    async def list_containers(self, project_id: str, params: ListParams) -> list[ListingEntry]: ...
    async def create_container(
        self, project_id: str, name: str, meta: dict[str, str], timestamp: float, *,
        key: CKey | None = None, global_names: bool = True, policy: str | None = None,
    ) -> bool:
        """Create container ``name`` of ``project_id`` under ``key`` (default: the name; False
        when the project has it already: ``meta`` is merged into it). ``global_names``: a
        name is unique in the whole service (ContainerNameTaken when another project has
        it), else per project. ``policy``: its storage policy's name."""
        ...

    async def get_container(self, key: CKey) -> Container | None: ...
    async def find_container(self, name: str, project_id: str | None, obj: str | None = None,
                             body: bool = False) -> Container | None:
        """The container ``name`` of ``project_id``; with None, of whichever project has it
        (global namespace). ``obj``: a hint that the request reads that object next (a
        store may read its record now, for the request's ``get_object``); ``body``: and
        its bytes (a GET: an inline blob's may be read with it)."""
        ...

    async def policy_stats(self, project_id: str) -> dict[str | None, tuple[int, int, int]]:
        """Stored storage policy (None: from before policies) → (containers, objects,
        bytes) of the project's containers."""
        ...

    async def shared_names(self, limit: int = 10) -> list[str]:
        """Container names that more than one project uses (possible only in the
        per-project namespace; the global one refuses to serve such a store)."""
        ...

    async def update_container_meta(self, key: CKey, updates: dict[str, str | None],
                                    put_timestamp: float | None = None) -> None:
        """Merge ``updates`` (None removes a key); ``put_timestamp`` moves the container's
        put timestamp forward (a Swift container POST)."""
        ...
    async def containers_with_meta(self, key: str) -> list[Container]:
        """Every container whose metadata has ``key`` (S3 lifecycle configuration)."""
        ...

    async def delete_container(self, project_id: str, key: CKey) -> None: ...

    # objects
    async def put_object(self, record: ObjectRecord, cond: WriteCondition | None = None,
                         null_write: bool = False) -> list[str]:
        """Make ``record`` the visible version; return the blob ids it released (the
        replaced unversioned object's; with ``null_write`` also an earlier S3 null version
        kept as a version). ``cond`` (If-Match / If-None-Match) is checked against the
        current object in the same transaction (ObjectNotFound / PreconditionFailed).
        Object lock: ObjectLocked rather than release a locked version."""
        ...

    async def get_object(self, container: CKey, name: str, now: float) -> ObjectRecord | None: ...
    async def objects_sysmeta(self, container: CKey, names: list[str], now: float) -> dict[str, dict[str, str]]: ...
    async def update_object_meta(
        self,
        container: CKey,
        name: str,
        meta: dict[str, str],
        sysmeta: dict[str, str],
        content_type: str,
        delete_at: int | None,
        timestamp: float,
    ) -> None: ...
    async def take_lease(self, name: str, holder: str, ttl: float, now: float) -> bool:
        """Hold (or renew) the lease ``name`` until ``now + ttl`` when it is free, expired
        or already ``holder``'s; False while another holder has it (background passes:
        one worker of all the service's processes runs each)."""
        ...

    async def pending_part_bytes(self, project_id: str, container: CKey) -> tuple[int, int]:
        """Bytes in the parts of multipart uploads in progress: (in ``container``, in the
        whole project). They count against byte quotas while the uploads run."""
        ...

    async def delete_object(self, container: CKey, name: str, if_blob: str | None = None,
                            bypass_governance: bool = False) -> str | None:
        """Remove the object; return its blob id (None when it was absent, or, with
        ``if_blob``, when its current version is not that blob: replaced meanwhile).
        ObjectLocked when an unversioned object is under object lock."""
        ...

    async def list_objects(
        self, container: CKey, params: ListParams, now: float, raw: bool = False
    ) -> list[ListingEntry]:
        """Listing entries; with ``raw`` objects are ``(name, size, etag, content_type,
        last_modified, manifest JSON or None, flags)`` tuples (subdirs stay ListingEntry;
        ``flags``: ``MAY_LINK`` | ``MAY_DLO`` (lampi.core.models) for a zero-byte object
        whose sysmeta may name a symlink target or a DLO segment prefix, ``S3_OWNED``
        for one whose sysmeta names an S3 owner, else 0)."""
        ...

    async def blob_refs(self) -> set[str]:
        """Every blob id metadata refers to (for fsck / garbage collection): objects,
        object versions, parts of uploads in progress, parts owned by a multipart
        object's manifest while an object or version refers to it. One read snapshot."""
        ...

    async def referenced_blobs(self, blob_ids: Collection[str]) -> set[str]:
        """Those of ``blob_ids`` that metadata refers to (as ``blob_refs``), read in one
        snapshot (fsck's re-check before it deletes an orphan)."""
        ...

    async def objects_with_blobs(self, only: Collection[str] | None = None) -> list[tuple[str, str, str, int]]:
        """(container, name, blob_id, stored size) of every object and object version
        whose blob is in the blob store — not inline — (for fsck), or only of those whose
        blob is one of ``only``.

        The stored size is the size of the object's own blob: for a manifest (SLO) the
        manifest body's size, not the large object's total."""
        ...

    async def reap_expired(self, now: float, limit: int) -> list[str]:
        """Remove up to ``limit`` objects expired at ``now``, fixing the counters; return
        one entry per object removed: its blob id for the caller to delete, or "" when
        none is left to the caller (an inline blob, deleted in the transaction; a current
        object pointing at a version). Idempotent, safe across processes."""
        ...

    # per-project quotas (None = the configured default)
    async def get_project_quota(self, project_id: str) -> dict[str, int | None]:
        """{"bytes", "containers", "objects_per_container"} overrides of a project."""
        ...

    async def set_project_quota(self, project_id: str, updates: dict[str, int | None]) -> None: ...

    # EC2 credentials (S3 keys). The secret is kept sealed at rest (encrypted with a key
    # kept apart from the metadata: lampi/store/keyring.py); these methods take and give
    # clear credentials. A secret that cannot be unsealed raises DataUnavailable.
    async def create_credential(self, cred: Credential) -> Credential: ...
    async def get_credential(self, access: str) -> Credential | None: ...
    async def list_credentials(self, user_id: str | None = None) -> list[Credential]: ...
    async def delete_credential(self, access: str) -> None: ...

    async def seal_credentials(self) -> SealReport:
        """Seal secrets still stored in clear (older stores); idempotent, run at start."""
        ...

    async def rotate_credential_key(self) -> SealReport:
        """New primary sealing key; re-seal every secret with it; drop unused keys."""
        ...

    # S3 multipart uploads (lampi/core/multipart.py). Part blobs are committed before
    # their row; an in-progress upload's parts and a completed upload's manifest parts
    # count in ``blob_refs``.
    async def create_upload(self, upload: MultipartUpload) -> None: ...
    async def get_upload(self, upload_id: str) -> MultipartUpload | None: ...
    async def list_uploads(
        self, container: CKey, prefix: str, key_marker: str, upload_id_marker: str, limit: int
    ) -> list[MultipartUpload]:
        """Uploads of ``container`` under ``prefix`` ordered by (key, initiated, id), after
        (``key_marker``, ``upload_id_marker``) as S3 pages them."""
        ...

    async def put_part(self, part: UploadPart) -> str | None:
        """Record a part (replacing one with the same number); return the replaced part's
        blob id. Raises NotFound when the upload is gone (then the caller deletes the blob)."""
        ...

    async def list_parts(self, upload_id: str, marker: int = 0, limit: int = 10000) -> list[UploadPart]: ...
    async def complete_upload(
        self, upload_id: str, record: ObjectRecord, part_blobs: list[str], cond: WriteCondition | None = None,
        null_write: bool = False,
    ) -> tuple[list[str], list[str]]:
        """One transaction: the upload (NotFound if gone) becomes the object ``record``
        (an ``mpu`` manifest owning ``part_blobs``; ``cond``, ``null_write`` as for
        ``put_object``). Returns (blob ids released by the write, blob ids of the upload's
        parts not used, for the caller to delete)."""
        ...

    async def abort_upload(self, upload_id: str) -> list[str] | None:
        """Drop the upload; return its part blob ids (None when it did not exist)."""
        ...

    # Inline blobs (lampi.core.models.is_inline): a record whose ``inline`` is set has its
    # bytes written in put_object's transaction; find_container with ``obj`` and ``body``
    # may read them with the record (its ``inline``), read_inline always can; a
    # transaction releasing an inline blob deletes it (and does not return it among the
    # blobs to delete).
    async def read_inline(self, blob_id: str) -> bytes | None:
        """An inline blob's bytes; None when there is none."""
        ...

    async def drop_inline(self, blob_id: str) -> None:
        """Delete an inline blob (nothing if there is none)."""
        ...

    async def inline_orphans(self) -> list[tuple[str, int]]:
        """(blob id, size) of the inline blobs metadata does not refer to (fsck)."""
        ...

    async def inline_missing(self) -> list[tuple[str, str, str]]:
        """(container, object, blob id) of objects and versions whose inline blob is not
        there (fsck: damage)."""
        ...

    async def release_manifest(self, owner_blob_id: str) -> list[str]:
        """Forget the part blobs owned by a manifest body blob no object refers to any
        more (replaced, deleted or expired); return them for the caller to delete."""
        ...

    # Object versioning (lampi/core/versions.py). ``put_object`` with ``record.version_id``
    # writes a version: the record also becomes a version row owning its blob, and an
    # unversioned current object is kept as a version (id = its timestamp). Version rows
    # count in bytes-used (not in object counts); a current object that points at a
    # version (``version_id`` set) counts one object and no bytes, and ``delete_object`` /
    # ``reap_expired`` of one release no blob (``delete_object`` returns "").
    async def get_version(self, container: CKey, name: str, vid: str) -> ObjectRecord | None:
        """A version row (a delete marker has content type ``DELETE_MARKER``, no blob)."""
        ...

    async def delete_current(self, container: CKey, name: str, ts: float, now: float, suspended: bool = False,
                             bypass_governance: bool = False) -> tuple[bool, str, list[str]]:
        """DELETE in a versioning-enabled container, one transaction: keep an unversioned
        current object as a version (the object's null version), remove the current object,
        write a delete marker at ``ts``. ``suspended`` (S3): the null version goes instead
        (object lock permitting) and the marker becomes the null version. Returns (a
        current object existed, the marker's version id, blobs to release)."""
        ...

    async def delete_version(self, container: CKey, name: str, vid: str, promote: bool = False,
                             bypass_governance: bool = False) -> tuple[bool, str | None, str]:
        """Remove one version (object lock permitting; and the current object when it
        pointed at it). ``promote`` (S3): the newest remaining version, unless a delete
        marker, then becomes current. Returns (found, its blob to release or None, the
        current version id after: "null" when there is none or it is unversioned)."""
        ...

    async def delete_null(self, container: CKey, name: str, promote: bool = False,
                          bypass_governance: bool = False) -> tuple[bool, str | None, bool]:
        """Remove the object's S3 null version: the unversioned current object or the
        version row named in ``null_versions``. Returns (found, its blob or None, whether
        it was a delete marker)."""
        ...

    async def null_version(self, container: CKey, name: str) -> str | None:
        """The id of the version row that is the object's S3 null version, if any."""
        ...

    async def latest_version(self, container: CKey, name: str) -> ObjectRecord | None:
        """The newest version row of the object, if any."""
        ...

    async def update_version_sysmeta(
        self, container: CKey, name: str, vid: str | None, fn: Callable[[ObjectRecord], dict[str, str]]
    ) -> ObjectRecord:
        """Replace one version's system metadata by ``fn(record)`` in one transaction
        (``vid`` None: the unversioned current object; ObjectNotFound if absent or a
        marker); a current object pointing at that version follows."""
        ...

    async def restore_version(
        self, container: CKey, name: str, vid: str, keep_current: bool
    ) -> tuple[ObjectRecord | None, str | None]:
        """Make the current object point at version ``vid`` (None, None when it does not
        exist or is a delete marker). An unversioned current object is kept as a version
        when ``keep_current``, else its blob is returned for release."""
        ...

    # Whole tables, row by row (``lampi migrate``: one store copied into another, table by
    # table in ``MIGRATED_TABLES`` order). Rows are tuples of plain values (str, int, float,
    # None; bytes for inline blobs) in ``table_columns`` order.
    async def table_names(self) -> list[str]:
        """Every table of the store (SQLite: both database files)."""
        ...

    async def table_columns(self, table: str) -> list[str]:
        """The columns of ``table`` in the store's order ([] when it has no such table)."""
        ...

    async def export_rows(self, table: str, after: tuple[object, ...] | None, limit: int) -> list[tuple[object, ...]]:
        """Up to ``limit`` rows of ``table`` (one of ``MIGRATED_TABLES``) in primary-key
        order, after the row whose primary key is ``after`` (None: from the first)."""
        ...

    async def import_rows(self, table: str, columns: list[str], rows: list[tuple[object, ...]]) -> None:
        """Write ``rows`` (values of ``columns``) into ``table`` in one transaction, each
        replacing the row with its primary key if there is one (an upsert: importing the
        same rows again changes nothing). Counters are copied as they are, not recounted."""
        ...

    async def list_versions(
        self, container: CKey, params: ListParams, version_marker: str | None, now: float
    ) -> list[ListingEntry]:
        """Swift's ``?versions`` listing (prefix, delimiter, marker + version_marker,
        limit, reverse); ``extra`` has ``version_id``, ``is_latest``, ``manifest`` and,
        for version rows, ``null`` (the row is the object's S3 null version)."""
        ...
