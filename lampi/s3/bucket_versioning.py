"""Get/PutBucketVersioning: a bucket's versioning is its container's
``X-Versions-Enabled`` (lampi.s3.versioning has the version ids of object requests)."""

from __future__ import annotations

from aiohttp import web

from lampi.core import objectlock, versions
from lampi.core.models import Container
from lampi.s3 import body as s3body
from lampi.s3 import policy as s3policy
from lampi.s3.bucket import MAX_CONFIG_BODY
from lampi.s3.errors import S3Error, malformed_xml
from lampi.s3.request import S3Request
from lampi.s3.versioning import ENABLED, SUSPENDED, state
from lampi.s3.xml import XMLError, child_text, element, parse, xml_doc, xml_response


async def get_bucket_versioning(ctx: S3Request) -> web.StreamResponse:
    c = await ctx.get_bucket(write=False)
    st = state(c.meta)
    kids = [element("Status", st)] if st else []
    if st:
        kids.append(element("MfaDelete", "Disabled"))
    return xml_response(ctx, xml_doc("VersioningConfiguration", kids))


def _parse(raw: bytes) -> str:
    try:
        root = parse(raw, "VersioningConfiguration")
    except XMLError:
        raise malformed_xml() from None
    status = child_text(root, "Status")
    mfa = child_text(root, "MfaDelete")
    if status is not None:
        status = status.strip()
    if mfa is not None and mfa.strip() not in ("Enabled", "Disabled"):
        raise malformed_xml()
    if mfa is not None and mfa.strip() == "Enabled":
        raise S3Error(501, "NotImplemented", "MFA delete is not supported by this server.")
    if status not in (ENABLED, SUSPENDED):
        raise malformed_xml()
    return status


async def put_bucket_versioning(ctx: S3Request) -> web.StreamResponse:
    c = await s3policy.owned_bucket(ctx, write=True)
    status = _parse(await s3body.read_small(ctx.request, ctx.auth, MAX_CONFIG_BODY))
    await set_state(ctx, c, status)
    return web.Response(status=200)


async def set_state(ctx: S3Request, c: Container, status: str) -> None:
    """Turn versioning on (Enabled) or off (Suspended) as Swift's X-Versions-Enabled does."""
    if status == SUSPENDED and objectlock.enabled(c.meta):
        raise S3Error(409, "InvalidBucketState", "An Object Lock configuration is present on this bucket, so the "
                      "versioning state cannot be changed.")
    if c.meta.get("sys:x-versions-location") or c.meta.get("sys:x-history-location"):
        # Swift's legacy versioned writes (X-Versions-Location) and object versioning exclude each other
        raise S3Error(409, "InvalidBucketState", "The bucket uses Swift's legacy versioned writes "
                      "(X-Versions-Location / X-History-Location); remove them first.")
    await ctx.storage.update_container_meta(c.key, {
        versions.ENABLED_KEY: "True" if status == ENABLED else "False", versions.VERSIONED_KEY: "1"})
