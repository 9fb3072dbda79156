"""The protocol-neutral storage core.

Owns the commit order (blob durable → metadata transaction → caller acknowledges),
streaming MD5 while writing, name checks shared by every protocol, expiry
visibility and cleanup of replaced blobs. Swift and S3 adapters call this; it never
imports aiohttp.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any, TypeVar

from lampi.core import errors
from lampi.core import manifest as manifest_mod
from lampi.core import objectlock, sse, versions
from lampi.core.blobwrite import read_inline, recording, stream_to_blob
from lampi.core.models import (Account, CKey, Container, ListingEntry, ListParams, ManifestInfo, ObjectRecord,
                               WriteCondition, is_inline)
from lampi.store.blob.base import BlobStore
from lampi.store.blob.policies import PolicyBlobStore
from lampi.store.meta.base import MetaStore

log = logging.getLogger("lampi.core")
T = TypeVar("T")


def check_name(kind: str, name: str, max_bytes: int) -> None:
    """Names are non-empty valid UTF-8 without NUL, at most ``max_bytes`` bytes."""
    if not name:
        raise errors.InvalidName(f"{kind} name is empty")
    if "\x00" in name:
        raise errors.InvalidName(f"{kind} name contains a NUL character")
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError:
        raise errors.InvalidName(f"{kind} name is not valid UTF-8") from None
    if len(raw) > max_bytes:
        raise errors.InvalidName(f"{kind} name length of {len(raw)} longer than {max_bytes}")


NAMESPACES = ("global", "project")
DEFAULT_POLICY = "default-placement"  # the one policy of a store not configured otherwise (Allas's name)


async def namespace_problem(meta: MetaStore, namespace: str) -> str | None:
    """Why ``meta`` cannot be served in ``namespace`` (None: it can). Any store can be
    served per project; in the global namespace a name must mean one container, so a
    store where two projects have containers of the same name (made while it was served
    per project) is refused until one of each is deleted."""
    if namespace == "project":
        return None
    shared = await meta.shared_names()
    if not shared:
        return None
    return ("bucket_namespace = \"global\" needs every container name to be used by one project only, "
            "but this store has names used by several projects (made while it was served with "
            "bucket_namespace = \"project\"): " + ", ".join(repr(n) for n in shared)
            + ". Serve it with --bucket-namespace project, or delete those containers in all but one project.")


class Storage:
    """``namespace`` (setting ``bucket_namespace``): ``global``, one container name per
    service as bucket names are on Allas; ``project``, each project has its own names
    (as RGW's tenants). Clients name containers; every name is resolved here (``lookup``,
    ``container``) to a Container whose ``key`` the rest of the core and the store use."""

    def __init__(self, meta: MetaStore, blobs: BlobStore, namespace: str = "global",
                 keys: sse.KeyService | None = None, inline_max: int = 0) -> None:
        if namespace not in NAMESPACES:
            raise ValueError(f"bucket namespace must be one of {', '.join(NAMESPACES)}, not {namespace!r}")
        self.meta = meta
        self.blobs = blobs
        self.namespace = namespace
        self.keys = keys  # server-side encryption keys (None: encryption is refused)
        # objects up to this size (known before the body, not encrypted, not manifests,
        # of a container whose policy has no place of its own) are written as inline
        # blobs: into the metadata store, in the transaction that records them
        # (lampi.core.models.is_inline; setting ``inline_max``)
        self.inline_max = inline_max
        # storage policies: one blob store each (lampi.store.blob.policies); a plain
        # BlobStore is one policy of the default name
        self._policies = blobs if isinstance(blobs, PolicyBlobStore) else None

    # -- storage policies -------------------------------------------------------------

    def policy_names(self) -> list[str]:
        """The configured policies, the first being the one of containers made before
        policies existed (Swift's policy 0)."""
        return self._policies.names() if self._policies is not None else [DEFAULT_POLICY]

    def default_policy(self) -> str:
        return self._policies.default if self._policies is not None else DEFAULT_POLICY

    def find_policy(self, name: str) -> str | None:
        """The configured spelling of policy ``name`` (case-insensitive, as Swift), or None."""
        if self._policies is not None:
            return self._policies.canonical(name)
        return DEFAULT_POLICY if name.upper() == DEFAULT_POLICY.upper() else None

    def policy_name(self, stored: str | None) -> str:
        """A container's policy as clients see it, from its stored value (``Container.policy``
        or an account listing row's ``extra["policy"]``): None, from before policies, is
        the first policy; a name no longer configured is shown as stored."""
        if stored is None:
            return self.policy_names()[0]
        return self.find_policy(stored) or stored

    def policy_info(self) -> list[tuple[str, bool]]:
        """(name, is the default) of every policy, for Swift's /info."""
        default = self.default_policy()
        return [(n, n == default) for n in self.policy_names()]

    async def policy_stats(self, project_id: str) -> dict[str, tuple[int, int, int]]:
        """Policy name → (containers, objects, bytes) of the project's containers of that
        policy, for the policies it has containers in (Swift's per-policy account stats)."""
        out: dict[str, tuple[int, int, int]] = {}
        for stored, (nc, no, nb) in (await self.meta.policy_stats(project_id)).items():
            name = self.policy_name(stored)
            c0, o0, b0 = out.get(name, (0, 0, 0))
            out[name] = (c0 + nc, o0 + no, b0 + nb)
        return out

    async def list_containers(self, project_id: str, params: ListParams) -> list[ListingEntry]:
        """An account listing; each container's ``extra["storage_policy"]`` is its policy's name."""
        rows = await self.meta.list_containers(project_id, params)
        return [r if r.is_subdir else replace(r, extra={"storage_policy": self.policy_name((r.extra or {}).get("policy"))})
                for r in rows]

    def blobs_for(self, c: Container | None) -> BlobStore:
        """Where new bytes of container ``c`` go: its policy's blob store."""
        if self._policies is None:
            return self.blobs
        return self._policies.for_policy(self.policy_name(c.policy) if c is not None else None)

    @property
    def per_project(self) -> bool:
        return self.namespace == "project"

    def container_key(self, project_id: str, name: str) -> CKey:
        """The key of a new container ``name`` of ``project_id`` (see ``CKey``)."""
        return CKey(f"{project_id}/{name}") if self.per_project else CKey(name)

    # -- accounts -------------------------------------------------------------------

    async def account(self, project_id: str) -> Account:
        return await self.meta.get_account(project_id)

    async def update_account_meta(self, project_id: str, updates: dict[str, str | None]) -> None:
        await self.meta.update_account_meta(project_id, updates)

    # -- containers -----------------------------------------------------------------

    async def create_container(
        self, project_id: str, name: str, meta: dict[str, str], timestamp: float | None = None,
        policy: str | None = None,
    ) -> bool:
        """``policy``: its storage policy's name; None, the default policy (recorded by
        name when policies are configured: None in the store means the first one)."""
        if policy is None and self._policies is not None:
            policy = self.default_policy()
        return await self.meta.create_container(
            project_id, name, meta, timestamp or time.time(), key=self.container_key(project_id, name),
            global_names=not self.per_project, policy=policy)

    async def lookup(self, project_id: str | None, name: str, obj: str | None = None,
                     body: bool = False) -> Container | None:
        """The container ``name`` means to account ``project_id``: that project's in the
        per-project namespace (None: no project, nothing found), the one of that name
        whoever owns it in the global namespace (the caller checks the owner). ``obj``:
        the object of it the request reads next (GET, HEAD), a hint for the store;
        ``body``: and its bytes (GET)."""
        if self.per_project:
            return None if project_id is None else await self.meta.find_container(name, project_id, obj, body)
        return await self.meta.find_container(name, None, obj, body)

    async def container(self, project_id: str, name: str) -> Container:
        """The container ``name`` of account ``project_id`` (ContainerNotFound unless it
        belongs to that account)."""
        c = await self.lookup(project_id, name)
        if c is None or c.project_id != project_id:
            raise errors.ContainerNotFound()
        return c

    async def by_key(self, key: CKey) -> Container | None:
        return await self.meta.get_container(key)

    async def update_container_meta(self, key: CKey, updates: dict[str, str | None],
                                    put_timestamp: float | None = None) -> None:
        await self.meta.update_container_meta(key, updates, put_timestamp)

    async def delete_container(self, project_id: str, name: str) -> None:
        c = await self.container(project_id, name)
        await self.meta.delete_container(project_id, c.key)

    async def list_objects(self, container: CKey, params: ListParams) -> list[ListingEntry]:
        return await self.meta.list_objects(container, params, time.time())

    async def list_object_rows(self, container: CKey, params: ListParams) -> list[Any]:
        """``list_objects`` with objects as plain row tuples (see MetaStore.list_objects
        ``raw``): the JSON listing's fast path, no per-row object."""
        return await self.meta.list_objects(container, params, time.time(), raw=True)

    # -- objects --------------------------------------------------------------------

    async def put_object(
        self,
        container: CKey,
        name: str,
        body: AsyncIterable[bytes],
        *,
        content_type: str,
        meta: dict[str, str],
        sysmeta: dict[str, str],
        delete_at: int | None = None,
        expected_size: int | None = None,
        expected_etag: str | None = None,
        max_size: int | None = None,
        timestamp: float | None = None,
        manifest: ManifestInfo | None = None,
        total_size: int | None = None,
        total_etag: str | None = None,
        encryption: sse.Encryption | None = None,
        cond: WriteCondition | None = None,
        null_write: bool = False,
    ) -> ObjectRecord:
        """Stream ``body`` into a new blob and make it the visible version of the object.

        The blob is committed (fsynced) before the metadata transaction; the metadata
        commit is the moment the object becomes visible. On any failure the blob is
        aborted and the previous version stays untouched.

        With ``manifest`` the body is a manifest body (``lampi.core.manifest``): the
        record's size and ETag are the large object's (``total_size``, ``total_etag``)
        and the manifest's ``body_size``/``body_etag`` are filled from the bytes written.

        Data is encrypted at rest (``lampi.core.sse``) as ``encryption`` asks, else as
        the container's default encryption says, whichever API writes; manifest bodies
        are not. The record's ``s3-sse*`` system metadata is set here, never taken from
        the caller's ``sysmeta``.

        ``cond`` (S3 If-Match / If-None-Match) is checked in the metadata transaction
        (the blob is then deleted); ``null_write``: S3's null-version write (see
        ``MetaStore.put_object``). The returned record is as stored (its version id).
        """
        cont = await self.meta.get_container(container)  # its storage policy says where the bytes go
        data_key, sealer, enc_meta = None, None, {}
        if manifest is not None and encryption is not None:
            raise errors.InvalidArgument("manifest bodies are not encrypted")
        if manifest is None:
            if encryption is None:
                encryption = sse.default_encryption(cont.meta) if cont is not None else None
            if encryption is not None:
                data_key, enc_meta = await self.encryption_keys().anew_data_key(encryption)
                sealer = sse.Sealer(data_key)
        data: bytes | None = None
        store = self.blobs_for(cont)
        if (sealer is None and manifest is None and expected_size is not None and expected_size <= self.inline_max
                and (self._policies is None or store is self._policies.base)):
            # (a policy with a place of its own, a directory or a pool, keeps every byte of
            # its containers there.) The free space uploads must leave (min_free_space)
            # holds for bytes kept in the metadata store too: on one node it is on the data
            # dir's filesystem
            check_space = getattr(store, "check_space", None)
            if check_space is not None:
                check_space(expected_size)
            blob_id, data, etag = await read_inline(body, expected_size, max_size=max_size,
                                                    expected_etag=expected_etag)
            written = len(data)
        else:
            blob_id, written, etag = await stream_to_blob(store, body, max_size=max_size,
                                                         expected_size=expected_size, expected_etag=expected_etag,
                                                         sealer=sealer)
        # read only now: the caller may add to ``sysmeta`` as the body ends (S3's verified
        # checksums, lampi.s3.object.put_object)
        sysmeta = {**sse.without_keys(sysmeta), **enc_meta}
        ts = timestamp or time.time()
        size = written
        if sealer is not None:
            sysmeta[sse.STORED_KEY] = str(sse.stored_size(written))
            etag = sse.etag_for(sysmeta, data_key, etag)
        if manifest is not None:
            manifest = replace(manifest, body_size=written, body_etag=etag)
            size = total_size if total_size is not None else written
            etag = total_etag or etag
        record = ObjectRecord(
            container=container,
            name=name,
            blob_id=blob_id,
            size=size,
            etag=etag,
            content_type=content_type,
            last_modified=ts,
            meta=meta,
            sysmeta=sysmeta,
            delete_at=delete_at,
            data_timestamp=ts,
            manifest=manifest,
            inline=data,
        )
        if data is not None:  # nothing written yet: the transaction writes the bytes or not
            record, old = await self.commit_record(record, lambda rec: self.meta.put_object(rec, cond, null_write))
            for blob in old:
                await self._release(blob)
            return record
        with recording(self.blobs, blob_id):  # fsck leaves the blob alone until committed
            try:
                record, old = await self.commit_record(
                    record, lambda rec: self.meta.put_object(rec, cond, null_write))
            except asyncio.CancelledError:
                # Cancelled (e.g. at the end of the shutdown grace period) while the
                # metadata transaction runs in its thread: it may still commit, so the
                # blob must stay. At worst it is an orphan, which fsck removes.
                raise
            except BaseException:
                await self.blobs.delete(blob_id)
                raise
        for blob in old:
            if blob != blob_id:
                await self._release(blob)
        return record

    async def commit_record(
        self, record: ObjectRecord, commit: Callable[[ObjectRecord], Awaitable[T]]
    ) -> tuple[ObjectRecord, T]:
        """Run ``commit`` (the metadata transaction making ``record`` visible) on the
        record as the container wants it: in a container with object versioning enabled
        a new version (id = its timestamp, moved on if taken); in a lock-enabled one with
        the default retention (lampi/core/objectlock.py), lock keys dropped elsewhere."""
        c = await self.meta.get_container(record.container)
        if c is None:
            return record, await commit(record)  # the store's ContainerNotFound
        sysmeta = objectlock.apply_default(c.meta, record.sysmeta, record.last_modified)
        if sysmeta is not record.sysmeta:
            record = replace(record, sysmeta=sysmeta)
        if not versions.enabled(c.meta):
            return record, await commit(record)
        ts = record.last_modified
        for _ in range(100):
            rec = replace(record, last_modified=ts, data_timestamp=ts, version_id=versions.version_id(ts))
            try:
                return rec, await commit(rec)
            except errors.Conflict as exc:
                if exc.message != "version exists":
                    raise
                ts += 0.00001
        raise errors.Conflict("version exists")

    async def _release(self, blob_id: str, parts: bool = True, size: int | None = None) -> None:
        await self.release_blob(blob_id, parts, size)

    async def release_blob(self, blob_id: str, parts: bool = True, size: int | None = None) -> None:
        """Delete a blob no object refers to any more (replaced, deleted, expired) and,
        when it was an S3 multipart manifest's body, the part blobs it owned (``parts``
        False: the caller knows it was not, a plain object's bytes; a look-up saved)."""
        if not blob_id:  # a delete marker or a current object pointing at a version
            return
        if is_inline(blob_id):  # (a transaction releasing one deletes it: only some paths get here)
            try:
                await self.meta.drop_inline(blob_id)
            except Exception:  # an orphan is harmless; fsck collects it
                log.warning("could not delete replaced inline blob %s", blob_id, exc_info=True)
            return
        try:
            for part in (await self.meta.release_manifest(blob_id) if parts else ()):
                await self.blobs.delete(part)
            await self.blobs.delete(blob_id, size)
        except Exception:  # an orphan is harmless; fsck collects it
            log.warning("could not delete replaced blob %s", blob_id, exc_info=True)

    async def head_object(self, container: CKey, name: str) -> ObjectRecord:
        rec = await self.meta.get_object(container, name, time.time())
        if rec is None:
            raise errors.ObjectNotFound()
        return rec

    # -- encryption at rest (lampi/core/sse.py) ---------------------------------------

    def encryption_keys(self) -> sse.KeyService:
        if self.keys is None:
            raise errors.InvalidArgument("Server-side encryption is not available on this server.")
        return self.keys

    async def data_key(self, sysmeta: dict[str, str], customer_key: bytes | None = None) -> bytes | None:
        """The data key of an object (or multipart upload) with system metadata
        ``sysmeta``, None when it is not encrypted. Raises ``EncryptionKeyRequired`` (an
        SSE-C object read without its key), ``EncryptionKeyMismatch``,
        ``EncryptionNotApplicable`` (a customer key for an object that is not SSE-C),
        ``EncryptionKeyUnavailable`` (a server key missing from keys/)."""
        if not sse.is_encrypted(sysmeta):
            if customer_key is not None:
                raise errors.EncryptionNotApplicable()
            return None
        return await self.encryption_keys().adata_key(sysmeta, customer_key)

    def read_blob(
        self, blob_id: str, size: int, data_key: bytes | None, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        """``length`` bytes from ``offset`` of a data blob holding ``size`` bytes,
        decrypted with ``data_key`` (None: stored in clear)."""
        if is_inline(blob_id):  # never encrypted
            return self._read_inline(blob_id, None, offset, length)
        if data_key is None:
            return self.blobs.read(blob_id, offset, length)
        return sse.read(self.blobs, blob_id, size, data_key, offset, length)

    def read_object(
        self, record: ObjectRecord, offset: int = 0, length: int | None = None, customer_key: bytes | None = None
    ) -> AsyncIterator[bytes]:
        """The object's bytes; for a manifest, the concatenated segments (streamed);
        decrypted (``customer_key``: an SSE-C object's key; without it such an object
        raises ``EncryptionKeyRequired`` at the first read)."""
        if record.manifest is not None:
            return self._read_manifest(record, offset, length, customer_key)
        if is_inline(record.blob_id) and customer_key is None:
            return self._read_inline(record.blob_id, record.inline, offset, length)
        if not sse.is_encrypted(record.sysmeta) and customer_key is None:
            return self.blobs.read(record.blob_id, offset, length)
        return self._read_encrypted(record, offset, length, customer_key)

    async def _read_encrypted(
        self, record: ObjectRecord, offset: int, length: int | None, customer_key: bytes | None
    ) -> AsyncIterator[bytes]:
        key = await self.data_key(record.sysmeta, customer_key)
        async for chunk in self.read_blob(record.blob_id, record.size, key, offset, length):
            yield chunk

    async def _read_manifest(
        self, record: ObjectRecord, offset: int, length: int | None, customer_key: bytes | None = None
    ) -> AsyncIterator[bytes]:
        # segments are named relative to the manifest's account
        c = await self.meta.get_container(record.container)
        if c is None:
            raise errors.ContainerNotFound()
        project_id = c.project_id
        async for chunk in manifest_mod.read(self, record, project_id, offset, length, customer_key=customer_key):
            yield chunk

    def read_stored(self, record: ObjectRecord, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """The object's own blob: for a manifest, the manifest body."""
        if is_inline(record.blob_id):
            return self._read_inline(record.blob_id, record.inline, offset, length)
        return self.blobs.read(record.blob_id, offset, length)

    async def inline_range(self, blob_id: str, data: bytes | None, offset: int = 0,
                           length: int | None = None) -> bytes:
        """``length`` bytes from ``offset`` of an inline blob: of ``data`` (read with its
        record) or else read from the metadata store; FileNotFoundError when it has none
        (as a blob store's read)."""
        if data is None:
            data = await self.meta.read_inline(blob_id)
            if data is None:
                raise FileNotFoundError(f"inline blob {blob_id}")
        end = len(data) if length is None else min(len(data), offset + length)
        return data[offset:end] if offset or end < len(data) else data

    async def _read_inline(self, blob_id: str, data: bytes | None, offset: int,
                           length: int | None) -> AsyncIterator[bytes]:
        chunk = await self.inline_range(blob_id, data, offset, length)
        if chunk:
            yield chunk

    async def update_object_meta(
        self,
        record: ObjectRecord,
        meta: dict[str, str],
        sysmeta: dict[str, str],
        content_type: str,
        delete_at: int | None,
        timestamp: float | None = None,
    ) -> ObjectRecord:
        ts = timestamp or time.time()
        # the record's encryption is the blob's, whatever the caller sends (Swift POST
        # replaces system metadata)
        sysmeta = {**sse.without_keys(sysmeta), **sse.own_keys(record.sysmeta)}
        await self.meta.update_object_meta(
            record.container, record.name, meta, sysmeta, content_type, delete_at, ts
        )
        return replace(
            record, meta=meta, sysmeta=sysmeta, content_type=content_type, delete_at=delete_at,
            last_modified=ts,
        )

    async def delete_object(self, container: CKey, name: str, if_record: ObjectRecord | None = None,
                            bypass_governance: bool = False) -> None:
        """Delete the object. With ``if_record``, only if it is still that version (same
        blob), atomically: otherwise PreconditionFailed and nothing changes (a pass that
        decided on a record must not delete an upload that replaced it meanwhile).
        ObjectLocked for an unversioned object under object lock."""
        rec = await self.meta.get_object(container, name, time.time())
        blob_id = await self.meta.delete_object(container, name,
                                                if_blob=if_record.blob_id if if_record is not None else None,
                                                bypass_governance=bypass_governance)
        if blob_id is None and if_record is not None and rec is not None:
            raise errors.PreconditionFailed("the object was replaced")
        if blob_id is None or rec is None:
            if blob_id:
                await self._release(blob_id)  # it had expired: reclaim, still a 404
            raise errors.ObjectNotFound()
        # the record read before: a plain object's blob owns no parts (only an S3 multipart
        # manifest's body does), and holds the object's size (unless encrypted)
        plain = rec.blob_id == blob_id and rec.manifest is None
        await self._release(blob_id, parts=not plain,
                            size=rec.size if plain and not sse.is_encrypted(rec.sysmeta) else None)

    # -- object versions (lampi/core/versions.py) --------------------------------------

    async def get_version(self, container: CKey, name: str, vid: str) -> ObjectRecord | None:
        return await self.meta.get_version(container, name, vid)

    async def delete_current(self, container: CKey, name: str, suspended: bool = False,
                             bypass_governance: bool = False) -> tuple[bool, str]:
        """DELETE with versioning enabled: a delete marker (its id returned) replaces the
        current object, which is kept as a version. ``suspended`` (S3's suspended
        versioning): the object's null version goes and the marker is the new null
        version. (existed, marker version id)."""
        now = time.time()
        existed, vid, released = await self.meta.delete_current(container, name, now, now, suspended,
                                                                bypass_governance)
        for blob in released:
            await self._release(blob)
        return existed, vid

    async def delete_version(self, container: CKey, name: str, vid: str, promote: bool = False,
                             bypass_governance: bool = False) -> tuple[bool, str]:
        """Delete one version and its blob (object lock permitting); ``promote`` (S3):
        the newest remaining version becomes current. (found, current version id after)."""
        found, blob_id, current = await self.meta.delete_version(container, name, vid, promote, bypass_governance)
        if blob_id:
            await self._release(blob_id)
        return found, current

    async def delete_null(self, container: CKey, name: str, promote: bool = False,
                          bypass_governance: bool = False) -> tuple[bool, bool]:
        """Delete the object's S3 null version (unversioned current object or the version
        kept as null). (found, whether it was a delete marker)."""
        found, blob_id, marker = await self.meta.delete_null(container, name, promote, bypass_governance)
        if blob_id:
            await self._release(blob_id)
        return found, marker

    async def null_version(self, container: CKey, name: str) -> str | None:
        return await self.meta.null_version(container, name)

    async def latest_version(self, container: CKey, name: str) -> ObjectRecord | None:
        return await self.meta.latest_version(container, name)

    async def update_version_sysmeta(
        self, container: CKey, name: str, vid: str | None, fn: Callable[[ObjectRecord], dict[str, str]]
    ) -> ObjectRecord:
        """Replace one version's system metadata with ``fn(record)`` (S3 tags, retention,
        legal hold of a version); its encryption keys stay the blob's whatever ``fn`` returns."""

        def keep_encryption(rec: ObjectRecord) -> dict[str, str]:
            return {**sse.without_keys(fn(rec)), **sse.own_keys(rec.sysmeta)}

        return await self.meta.update_version_sysmeta(container, name, vid, keep_encryption)

    async def restore_version(self, container: CKey, name: str, vid: str, keep_current: bool) -> ObjectRecord | None:
        rec, released = await self.meta.restore_version(container, name, vid, keep_current)
        if released:
            await self._release(released)
        return rec

    async def list_versions(self, container: CKey, params: ListParams, version_marker: str | None) -> list[ListingEntry]:
        return await self.meta.list_versions(container, params, version_marker, time.time())

    async def copy_object(
        self,
        source: ObjectRecord,
        container: CKey,
        name: str,
        *,
        content_type: str,
        meta: dict[str, str],
        sysmeta: dict[str, str],
        delete_at: int | None = None,
        customer_key: bytes | None = None,
        encryption: sse.Encryption | None = None,
        cond: WriteCondition | None = None,
        null_write: bool = False,
    ) -> ObjectRecord:
        """Server-side copy: stream the source's bytes into a new blob (never shared).
        A manifest source is copied as its concatenated data into a plain object. The
        source is decrypted (``customer_key``: an SSE-C source's key) and the copy
        encrypted as ``encryption`` or the destination's default says."""
        if source.manifest is None:
            await self.data_key(source.sysmeta, customer_key)  # a missing or wrong key: refused before writing
        return await self.put_object(
            container,
            name,
            self.read_object(source, customer_key=customer_key),
            content_type=content_type,
            meta=meta,
            sysmeta=sysmeta,
            delete_at=delete_at,
            expected_size=source.size,
            encryption=encryption,
            cond=cond,
            null_write=null_write,
        )
