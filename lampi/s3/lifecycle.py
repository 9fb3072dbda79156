"""Bucket lifecycle: Get/Put/DeleteBucketLifecycleConfiguration, ``x-amz-expiration`` on
GET/HEAD, and the rule evaluation the background pass (``lampi.bg.lifecycle``) applies.

Stored in hidden container metadata ``sys:s3-lifecycle`` (JSON). Supported: Expiration
Days / Date (ExpiredObjectDeleteMarker accepted, a no-op without versions), Filter by
Prefix, Tag, ObjectSizeGreaterThan/LessThan and And, the legacy rule-level Prefix,
Status Enabled/Disabled, AbortIncompleteMultipartUpload DaysAfterInitiation,
NoncurrentVersionExpiration (applied in versioned buckets, lampi/bg/lifecycle.py). Transitions → 501.

An object expires ``Days`` after its Last-Modified, rounded up to the next midnight UTC
as S3 does; the setting ``lifecycle_day_seconds`` (for tests only) shortens a "day" and
then no rounding is done.
"""

from __future__ import annotations

import base64
import math
import os
from datetime import datetime, timezone
from email.utils import formatdate
from typing import Any

from aiohttp import web

from lampi.core.models import ObjectRecord
from lampi.core.numbers import uint
from lampi.s3 import subconfig, tagging
from lampi.s3.errors import S3Error, invalid_argument, malformed_xml
from lampi.s3.request import S3Request
from lampi.s3.xml import XMLError, element, parse, xml_doc

LIFECYCLE_KEY = "sys:s3-lifecycle"
MAX_LIFECYCLE_BODY = 256 * 1024
MAX_RULES = 1000  # as S3
DAY = 86400

Rule = dict[str, Any]


def _int(text: str | None, what: str) -> int:
    t = (text or "").strip()
    magnitude = uint(t.removeprefix("-"))
    if magnitude is None or len(t) > 12:
        raise malformed_xml()
    n = -magnitude if t.startswith("-") else magnitude
    if n <= 0:
        raise invalid_argument(f"'{what}' must be a positive integer", what, t)
    return n


def _tag(el) -> list[str]:  # noqa: ANN001
    k, v = el.find("Key"), el.find("Value")
    if k is None or v is None or len(el) != 2:
        raise malformed_xml()
    return [k.text or "", v.text or ""]


def _filter(el) -> dict[str, Any]:  # noqa: ANN001
    """<Filter>: at most one of Prefix, Tag, ObjectSize*, And (of those)."""
    f: dict[str, Any] = {"prefix": None, "tags": [], "gt": None, "lt": None, "and": False}
    if len(el) > 1:
        raise malformed_xml()
    kids = list(el)
    if kids and kids[0].tag == "And":
        f["and"] = True
        kids = list(kids[0])
        if not kids:
            raise malformed_xml()
    for k in kids:
        if k.tag == "Prefix" and f["prefix"] is None:
            f["prefix"] = k.text or ""
        elif k.tag == "Tag":
            f["tags"].append(_tag(k))
        elif k.tag == "ObjectSizeGreaterThan" and f["gt"] is None:
            f["gt"] = _size(k.text)
        elif k.tag == "ObjectSizeLessThan" and f["lt"] is None:
            f["lt"] = _size(k.text)
        else:
            raise malformed_xml()
    if f["tags"]:
        tagging.validate([(k, v) for k, v in f["tags"]])  # S3's tag rules (InvalidTag)
    return f


def _size(text: str | None) -> int:
    t = (text or "").strip()
    n = uint(t)
    if n is None or len(t) > 20:
        raise malformed_xml()
    return n


def _date(text: str | None) -> float:
    t = (text or "").strip()
    try:
        d = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise invalid_argument("Invalid date", "Date", t) from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=timezone.utc)
    ts = d.timestamp()
    if ts % DAY:
        raise invalid_argument("'Date' must be at midnight GMT", "Date", t)
    return ts


def parse_config(raw: bytes) -> list[Rule]:
    try:
        root = parse(raw, "LifecycleConfiguration")
    except XMLError:
        raise malformed_xml() from None
    rules: list[Rule] = []
    for r in root:
        if r.tag != "Rule":
            raise malformed_xml()
        rule: Rule = {"id": None, "status": None, "filter": None, "legacy_prefix": None, "days": None,
                      "date": None, "delete_marker": None, "abort_days": None, "noncurrent_days": None}
        for el in r:
            if el.tag == "ID" and rule["id"] is None:
                rule["id"] = (el.text or "").strip()
                if len(rule["id"]) > 255:
                    raise invalid_argument("ID length should not exceed allowed limit of 255", "ID", rule["id"])
            elif el.tag == "Status" and rule["status"] is None:
                rule["status"] = (el.text or "").strip()
            elif el.tag == "Filter" and rule["filter"] is None:
                rule["filter"] = _filter(el)
            elif el.tag == "Prefix" and rule["legacy_prefix"] is None:
                rule["legacy_prefix"] = el.text or ""
            elif el.tag == "Expiration" and rule["days"] is None and rule["date"] is None:
                for e in el:
                    if e.tag == "Days" and rule["days"] is None:
                        rule["days"] = _int(e.text, "Days")
                    elif e.tag == "Date" and rule["date"] is None:
                        rule["date"] = _date(e.text)
                    elif e.tag == "ExpiredObjectDeleteMarker" and rule["delete_marker"] is None:
                        v = (e.text or "").strip().lower()
                        if v not in ("true", "false"):
                            raise malformed_xml()
                        rule["delete_marker"] = v == "true"
                    else:
                        raise malformed_xml()
                found = [k for k in ("days", "date", "delete_marker") if rule[k] is not None]
                if len(found) != 1:
                    raise malformed_xml()
            elif el.tag == "AbortIncompleteMultipartUpload" and rule["abort_days"] is None:
                d = el.find("DaysAfterInitiation")
                if d is None or len(el) != 1:
                    raise malformed_xml()
                rule["abort_days"] = _int(d.text, "DaysAfterInitiation")
            elif el.tag == "NoncurrentVersionExpiration" and rule["noncurrent_days"] is None:
                d = el.find("NoncurrentDays")
                if d is None:
                    raise malformed_xml()
                rule["noncurrent_days"] = _int(d.text, "NoncurrentDays")
            elif el.tag in ("Transition", "NoncurrentVersionTransition"):
                raise S3Error(501, "NotImplemented", "Lifecycle transitions (storage classes) are not "
                              "implemented by this server.")
            else:
                raise malformed_xml()
        if rule["status"] not in ("Enabled", "Disabled"):
            raise malformed_xml()
        if (rule["filter"] is None) == (rule["legacy_prefix"] is None):
            raise malformed_xml()  # exactly one of Filter and the legacy Prefix
        if all(rule[k] is None for k in ("days", "date", "delete_marker", "abort_days", "noncurrent_days")):
            raise S3Error(400, "InvalidRequest", "At least one action needs to be specified in a rule")
        f = rule["filter"]
        if rule["abort_days"] is not None and f is not None and (f["tags"] or f["gt"] is not None
                                                                  or f["lt"] is not None):
            raise S3Error(400, "InvalidRequest", "AbortIncompleteMultipartUpload cannot be specified with Tags.")
        if not rule["id"]:
            rule["id"] = base64.b32encode(os.urandom(30)).decode().rstrip("=")  # S3 names unnamed rules
        rules.append(rule)
    if not rules or len(rules) > MAX_RULES:
        raise malformed_xml()
    if len({r["id"] for r in rules}) != len(rules):
        raise invalid_argument("Rule ID must be unique. Found same ID for more than one rule", "ID")
    return rules


def _iso_midnight(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def render_config(rules: list[Rule]) -> bytes:
    out = []
    for r in rules:
        kids = [element("ID", r["id"])]
        f = r.get("filter")
        if f is None:
            kids.append(element("Prefix", r.get("legacy_prefix") or ""))
        else:
            parts = []
            if f["prefix"] is not None:
                parts.append(element("Prefix", f["prefix"]))
            parts += [element("Tag", [element("Key", k), element("Value", v)]) for k, v in f["tags"]]
            if f["gt"] is not None:
                parts.append(element("ObjectSizeGreaterThan", f["gt"]))
            if f["lt"] is not None:
                parts.append(element("ObjectSizeLessThan", f["lt"]))
            kids.append(element("Filter", [element("And", parts)] if f["and"] else parts))
        kids.append(element("Status", r["status"]))
        if r.get("days") is not None:
            kids.append(element("Expiration", [element("Days", r["days"])]))
        elif r.get("date") is not None:
            kids.append(element("Expiration", [element("Date", _iso_midnight(r["date"]))]))
        elif r.get("delete_marker") is not None:
            kids.append(element("Expiration", [element("ExpiredObjectDeleteMarker", r["delete_marker"])]))
        if r.get("noncurrent_days") is not None:
            kids.append(element("NoncurrentVersionExpiration", [element("NoncurrentDays", r["noncurrent_days"])]))
        if r.get("abort_days") is not None:
            kids.append(element("AbortIncompleteMultipartUpload",
                                [element("DaysAfterInitiation", r["abort_days"])]))
        out.append(element("Rule", kids))
    return xml_doc("LifecycleConfiguration", out)


def rules_of(meta: dict[str, str]) -> list[Rule] | None:
    return subconfig.stored(meta, LIFECYCLE_KEY)


def prefix_of(rule: Rule) -> str:
    f = rule.get("filter")
    return (f["prefix"] if f is not None else rule.get("legacy_prefix")) or ""


def matches(rule: Rule, name: str, size: int, tags: list[tuple[str, str]] | None) -> bool:
    """Does the rule's filter select this object? ``tags`` None: not known (no tag test)."""
    if not name.startswith(prefix_of(rule)):
        return False
    f = rule.get("filter") or {}
    if f.get("gt") is not None and not size > f["gt"]:
        return False
    if f.get("lt") is not None and not size < f["lt"]:
        return False
    if f.get("tags") and tags is not None:
        have = set(tags)
        return all((k, v) in have for k, v in f["tags"])
    return True


def expires_at(rule: Rule, last_modified: float, day_seconds: float) -> float | None:
    """When an object this rule selects expires (None: the rule expires nothing)."""
    if rule.get("status") != "Enabled":
        return None
    if rule.get("date") is not None:
        return float(rule["date"])
    if rule.get("days") is not None:
        t = last_modified + rule["days"] * day_seconds
        if day_seconds == DAY:
            t = math.ceil(t / DAY) * DAY  # S3: at the next midnight UTC
        return t
    return None


def expiration(meta: dict[str, str], rec: ObjectRecord, day_seconds: float) -> tuple[float, str] | None:
    """(expiry time, rule id) of the earliest rule expiring ``rec``."""
    best: tuple[float, str] | None = None
    tags = tagging.stored(rec.sysmeta)
    for rule in rules_of(meta) or []:
        if not matches(rule, rec.name, rec.size, tags):
            continue
        t = expires_at(rule, rec.last_modified, day_seconds)
        if t is not None and (best is None or t < best[0]):
            best = (t, rule["id"])
    return best


def expiration_header(meta: dict[str, str], rec: ObjectRecord, day_seconds: float) -> dict[str, str]:
    """``x-amz-expiration: expiry-date="<HTTP date>", rule-id="<id>"`` for GET/HEAD."""
    e = expiration(meta, rec, day_seconds)
    if e is None:
        return {}
    return {"x-amz-expiration": f'expiry-date="{formatdate(math.ceil(e[0]), usegmt=True)}", rule-id="{e[1]}"'}


# -- handlers ----------------------------------------------------------------------------


async def get_config(ctx: S3Request) -> web.StreamResponse:
    return await subconfig.get(ctx, rules_of, render_config, "NoSuchLifecycleConfiguration",
                               "The lifecycle configuration does not exist")


async def put_config(ctx: S3Request) -> web.StreamResponse:
    return await subconfig.put(ctx, LIFECYCLE_KEY, parse_config, MAX_LIFECYCLE_BODY)


async def delete_config(ctx: S3Request) -> web.StreamResponse:
    return await subconfig.delete(ctx, LIFECYCLE_KEY)
