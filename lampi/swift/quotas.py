"""Swift's ``container_quotas`` and ``account_quotas`` at the API edge.

The checks themselves are protocol-neutral (``lampi.core.quotas``); here are the
header rules of the two middlewares and the hooks the Swift handlers call.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

from aiohttp import web
from multidict import CIMultiDictProxy

from lampi.core import errors
from lampi.core import quotas as core_quotas
from lampi.core.models import CKey
from lampi.core.numbers import uint
from lampi.http.context import PRINCIPAL, SETTINGS, STORAGE


def defaults(request: web.Request) -> core_quotas.QuotaDefaults:
    return core_quotas.QuotaDefaults.from_settings(request.app[SETTINGS])


def check_container_headers(headers: CIMultiDictProxy[str]) -> None:
    """container_quotas: quota values on container PUT/POST must be whole numbers."""
    val = headers.get("X-Container-Meta-Quota-Bytes")
    if val and uint(val) is None:
        raise errors.InvalidArgument("Invalid bytes quota.")
    val = headers.get("X-Container-Meta-Quota-Count")
    if val and uint(val) is None:
        raise errors.InvalidArgument("Invalid count quota.")


def check_account_headers(request: web.Request) -> None:
    """account_quotas: only a reseller (lampi's cloud admin) may set or remove
    ``X-Account-Meta-Quota-Bytes``; anyone else gets 403 (swob's default body)."""
    h = request.headers
    new = h.get("X-Account-Meta-Quota-Bytes")
    if h.get("X-Remove-Account-Meta-Quota-Bytes"):
        new = "0"  # X-Remove dominates, as in Swift
    principal = request.get(PRINCIPAL)
    if principal is not None and principal.is_cloud_admin:
        if new and uint(new) is None:
            raise errors.InvalidArgument("Invalid quota value.")
        return
    if new is not None:
        raise errors.Forbidden()


async def check_container_create(request: web.Request, project_id: str, name: str) -> None:
    """Per-project container limit, checked before a new container is made."""
    storage = request.app[STORAGE]
    if await storage.lookup(project_id, name) is not None:
        return  # an existing container: PUT only updates it (or is refused as taken)
    await core_quotas.check_container_limit(storage.meta, defaults(request), project_id)


async def check_upload(request: web.Request, project_id: str, container: CKey, nbytes: int | None) -> int | None:
    """Before an object write of ``nbytes`` (None: chunked): 413 "Upload exceeds quota."
    if it would pass a quota. Returns the bytes still allowed (None: unlimited)."""
    return await core_quotas.check_quota(
        request.app[STORAGE].meta, defaults(request), project_id, container, nbytes
    )


def limit(body: AsyncIterable[bytes], remaining: int | None) -> AsyncIterator[bytes] | AsyncIterable[bytes]:
    return body if remaining is None else core_quotas.limit_body(body, remaining)
