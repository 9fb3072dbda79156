"""S3 object lock: Put/GetObjectLockConfiguration, Put/GetObjectRetention,
Put/GetObjectLegalHold, and the ``x-amz-object-lock-*`` headers of PutObject, CopyObject
and CreateMultipartUpload.

What a lock stores and forbids is protocol-neutral (lampi/core/objectlock.py): the
MetaStore refuses, for S3 and Swift alike, to delete or overwrite a version whose
retention runs or whose legal hold is ON. Here are S3's shapes and rules, as AWS and
Ceph RGW answer:

- object lock is enabled at CreateBucket (``x-amz-bucket-object-lock-enabled: true``,
  which also enables versioning) or by PutObjectLockConfiguration on a bucket whose
  versioning is Enabled; else 409 ``InvalidBucketState``. It cannot be turned off, and
  versioning then cannot be suspended (409 ``InvalidBucketState``; Swift's
  ``X-Versions-Enabled: false`` is refused as well);
- a retention may be lengthened by anyone who may write the object; shortened, removed
  or changed from GOVERNANCE to COMPLIANCE only with ``x-amz-bypass-governance-retention:
  true`` by the bucket's owner; a COMPLIANCE retention never (403 ``AccessDenied``);
- the configuration, retention and legal-hold bodies must come with ``Content-MD5`` or an
  ``x-amz-checksum-*`` (as AWS requires), verified like any body.
"""

from __future__ import annotations

import time

from aiohttp import web

from lampi.core import errors
from lampi.core import objectlock as lock
from lampi.core import versions
from lampi.core.models import Container, ObjectRecord
from lampi.s3 import body as s3body
from lampi.s3 import policy as s3policy
from lampi.s3 import versioning
from lampi.s3.errors import S3Error, access_denied, invalid_argument, invalid_request, malformed_xml
from lampi.s3.request import S3Request
from lampi.s3.xml import XMLError, child_text, element, parse, xml_doc, xml_response

MAX_BODY = 64 * 1024
BYPASS_HEADER = "x-amz-bypass-governance-retention"


def _missing_config() -> S3Error:
    return invalid_request("Bucket is missing Object Lock Configuration")


def _require_integrity(ctx: S3Request) -> None:
    """AWS requires Content-MD5 (or a flexible checksum) on these bodies."""
    h = ctx.request.headers
    if "Content-MD5" in h or any(k.lower().startswith("x-amz-checksum-") for k in h) or \
            h.get("x-amz-trailer", "").lower().startswith("x-amz-checksum-"):
        return
    raise invalid_request("Missing required header for this request: Content-MD5")


async def bypass(ctx: S3Request, c: Container, key: str) -> bool:
    """Whether the request asks to bypass GOVERNANCE retention of object ``key`` and may:
    the bucket policy's word on s3:BypassGovernanceRetention first (a Deny refuses it to
    the owner too, an Allow grants it to others), else the bucket's owners with write
    rights."""
    if ctx.request.headers.get(BYPASS_HEADER, "").strip().lower() != "true":
        return False
    p = ctx.principal
    if p.is_reseller:  # the cloud admin, the ResellerAdmin role (every account, as Swift)
        return True
    verdict = await s3policy.verdict(ctx, c, "s3:BypassGovernanceRetention", key)
    if verdict is not None:
        return verdict == "Allow"
    return bool(p.project_id) and p.project_id == c.project_id and p.can_write


# -- bucket configuration ------------------------------------------------------------------


async def get_config(ctx: S3Request) -> web.StreamResponse:
    c = await s3policy.owned_bucket(ctx, write=False)
    cfg = lock.config(c.meta)
    if cfg is None:
        raise S3Error(404, "ObjectLockConfigurationNotFoundError", "Object Lock configuration does not exist for "
                      "this bucket", BucketName=ctx.bucket)
    kids = [element("ObjectLockEnabled", "Enabled")]
    if cfg.get("mode"):
        unit = "Days" if cfg.get("days") is not None else "Years"
        kids.append(element("Rule", [element("DefaultRetention", [
            element("Mode", str(cfg["mode"])), element(unit, str(cfg.get(unit.lower())))])]))
    return xml_response(ctx, xml_doc("ObjectLockConfiguration", kids))


def _period(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        n = int(text.strip())
    except ValueError:
        raise malformed_xml() from None
    if n <= 0:
        raise S3Error(400, "InvalidRetentionPeriod", "Default retention period must be a positive integer value.")
    return n


def parse_config(raw: bytes) -> str:
    """The container metadata value of an ObjectLockConfiguration body."""
    try:
        root = parse(raw, "ObjectLockConfiguration")
    except XMLError:
        raise malformed_xml() from None
    if (child_text(root, "ObjectLockEnabled") or "").strip() != "Enabled":
        raise malformed_xml()
    rule = root.find("Rule")
    if rule is None:
        return lock.encode_config()
    dr = rule.find("DefaultRetention")
    if dr is None:
        raise malformed_xml()
    mode = (child_text(dr, "Mode") or "").strip()
    if mode not in lock.MODES:
        raise malformed_xml()
    days, years = dr.find("Days"), dr.find("Years")
    if (days is None) == (years is None):  # exactly one of them
        raise malformed_xml()
    d, y = _period(child_text(dr, "Days")), _period(child_text(dr, "Years"))
    if (d or 0) > 36500 or (y or 0) > 100:
        raise S3Error(400, "InvalidRetentionPeriod", "Default retention period is too large.")
    return lock.encode_config(mode, d, y)


async def put_config(ctx: S3Request) -> web.StreamResponse:
    c = await s3policy.owned_bucket(ctx, write=True)
    _require_integrity(ctx)
    value = parse_config(await s3body.read_small(ctx.request, ctx.auth, MAX_BODY))
    if not lock.enabled(c.meta) and versioning.state(c.meta) != versioning.ENABLED:
        raise S3Error(409, "InvalidBucketState", "Versioning must be 'Enabled' on the bucket to apply a Object "
                      "Lock configuration", BucketName=ctx.bucket)
    await ctx.storage.update_container_meta(c.key, {lock.CONFIG_KEY: value})
    return web.Response(status=200)


def create_bucket_meta(ctx: S3Request) -> dict[str, str]:
    """CreateBucket's ``x-amz-bucket-object-lock-enabled: true``: lock and versioning on."""
    value = ctx.request.headers.get("x-amz-bucket-object-lock-enabled")
    if value is None or value.strip().lower() != "true":
        return {}
    return {lock.CONFIG_KEY: lock.encode_config(), versions.ENABLED_KEY: "True", versions.VERSIONED_KEY: "1"}


# -- PutObject / CopyObject / CreateMultipartUpload headers --------------------------------


def request_sysmeta(ctx: S3Request, c: Container) -> dict[str, str]:
    """The lock a write asks for with ``x-amz-object-lock-mode`` + ``-retain-until-date``
    and ``x-amz-object-lock-legal-hold``, as sysmeta; 400 before any byte is read when the
    bucket has no object lock or a value is bad."""
    h = ctx.request.headers
    mode = h.get("x-amz-object-lock-mode")
    until = h.get("x-amz-object-lock-retain-until-date")
    hold = h.get("x-amz-object-lock-legal-hold")
    if mode is None and until is None and hold is None:
        return {}
    if not lock.enabled(c.meta):
        raise invalid_request("Bucket is missing ObjectLockConfiguration")
    out: dict[str, str] = {}
    if mode is not None or until is not None:
        if mode is None or until is None:
            raise invalid_argument("x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be "
                                   "supplied")
        if mode.strip() not in lock.MODES:
            raise invalid_argument("Unknown wormMode directive.", "x-amz-object-lock-mode", mode)
        ts = lock.parse_date(until)
        if ts is None:
            raise invalid_argument("The retain until date must be provided in ISO 8601 format",
                                   "x-amz-object-lock-retain-until-date", until)
        if ts <= time.time():
            raise invalid_argument("The retain until date must be in the future!",
                                   "x-amz-object-lock-retain-until-date", until)
        out.update(lock.retention(mode.strip(), ts))
    if hold is not None:
        if hold.strip() not in ("ON", "OFF"):
            raise invalid_argument("Legal Hold must be either of 'ON' or 'OFF'", "x-amz-object-lock-legal-hold", hold)
        out[lock.HOLD_KEY] = hold.strip()
    return out


def response_headers(rec: ObjectRecord) -> dict[str, str]:
    """GetObject/HeadObject: the version's retention and legal hold."""
    h = {}
    s = rec.sysmeta
    if s.get(lock.MODE_KEY) and s.get(lock.UNTIL_KEY):
        h["x-amz-object-lock-mode"] = s[lock.MODE_KEY]
        h["x-amz-object-lock-retain-until-date"] = s[lock.UNTIL_KEY]
    if s.get(lock.HOLD_KEY):
        h["x-amz-object-lock-legal-hold"] = s[lock.HOLD_KEY]
    return h


def strip(sysmeta: dict[str, str]) -> dict[str, str]:
    """A copy's sysmeta without its source's lock (a copy gets the request's or the
    destination's default, as S3)."""
    return {k: v for k, v in sysmeta.items() if k not in lock.KEYS}


# -- retention and legal hold ----------------------------------------------------------------


async def _target(ctx: S3Request, write: bool) -> tuple[Container, ObjectRecord]:
    c = await ctx.get_bucket(write=write)
    if not lock.enabled(c.meta):
        raise _missing_config()
    rec, _vid = await versioning.record(ctx, c.key, ctx.key)
    return c, rec


def _no_lock_config() -> S3Error:
    return S3Error(404, "NoSuchObjectLockConfiguration", "The specified object does not have a ObjectLock "
                   "configuration")


async def get_retention(ctx: S3Request) -> web.StreamResponse:
    _c, rec = await _target(ctx, write=False)
    mode, until = rec.sysmeta.get(lock.MODE_KEY), rec.sysmeta.get(lock.UNTIL_KEY)
    if not mode or not until:
        raise _no_lock_config()
    return xml_response(ctx, xml_doc("Retention", [element("Mode", mode), element("RetainUntilDate", until)]))


def _parse_retention(raw: bytes) -> tuple[str | None, float | None]:
    try:
        root = parse(raw, "Retention")
    except XMLError:
        raise malformed_xml() from None
    mode, until = child_text(root, "Mode"), child_text(root, "RetainUntilDate")
    if mode is None and until is None:
        return None, None  # no retention any more
    if mode is None or until is None or mode.strip() not in lock.MODES:
        raise malformed_xml()
    ts = lock.parse_date(until)
    if ts is None:
        raise malformed_xml()
    if ts <= time.time():
        raise invalid_argument("The retain until date must be in the future!")
    return mode.strip(), ts


async def put_retention(ctx: S3Request) -> web.StreamResponse:
    c, rec = await _target(ctx, write=True)
    _require_integrity(ctx)
    mode, ts = _parse_retention(await s3body.read_small(ctx.request, ctx.auth, MAX_BODY))
    may_bypass = await bypass(ctx, c, rec.name)
    new_until = lock.iso(ts) if ts is not None else None

    def change(r: ObjectRecord) -> dict[str, str]:
        old_mode, old_until = r.sysmeta.get(lock.MODE_KEY), r.sysmeta.get(lock.UNTIL_KEY)
        if old_mode and old_until and old_until > lock.iso(time.time()):
            weaker = mode != old_mode or new_until is None or new_until < old_until
            if weaker and (old_mode == "COMPLIANCE" or not may_bypass):
                raise errors.ObjectLocked("the retention may only be lengthened")
        out = {k: v for k, v in r.sysmeta.items() if k not in (lock.MODE_KEY, lock.UNTIL_KEY)}
        if mode is not None and ts is not None:
            out.update(lock.retention(mode, ts))
        return out

    try:
        await ctx.storage.update_version_sysmeta(rec.container, rec.name, rec.version_id, change)
    except errors.ObjectLocked:
        raise access_denied() from None
    return web.Response(status=200)


async def get_legal_hold(ctx: S3Request) -> web.StreamResponse:
    _c, rec = await _target(ctx, write=False)
    status = rec.sysmeta.get(lock.HOLD_KEY)
    if not status:
        raise _no_lock_config()
    return xml_response(ctx, xml_doc("LegalHold", [element("Status", status)]))


async def put_legal_hold(ctx: S3Request) -> web.StreamResponse:
    _c, rec = await _target(ctx, write=True)
    _require_integrity(ctx)
    raw = await s3body.read_small(ctx.request, ctx.auth, MAX_BODY)
    try:
        status = (child_text(parse(raw, "LegalHold"), "Status") or "").strip()
    except XMLError:
        raise malformed_xml() from None
    if status not in ("ON", "OFF"):
        raise malformed_xml()
    await ctx.storage.update_version_sysmeta(rec.container, rec.name, rec.version_id,
                                             lambda r: {**r.sysmeta, lock.HOLD_KEY: status})
    return web.Response(status=200)
