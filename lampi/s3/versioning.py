"""S3 bucket versioning: the version ids of object requests (Get/PutBucketVersioning are
in lampi.s3.bucket_versioning).

One namespace with Swift's ``object_versioning`` (lampi/core/versions.py,
lampi/swift/object_versioning.py): a bucket's versioning *is* its container's
``X-Versions-Enabled`` — S3 ``Enabled`` ⇔ ``X-Versions-Enabled: True``, ``Suspended`` ⇔
``False``, never set ⇔ unversioned — and S3 versions are the container's version rows,
so a version written through one API is listed and read through the other. Version ids
are Swift's (the write's timestamp, ``1733412345.12345``); S3's ``null`` version is an
unversioned current object, or the version row it became when a later write kept it
(``MetaStore.null_version``), which Swift lists under its timestamp id.

Where the two APIs' rules differ, a request follows its own API's rules: an S3 DELETE of
the current version makes the previous one current (Swift leaves no current object); an
S3 write with versioning suspended replaces the object's null version wherever it is
(Swift keeps an older null version as a version). MFA delete is not supported
(``MfaDelete`` Enabled → 501), as Ceph RGW without MFA configured.
"""

from __future__ import annotations

from lampi.core import errors, versions
from lampi.core.models import CKey, ObjectRecord
from lampi.s3.errors import S3Error, invalid_argument, no_such_key
from lampi.s3.request import S3Request

ENABLED, SUSPENDED = "Enabled", "Suspended"


def state(meta: dict[str, str]) -> str | None:
    """The bucket's versioning status as S3 shows it: Enabled, Suspended or None."""
    value = meta.get(versions.ENABLED_KEY)
    if value is None:
        return None
    return ENABLED if value == "True" else SUSPENDED


def versioned(meta: dict[str, str]) -> bool:
    """Whether versioning was ever configured: objects then answer with version ids."""
    return state(meta) is not None or versions.versioned(meta)


def no_such_version(key: str, vid: str) -> S3Error:
    return S3Error(404, "NoSuchVersion", "The specified version does not exist.", Key=key, VersionId=vid)


def parse_id(raw: str) -> str:
    """A client's ``versionId`` as stored ("null" as is); 400 InvalidArgument when it is
    none of the ids this server gives."""
    vid = versions.normalize(raw)
    if vid is None or (vid != "null" and vid != raw):
        raise invalid_argument("Invalid version id specified", "versionId", raw)
    return vid


async def s3_id(ctx: S3Request, rec: ObjectRecord) -> str:
    """The version id S3 shows for ``rec`` (a current object or a version row)."""
    if rec.version_id is None:
        return "null"
    if await ctx.storage.null_version(rec.container, rec.name) == rec.version_id:
        return "null"
    return rec.version_id


async def find(ctx: S3Request, bucket: CKey, key: str, vid: str) -> ObjectRecord | None:
    """Version ``vid`` (already ``parse_id``-ed) of ``key``: a version row (perhaps a
    delete marker) or, for ``null``, the unversioned current object or the version kept
    as null. None when there is no such version."""
    storage = ctx.storage
    if vid == "null":
        try:
            cur: ObjectRecord | None = await storage.head_object(bucket, key)
        except errors.ObjectNotFound:
            cur = None
        if cur is not None and cur.version_id is None:
            return cur
        nid = await storage.null_version(bucket, key)
        return await storage.get_version(bucket, key, nid) if nid else None
    return await storage.get_version(bucket, key, vid)


def is_marker(rec: ObjectRecord) -> bool:
    return rec.content_type == versions.DELETE_MARKER


def marker_not_allowed() -> S3Error:
    """A request for a delete marker's data (GET/HEAD ``?versionId=<marker>``): 405, as
    AWS, with the marker's headers (added by the caller)."""
    return S3Error(405, "MethodNotAllowed", "The specified method is not allowed against this resource.",
                   Method="GET", ResourceType="DeleteMarker")


async def record(ctx: S3Request, bucket: CKey, key: str) -> tuple[ObjectRecord, str | None]:
    """The object an object sub-resource request (ACL, tagging, retention, legal hold) is
    about: the version of ``?versionId=`` or the current object; with the S3 version id
    when one was asked for. NoSuchVersion / NoSuchKey; a delete marker → 405."""
    raw = ctx.query.get("versionId")
    if raw is None or raw == "":
        try:
            return await ctx.storage.head_object(bucket, key), None
        except errors.ObjectNotFound:
            raise no_such_key(key) from None
    vid = parse_id(raw)
    rec = await find(ctx, bucket, key, vid)
    if rec is None:
        raise no_such_version(key, raw)
    if is_marker(rec):
        raise marker_not_allowed()
    return rec, vid


async def update_sysmeta(ctx: S3Request, rec: ObjectRecord, sysmeta: dict[str, str]) -> None:
    """Store ``sysmeta`` as the system metadata of exactly that version (``rec`` from
    ``record``); a current object pointing at it follows. Not a new version: bytes and
    Last-Modified stay."""
    await ctx.storage.update_version_sysmeta(rec.container, rec.name, rec.version_id, lambda _r: sysmeta)
