"""The S3 lifecycle pass: applies buckets' lifecycle rules (``lampi.s3.lifecycle``).

Started like the object expirer, every ``expirer_interval`` seconds (jittered), by
the worker holding the ``s3-lifecycle`` lease (lampi.bg.periodic). Each pass reads the buckets that have a lifecycle configuration, lists the
objects under each enabled rule's prefix and deletes those past their expiry (after
re-reading the object, and only if it is still that version when the delete commits,
so one replaced since is left alone); incomplete
multipart uploads older than AbortIncompleteMultipartUpload's DaysAfterInitiation are
aborted. A pass that overlaps another (a lease taken over) is still safe: deleting an
object twice is a harmless 404, and the delete is conditional on the version judged.

In a versioned bucket expiring the current object writes a delete marker (the object
stays as a noncurrent version), as S3 does; NoncurrentVersionExpiration deletes versions
noncurrent for NoncurrentDays. A version under object lock is never deleted.
"""

from __future__ import annotations

import logging
import time

from lampi.bg import periodic
from lampi.core import errors, versions
from lampi.core import multipart
from lampi.core.models import Container, ListParams
from lampi.core.storage import Storage
from lampi.s3 import lifecycle as lc
from lampi.s3 import tagging

log = logging.getLogger("lampi.lifecycle")

PAGE = 1000


async def _expire_rule(storage: Storage, c: Container, rule: dict, day_seconds: float, now: float) -> int:
    n = 0
    marker = ""
    prefix = lc.prefix_of(rule)
    while True:
        page = await storage.list_objects(c.key, ListParams(prefix=prefix, marker=marker, limit=PAGE))
        for e in page:
            if e.is_subdir:
                continue
            t = lc.expires_at(rule, e.last_modified, day_seconds)
            if t is None or t > now or not lc.matches(rule, e.name, e.bytes, None):
                continue
            try:
                rec = await storage.head_object(c.key, e.name)
            except errors.ObjectNotFound:
                continue
            t = lc.expires_at(rule, rec.last_modified, day_seconds)
            if t is None or t > now or not lc.matches(rule, rec.name, rec.size, tagging.stored(rec.sysmeta)):
                continue  # replaced since the listing, or its tags don't match
            try:
                if versions.enabled(c.meta) or c.meta.get(versions.ENABLED_KEY) == "False":
                    # versioned bucket: a delete marker, the object stays a noncurrent version
                    # (suspended: the null version goes), as S3's lifecycle expiration
                    await storage.delete_current(c.key, rec.name, suspended=not versions.enabled(c.meta))
                else:  # only the version judged here: not an upload that replaced it since
                    await storage.delete_object(c.key, rec.name, if_record=rec)
                n += 1
            except (errors.ObjectNotFound, errors.PreconditionFailed, errors.ObjectLocked):
                pass
        if len(page) < PAGE:
            return n
        marker = page[-1].name


async def _expire_noncurrent(storage: Storage, c: Container, rule: dict, day_seconds: float, now: float) -> int:
    """NoncurrentVersionExpiration: delete versions (delete markers too) that have been
    noncurrent for NoncurrentDays — since the next newer version of the key was written —
    object lock permitting (a locked version stays)."""
    n = 0
    keep = rule["noncurrent_days"] * day_seconds
    marker, vmarker = "", None
    name, newer = None, None  # the key being walked, and when its next newer version was written
    while True:
        page = await storage.list_versions(c.key, ListParams(prefix=lc.prefix_of(rule), marker=marker,
                                                              limit=PAGE), vmarker)
        for e in page:
            x = e.extra or {}
            if e.name != name:
                name, newer = e.name, None
            if not x.get("is_latest") and newer is not None and newer + keep <= now \
                    and lc.matches(rule, e.name, e.bytes, None):
                v = await storage.get_version(c.key, e.name, x["version_id"])
                if v is not None and lc.matches(rule, v.name, v.size, tagging.stored(v.sysmeta)):
                    try:
                        if (await storage.delete_version(c.key, e.name, x["version_id"]))[0]:
                            n += 1
                    except errors.ObjectLocked:
                        pass
            newer = e.last_modified
        if len(page) < PAGE:
            return n
        marker, vmarker = page[-1].name, (page[-1].extra or {}).get("version_id")


async def _abort_uploads(storage: Storage, c: Container, rule: dict, day_seconds: float, now: float) -> int:
    cutoff = now - rule["abort_days"] * day_seconds
    n = 0
    key_marker = upload_marker = ""
    while True:
        ups = await storage.meta.list_uploads(c.key, lc.prefix_of(rule), key_marker, upload_marker, PAGE)
        for up in ups:
            if up.initiated <= cutoff and await multipart.abort_upload(storage, up.upload_id):
                n += 1
        if len(ups) < PAGE:
            return n
        key_marker, upload_marker = ups[-1].name, ups[-1].upload_id


async def run_once(storage: Storage, day_seconds: float, now: float | None = None) -> int:
    """Apply every bucket's lifecycle rules at ``now``; return objects deleted + uploads aborted."""
    now = time.time() if now is None else now
    total = 0
    for c in await storage.meta.containers_with_meta(lc.LIFECYCLE_KEY):
        for rule in lc.rules_of(c.meta) or []:
            if rule.get("status") != "Enabled":
                continue
            try:
                if rule.get("days") is not None or rule.get("date") is not None:
                    total += await _expire_rule(storage, c, rule, day_seconds, now)
                if rule.get("abort_days") is not None:
                    total += await _abort_uploads(storage, c, rule, day_seconds, now)
                if rule.get("noncurrent_days") is not None and versions.versioned(c.meta):
                    total += await _expire_noncurrent(storage, c, rule, day_seconds, now)
            except errors.ContainerNotFound:
                break  # deleted meanwhile
    return total


def context(storage: Storage, interval: float, day_seconds: float):  # type: ignore[no-untyped-def]
    """An aiohttp ``cleanup_ctx`` running the lifecycle pass while the app runs (0: off)."""
    return periodic.context(lambda: run_once(storage, day_seconds), interval, log,
                            "lifecycle removed %d object(s) / upload(s)", "lifecycle pass failed",
                            storage.meta, "s3-lifecycle")
