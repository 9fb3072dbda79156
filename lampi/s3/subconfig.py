"""Bucket sub-configurations kept as JSON in the container's metadata.

Get/Put/Delete of bucket CORS (``lampi.s3.cors``) and lifecycle
(``lampi.s3.lifecycle``) differ only in the metadata key, the parser, the renderer
and the "no such configuration" error; the handlers share this one implementation.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from lampi.s3 import body as s3body
from lampi.s3 import policy as s3policy
from lampi.s3.errors import S3Error
from lampi.s3.request import S3Request
from lampi.s3.xml import xml_response


def stored(meta: dict[str, str], key: str) -> list[Any] | None:
    """The rule list stored under ``key`` in container metadata; None when absent or unreadable."""
    raw = meta.get(key)
    if not raw:
        return None
    try:
        rules = json.loads(raw)
    except ValueError:
        return None
    return rules if isinstance(rules, list) else None


async def get(
    ctx: S3Request,
    rules_of: Callable[[dict[str, str]], Any],
    render: Callable[[Any], bytes],
    missing_code: str,
    missing_message: str,
) -> web.StreamResponse:
    c = await s3policy.owned_bucket(ctx, write=False)
    rules = rules_of(c.meta)
    if rules is None:
        raise S3Error(404, missing_code, missing_message, BucketName=ctx.bucket)
    return xml_response(ctx, render(rules))


async def put(ctx: S3Request, key: str, parse: Callable[[bytes], Any], max_body: int) -> web.StreamResponse:
    c = await s3policy.owned_bucket(ctx, write=True)
    rules = parse(await s3body.read_small(ctx.request, ctx.auth, max_body))
    await ctx.storage.update_container_meta(c.key, {key: json.dumps(rules, separators=(",", ":"))})
    return web.Response(status=200)


async def delete(ctx: S3Request, key: str) -> web.StreamResponse:
    c = await s3policy.owned_bucket(ctx, write=True)
    await ctx.storage.update_container_meta(c.key, {key: None})
    return web.Response(status=204)
