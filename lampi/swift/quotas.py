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


QUOTA_TYPES = ("Quota-Bytes", "Quota-Count")


def policy_names(request: web.Request) -> list[str]:
    """The storage policies /info lists (account quotas may be set per policy)."""
    return request.app[STORAGE].policy_names()


def account_quota_updates(request: web.Request) -> dict[str, str | None]:
    """account_quotas on an account POST: ``X-Account-Quota-Bytes`` / ``-Count``, their
    ``-Policy-<name>`` forms and the legacy ``X-Account-Meta-Quota-Bytes`` (also kept as
    user metadata, as Swift does), each with its ``X-Remove-`` form. Only a reseller
    (the reseller admin role, lampi's cloud admin) may set or remove them: anyone else
    gets 403 (swob's default body); a value that is not a whole number is 400. Returns
    the account system-metadata updates (``sys:quota-bytes``, ``sys:quota-count-policy-
    <name>``, ...; None removes)."""
    h = request.headers
    wanted: dict[str, str | None] = {}  # sys key → new value ('' removes); None: not asked
    for qt in QUOTA_TYPES:
        new = h.get(f"X-Account-{qt}")
        remove = h.get(f"X-Remove-Account-{qt}")
        if qt == "Quota-Bytes":  # the legacy header stands in for a new one not given
            legacy = h.get("X-Account-Meta-Quota-Bytes")
            if legacy is not None and not new:
                new = legacy
            legacy_rm = h.get("X-Remove-Account-Meta-Quota-Bytes")
            if legacy_rm is not None and not remove:
                remove = legacy_rm
        wanted[f"sys:{qt.lower()}"] = "" if remove else new  # X-Remove dominates, as in Swift
        for policy in policy_names(request):
            tail = f"Account-{qt}-Policy-{policy}"
            value = "" if h.get("X-Remove-" + tail) else h.get("X-" + tail)
            wanted[f"sys:{qt.lower()}-policy-{policy.lower()}"] = value
    asked = {k: v for k, v in wanted.items() if v is not None}
    principal = request.get(PRINCIPAL)
    if principal is None or not principal.is_reseller:
        if asked:
            raise errors.Forbidden()
        return {}
    if any(v and uint(v) is None for v in asked.values()):
        raise errors.InvalidArgument("Invalid quota value.")
    return {k: (v or None) for k, v in asked.items()}


def account_quota_headers(request: web.Request, meta: dict[str, str]) -> dict[str, str]:
    """The account quotas as account HEAD/GET show them (to anyone who may read the
    account: non-resellers cannot change them, but see them)."""
    out: dict[str, str] = {}
    for qt in QUOTA_TYPES:
        if meta.get(f"sys:{qt.lower()}"):
            out[f"X-Account-{qt}"] = meta[f"sys:{qt.lower()}"]
        for policy in policy_names(request):
            value = meta.get(f"sys:{qt.lower()}-policy-{policy.lower()}")
            if value:
                out[f"X-Account-{qt}-Policy-{policy}"] = value
    return out


async def check_container_create(request: web.Request, project_id: str, name: str) -> None:
    """Per-project container limit, checked before a new container is made."""
    storage = request.app[STORAGE]
    if await storage.lookup(project_id, name) is not None:
        return  # an existing container: PUT only updates it (or is refused as taken)
    await core_quotas.check_container_limit(storage.meta, defaults(request), project_id)


async def check_upload(request: web.Request, project_id: str, container: CKey, nbytes: int | None) -> int | None:
    """Before an object write of ``nbytes`` (None: chunked): 413 "Upload exceeds quota."
    if it would pass a quota. Returns the bytes still allowed (None: unlimited)."""
    storage = request.app[STORAGE]
    c = await storage.by_key(container)
    policy_usage = None
    # per-policy account quotas count the usage of the container's policy: summed over
    # the project's containers only when the account has one (the record is the one
    # check_quota reads: remembered for the request, lampi.store.meta.memo)
    if c is not None and any(k.startswith(("sys:quota-bytes-policy-", "sys:quota-count-policy-"))
                             for k in (await storage.account(project_id)).meta):
        name = storage.policy_name(c.policy)
        _, objects_, bytes_ = (await storage.policy_stats(project_id)).get(name, (0, 0, 0))
        policy_usage = (name, objects_, bytes_)
    return await core_quotas.check_quota(
        storage.meta, defaults(request), project_id, container, nbytes, policy_usage=policy_usage
    )


def limit(body: AsyncIterable[bytes], remaining: int | None) -> AsyncIterator[bytes] | AsyncIterable[bytes]:
    return body if remaining is None else core_quotas.limit_body(body, remaining)
