"""Records of the storage core. Frozen value objects crossing layer boundaries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NewType

from lampi.core import errors

# A container's key in the MetaStore: what objects, versions and uploads refer to. Clients
# name containers; ``lampi.core.storage.Storage`` resolves a name seen from an account to
# its Container (and key) and derives the key of a new one: the name itself in the global
# namespace, "<project_id>/<name>" in the per-project one (``bucket_namespace``).
CKey = NewType("CKey", str)


@dataclass(frozen=True, slots=True)
class Account:
    project_id: str
    meta: dict[str, str]
    created_at: float
    container_count: int = 0
    object_count: int = 0
    bytes_used: int = 0


@dataclass(frozen=True, slots=True)
class Container:
    name: str
    project_id: str
    created_at: float
    meta: dict[str, str]
    object_count: int = 0
    bytes_used: int = 0
    put_timestamp: float = 0.0
    updated_at: float = 0.0
    key: CKey = CKey("")  # the store's key (see CKey); the store always sets it
    policy: str | None = None  # storage policy name (None: from before policies: the first policy)


@dataclass(frozen=True, slots=True)
class ManifestInfo:
    """An object whose bytes are the concatenation of other stored bytes.

    The object's blob holds the manifest *body* (the segment list; for ``slo`` it is
    Swift's stored JSON, served by ``?multipart-manifest=get``); ``ObjectRecord.size``
    and ``etag`` describe the whole large object as clients see it. See
    ``lampi/core/manifest.py`` and docs/architecture.md "Manifests".
    """

    kind: str  # "slo" (Swift SLO over named segment objects); "mpu" (S3 multipart: part blobs it owns)
    body_size: int = 0  # bytes of the manifest body in the blob (what fsck and bytes-used count)
    body_etag: str = ""  # MD5 of the manifest body (Swift's X-Manifest-Etag, SLO listing hash)
    parts: int = 0  # number of top-level segments


# Inline blobs: a small object's bytes kept in the metadata store, in its table
# ``inline_blobs`` (blob id → bytes), written in the transaction that records the object
# and read with it (docs/architecture.md "Inline blobs"). Their ids begin with this
# character, which no BlobStore's ids do (they are hex): a blob store never sees them.
INLINE_PREFIX = "~"


def is_inline(blob_id: str) -> bool:
    return blob_id[:1] == INLINE_PREFIX


@dataclass(frozen=True, slots=True)
class ObjectRecord:
    container: CKey
    name: str
    blob_id: str
    size: int
    etag: str
    content_type: str
    last_modified: float  # the X-Timestamp of the PUT/POST that made this version
    meta: dict[str, str] = field(default_factory=dict)  # user metadata, lower-case keys without prefix
    sysmeta: dict[str, str] = field(default_factory=dict)  # content-disposition, content-encoding, ...
    delete_at: int | None = None
    data_timestamp: float = 0.0  # when the bytes were written (unchanged by POST)
    manifest: ManifestInfo | None = None  # set for stored manifests (SLO, later S3 multipart)
    # object versioning (lampi/core/versions.py): the id of this version; None for an
    # unversioned ("null") object. A current object with an id shares its blob with its
    # version record, which owns it.
    version_id: str | None = None
    # an inline blob's bytes (``is_inline``) when the store read them with the record;
    # None otherwise (``Storage`` then asks the MetaStore for them)
    inline: bytes | None = field(default=None, compare=False, repr=False)

    @property
    def stored_size(self) -> int:
        """Bytes of the object's own blob: the manifest body for a manifest, else ``size``."""
        return self.manifest.body_size if self.manifest is not None else self.size


@dataclass(frozen=True, slots=True)
class WriteCondition:
    """A conditional write (S3 PutObject, CopyObject, CompleteMultipartUpload with
    ``If-Match`` / ``If-None-Match``), checked against the current object inside the
    metadata transaction that commits the write, so no other write can slip in between.

    Each is a tuple of ETags (without quotes); ``"*"`` matches any object."""

    if_match: tuple[str, ...] | None = None  # the current object must exist and match
    if_none_match: tuple[str, ...] | None = None  # no current object may match

    def check(self, current: ObjectRecord | None) -> None:
        """Raise ObjectNotFound (If-Match, no object) or PreconditionFailed."""
        tags = _etags_of(current) if current is not None else ()
        if self.if_match is not None:
            if current is None:
                raise errors.ObjectNotFound()
            if "*" not in self.if_match and not set(tags) & set(self.if_match):
                raise errors.PreconditionFailed(condition="If-Match")
        if self.if_none_match is not None and current is not None:
            if "*" in self.if_none_match or set(tags) & set(self.if_none_match):
                raise errors.PreconditionFailed(condition="If-None-Match")


def _etags_of(rec: ObjectRecord) -> tuple[str, ...]:
    """The ETags a condition may name: the stored one and, for a Swift SLO, the ``-N``
    form S3 shows."""
    if rec.manifest is not None and rec.manifest.kind == "slo":
        return rec.etag, f"{rec.etag}-{rec.manifest.parts}"
    return (rec.etag,)


# the sysmeta key that makes a zero-byte object a Swift symlink (lampi.swift.symlink):
# its value names the target; the object's own bytes are none of the target's
SYMLINK_TARGET = "x-symlink-target"
SYMLINK_TARGET_ACCOUNT = "x-symlink-target-account"  # a link into another account
SYMLINK_TARGET_ETAG = "x-symlink-target-etag"  # a static link: the target's ETag, checked on reads
SYMLOOP_MAX = 2  # Swift's symloop_max: links followed in a row

# flags of a raw listing row (MetaStore.list_objects(raw=True)): a zero-byte object
# whose sysmeta may make it a symlink, or a DLO manifest
MAY_LINK = 1
MAY_DLO = 2
S3_OWNED = 4  # listing flag: the object's sysmeta names an S3 owner other than the bucket's


@dataclass(frozen=True, slots=True)
class ListingEntry:
    """One row of a container or account listing, or a subdir (name set, is_subdir)."""

    name: str
    is_subdir: bool = False
    bytes: int = 0
    count: int = 0
    hash: str = ""
    content_type: str = ""
    last_modified: float = 0.0
    extra: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ListParams:
    prefix: str = ""
    delimiter: str = ""
    marker: str = ""
    end_marker: str = ""
    limit: int = 10000
    reverse: bool = False
    # Swift's ``path=``: list the level under ``path`` (prefix ``path/``, delimiter "/")
    # without subdir entries; None when not asked (an empty path is the top level)
    path: str | None = None


# --- identity records (Keystone v3 subset) -------------------------------------


@dataclass(frozen=True, slots=True)
class Domain:
    id: str
    name: str
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    name: str
    domain_id: str
    description: str = ""
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class User:
    id: str
    name: str
    domain_id: str
    password_hash: str = field(default="", repr=False)
    enabled: bool = True
    default_project_id: str | None = None


@dataclass(frozen=True, slots=True)
class Credential:
    """A Keystone EC2 credential: an S3 key pair acting as ``user_id`` in ``project_id``."""

    access: str
    secret: str = field(repr=False)
    user_id: str
    project_id: str
    created_at: float = 0.0


# --- S3 multipart uploads (lampi/core/multipart.py) ------------------------------


@dataclass(frozen=True, slots=True)
class MultipartUpload:
    """An S3 multipart upload in progress: what CreateMultipartUpload said about the
    object to be (its key, content type, metadata, tags, checksum algorithm)."""

    upload_id: str
    container: CKey
    name: str
    project_id: str
    initiated: float
    content_type: str = "binary/octet-stream"
    meta: dict[str, str] = field(default_factory=dict)
    sysmeta: dict[str, str] = field(default_factory=dict)
    checksum_alg: str | None = None
    checksum_type: str | None = None  # "COMPOSITE" / "FULL_OBJECT" as the client asked
    owner: str = ""  # user id of the initiator


@dataclass(frozen=True, slots=True)
class UploadPart:
    """One uploaded part: its own committed blob, owned by the upload until Complete."""

    upload_id: str
    part_number: int
    blob_id: str
    size: int
    etag: str  # MD5 hex of the part's bytes
    last_modified: float
    checksum: str | None = None  # the verified x-amz-checksum-<alg> value (base64), if any
