"""Object tagging: ``x-amz-tagging`` on PutObject/CopyObject, Get/Put/DeleteObjectTagging.

Tags live in the object's system metadata under ``s3-tagging`` as a URL-encoded
query string (the ``x-amz-tagging`` form), in the order given. Setting or removing
tags changes neither the object's bytes nor its Last-Modified, as in S3.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

from lampi.s3 import body as s3body
from lampi.s3 import versioning
from lampi.s3.errors import S3Error, malformed_xml
from lampi.s3.request import S3Request
from lampi.s3.xml import XMLError, child_text, element, parse, xml_doc, xml_response

SYSMETA_KEY = "s3-tagging"
MAX_TAGS = 10
MAX_KEY_LEN = 128
MAX_VALUE_LEN = 256
MAX_TAGGING_BODY = 64 * 1024
# S3: letters, digits and spaces representable in UTF-8, and + - = . _ : / @
_ALLOWED = re.compile(r"^[\w\s+\-=.:/@]*$")

Tags = list[tuple[str, str]]


def _invalid(message: str) -> S3Error:
    return S3Error(400, "InvalidTag", message)


def validate(tags: Tags, max_tags: int = MAX_TAGS) -> Tags:
    """Tags checked as S3 checks them, returned sorted by key."""
    if len(tags) > max_tags:  # InvalidTag, as RGW (Allas) answers
        raise _invalid(f"Object tags cannot be greater than {max_tags}")
    seen = set()
    for k, v in tags:
        if not k:
            raise _invalid("The TagKey you have provided is invalid")
        if len(k) > MAX_KEY_LEN:
            raise _invalid("The TagKey you have provided is too long, max 128")
        if len(v) > MAX_VALUE_LEN:
            raise _invalid("The TagValue you have provided is too long, max 256")
        if not _ALLOWED.match(k):
            raise _invalid("The TagKey you have provided is invalid")
        if not _ALLOWED.match(v):
            raise _invalid("The TagValue you have provided is invalid")
        if k.lower().startswith("aws:"):
            raise _invalid("Your TagKey cannot be prefixed with aws:")
        if k in seen:
            raise _invalid("Cannot provide multiple Tags with the same key")
        seen.add(k)
    return sorted(tags)  # kept and listed by key, as RGW (Allas) keeps them


def from_header(value: str) -> Tags:
    """``x-amz-tagging: k1=v1&k2=v2`` (URL query encoding); a key without ``=`` has an empty
    value."""
    try:
        pairs = parse_qsl(value, keep_blank_values=True, errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise _invalid("The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query "
                       "parameters without tag name duplicates.") from None
    return validate(pairs)


def encode(tags: Tags) -> str:
    return urlencode(tags)


def stored(sysmeta: dict[str, str]) -> Tags:
    raw = sysmeta.get(SYSMETA_KEY)
    return parse_qsl(raw, keep_blank_values=True) if raw else []


def apply(sysmeta: dict[str, str], tags: Tags) -> dict[str, str]:
    out = {k: v for k, v in sysmeta.items() if k != SYSMETA_KEY}
    if tags:
        out[SYSMETA_KEY] = encode(tags)
    return out


def count_header(sysmeta: dict[str, str]) -> dict[str, str]:
    n = len(stored(sysmeta))
    return {"x-amz-tagging-count": str(n)} if n else {}


def from_xml(raw: bytes, max_tags: int = MAX_TAGS) -> Tags:
    try:
        root = parse(raw, "Tagging")
    except XMLError:
        raise malformed_xml() from None
    tagset = root.find("TagSet")
    if tagset is None:
        raise malformed_xml()
    tags = []
    for tag in tagset.findall("Tag"):
        k, v = child_text(tag, "Key"), child_text(tag, "Value")
        if k is None or v is None:
            raise malformed_xml()
        tags.append((k, v))
    if len(tagset) != len(tags):
        raise malformed_xml()  # something other than <Tag> inside <TagSet>
    return validate(tags, max_tags)


async def _record(ctx: S3Request, write: bool):  # noqa: ANN202
    """The object (the version of ``?versionId=``, lampi/s3/versioning.py) tagged."""
    await ctx.get_bucket(write=write)
    rec, _vid = await versioning.record(ctx, ctx.ckey, ctx.key)
    return rec


async def get_object_tagging(ctx: S3Request) -> web.StreamResponse:
    rec = await _record(ctx, write=False)
    tags = [element("Tag", [element("Key", k), element("Value", v)]) for k, v in stored(rec.sysmeta)]
    return xml_response(ctx, xml_doc("Tagging", [element("TagSet", tags)]))


async def _set(ctx: S3Request, tags: Tags) -> None:
    rec = await _record(ctx, write=True)
    await versioning.update_sysmeta(ctx, rec, apply(rec.sysmeta, tags))


async def put_object_tagging(ctx: S3Request) -> web.StreamResponse:
    await _record(ctx, write=True)  # NoSuchKey / AccessDenied before reading the body
    tags = from_xml(await s3body.read_small(ctx.request, ctx.auth, MAX_TAGGING_BODY))
    await _set(ctx, tags)
    return web.Response(status=200)


async def delete_object_tagging(ctx: S3Request) -> web.StreamResponse:
    await _set(ctx, [])
    return web.Response(status=204)
