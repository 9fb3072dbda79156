"""Bucket tagging: Get/Put/DeleteBucketTagging, kept as JSON in the container's
metadata (``lampi.s3.subconfig``), for the bucket's owner only, as S3 and RGW do.
A bucket carries up to 50 tags, checked as object tags are (``lampi.s3.tagging``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from lampi.s3 import subconfig, tagging
from lampi.s3.request import S3Request
from lampi.s3.xml import element, xml_doc

TAGGING_KEY = "sys:s3-tagging"
MAX_BUCKET_TAGS = 50


def _stored(meta: dict[str, str]) -> list[Any] | None:
    tags = subconfig.stored(meta, TAGGING_KEY)
    return tags or None


def _render(tags: list[Any]) -> bytes:
    return xml_doc("Tagging", [element("TagSet", [
        element("Tag", [element("Key", k), element("Value", v)]) for k, v in tags])])


def _parse(raw: bytes) -> list[list[str]]:
    return [[k, v] for k, v in tagging.from_xml(raw, MAX_BUCKET_TAGS)]


async def get_bucket_tagging(ctx: S3Request) -> web.StreamResponse:
    return await subconfig.get(ctx, _stored, _render, "NoSuchTagSet", "The TagSet does not exist")


async def put_bucket_tagging(ctx: S3Request) -> web.StreamResponse:
    return await subconfig.put(ctx, TAGGING_KEY, _parse, tagging.MAX_TAGGING_BODY)


async def delete_bucket_tagging(ctx: S3Request) -> web.StreamResponse:
    return await subconfig.delete(ctx, TAGGING_KEY)
