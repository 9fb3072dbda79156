"""Quotas, protocol-neutral: every write path (Swift PUT, copy, SLO, extract-archive,
S3 uploads) asks here before accepting bytes.

Three layers apply at once, each as the product it models:

- container quotas (Swift's ``container_quotas``): the container's metadata
  ``quota-bytes`` / ``quota-count`` (``X-Container-Meta-Quota-Bytes`` / ``-Count``),
  set by anyone who may write the container;
- the account quotas (Swift's ``account_quotas``): account system metadata
  ``sys:quota-bytes`` / ``sys:quota-count`` and their ``-policy-<name>`` forms
  (``X-Account-Quota-Bytes``, ``-Count``, ``-Bytes-Policy-<name>``, ...), else the
  legacy metadata ``quota-bytes`` (``X-Account-Meta-Quota-Bytes``); set by resellers only;
- per-project limits modelled on Allas (10 TiB, 1,000 containers, 500,000 objects per
  container): the settings' defaults, overridden per project by
  ``lampi project set-quota`` (``MetaStore.set_project_quota``). 0 means unlimited.

As Swift's middlewares do, a check compares the current usage plus the incoming size
(and one more object) with the limit: an overwrite is counted as a new object. When
the size is not known up front (chunked transfer), ``check_quota`` returns how many
bytes may still come and ``limit_body`` stops the upload there.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Any

from lampi.core import errors
from lampi.core.numbers import uint
from lampi.core.models import CKey
from lampi.store.meta.base import MetaStore


@dataclass(frozen=True, slots=True)
class QuotaDefaults:
    bytes: int = 10 * 1024**4
    containers: int = 1000
    objects_per_container: int = 500_000

    @classmethod
    def from_settings(cls, settings: Any) -> QuotaDefaults:
        return cls(settings.quota_bytes, settings.quota_containers, settings.quota_objects_per_container)


@dataclass(frozen=True, slots=True)
class ProjectLimits:
    bytes: int  # 0 = unlimited
    containers: int
    objects_per_container: int


async def project_limits(meta: MetaStore, defaults: QuotaDefaults, project_id: str) -> ProjectLimits:
    over = await meta.get_project_quota(project_id)

    def pick(key: str, default: int) -> int:
        v = over.get(key)
        return default if v is None else int(v)

    return ProjectLimits(
        pick("bytes", defaults.bytes),
        pick("containers", defaults.containers),
        pick("objects_per_container", defaults.objects_per_container),
    )


QUOTA_KEYS = ("bytes", "containers", "objects_per_container")


def parse_quota_value(text: str | None) -> tuple[bool, int | None]:
    """A project quota as an administrator gives it (``lampi project set-quota``, the
    console's admin pages): (given, value): a whole number of bytes/items, ``0`` or
    ``unlimited`` (no limit: 0), ``default`` (None: the server's setting again); None or
    an empty text: not given. ValueError for anything else."""
    if text is None or not text.strip():
        return False, None
    t = text.strip().lower()
    if t == "default":
        return True, None
    if t == "unlimited":
        return True, 0
    if not t.isdigit() or len(t) > 20:
        raise ValueError(f"{text!r}: expected a whole number, 'unlimited' or 'default'")
    return True, int(t)


async def set_project_quotas(meta: MetaStore, defaults: QuotaDefaults, project_id: str,
                             updates: dict[str, int | None]) -> dict[str, Any]:
    """Apply ``updates`` (keys of QUOTA_KEYS; None: back to the default) to the
    project's quotas, then its limits and usage as they now are."""
    if updates:
        await meta.set_project_quota(project_id, updates)
    lim = await project_limits(meta, defaults, project_id)
    acct = await meta.get_account(project_id)
    return {"project_id": project_id, "bytes": lim.bytes, "containers": lim.containers,
            "objects_per_container": lim.objects_per_container, "bytes_used": acct.bytes_used,
            "container_count": acct.container_count}


def _meta_int(meta: dict[str, str], key: str) -> int | None:
    """A quota from metadata: only an all-digit value counts (as Swift's isdigit())."""
    v = meta.get(key)
    return None if v is None else uint(v)


async def check_quota(
    meta: MetaStore,
    defaults: QuotaDefaults,
    project_id: str,
    container: CKey,
    add_bytes: int | None,
    add_objects: int = 1,
    with_parts: bool = False,
    policy_usage: tuple[str, int, int] | None = None,
) -> int | None:
    """Raise ``QuotaExceeded`` if writing ``add_bytes`` (None: not known yet) and
    ``add_objects`` objects into ``container`` of ``project_id`` would pass a quota.

    ``with_parts`` (S3 UploadPart): the parts of multipart uploads still in progress
    count as used too, so parts uploaded and never completed cannot pass a quota.

    ``policy_usage``: (name, objects, bytes) of the container's storage policy in the
    project: a per-policy account quota (``-policy-<name>``) counts that policy's usage
    and applies to containers of that policy only. Without it (a caller that does not
    know the policy) each per-policy quota counts the whole account's usage.

    Returns the number of bytes that may still be written under the tightest byte
    quota (None: unlimited), for streams of unknown length (see ``limit_body``).
    """
    nbytes = add_bytes or 0
    c = await meta.get_container(container)
    acct = await meta.get_account(project_id)
    limits = await project_limits(meta, defaults, project_id)
    in_container, in_project = await meta.pending_part_bytes(project_id, container) if with_parts else (0, 0)
    remaining: list[int] = []
    if c is not None:
        qb = _meta_int(c.meta, "quota-bytes")
        if qb is not None:
            remaining.append(qb - c.bytes_used - in_container)
        qc = _meta_int(c.meta, "quota-count")
        if qc is not None and c.object_count + add_objects > qc:
            raise errors.QuotaExceeded()
        if limits.objects_per_container and c.object_count + add_objects > limits.objects_per_container:
            raise errors.QuotaExceeded()
    # account_quotas: the system quotas (X-Account-Quota-Bytes/-Count, set by resellers),
    # else the legacy metadata one; a per-policy quota applies to containers of that
    # policy, counting the account's usage in it (Swift's per-policy account stats)
    def usage(suffix: str) -> tuple[int, int] | None:
        """(objects, bytes) a quota of this suffix counts; None: not this container's policy."""
        if not suffix or policy_usage is None:
            return acct.object_count, acct.bytes_used
        name, objects_, bytes_ = policy_usage
        return (objects_, bytes_) if suffix == "-policy-" + name.lower() else None

    for suffix in ("", *(k[len("sys:quota-bytes"):] for k in acct.meta if k.startswith("sys:quota-bytes-policy-"))):
        ab = _meta_int(acct.meta, "sys:quota-bytes" + suffix)
        if ab is None and not suffix:
            ab = _meta_int(acct.meta, "quota-bytes")
        used = usage(suffix)
        if ab is not None and used is not None:
            remaining.append(ab - used[1] - in_project)
    for suffix in ("", *(k[len("sys:quota-count"):] for k in acct.meta if k.startswith("sys:quota-count-policy-"))):
        ac = _meta_int(acct.meta, "sys:quota-count" + suffix)
        used = usage(suffix)
        if ac is not None and used is not None and used[0] + add_objects > ac:
            raise errors.QuotaExceeded()
    if limits.bytes:
        remaining.append(limits.bytes - acct.bytes_used - in_project)
    if not remaining:
        return None
    left = min(remaining)
    if nbytes > left or left < 0:
        raise errors.QuotaExceeded()
    return left


async def check_container_limit(meta: MetaStore, defaults: QuotaDefaults, project_id: str) -> None:
    """Raise ``TooManyContainers`` when the project may not create another container."""
    limits = await project_limits(meta, defaults, project_id)
    if not limits.containers:
        return
    acct = await meta.get_account(project_id)
    if acct.container_count >= limits.containers:
        raise errors.TooManyContainers(f"Reached container limit of {limits.containers}")


async def limit_body(body: AsyncIterable[bytes], remaining: int | None) -> AsyncIterator[bytes]:
    """Pass ``body`` through, raising ``QuotaExceeded`` as soon as more than
    ``remaining`` bytes came (chunked uploads, whose size is not known up front)."""
    seen = 0
    async for chunk in body:
        seen += len(chunk)
        if remaining is not None and seen > remaining:
            raise errors.QuotaExceeded()
        yield chunk
