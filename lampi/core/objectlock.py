"""Object lock (S3's WORM retention), protocol-neutral: what it stores and what it forbids.

A bucket (container) has object lock when created with it through S3 (or when an S3
client sets a lock configuration on a bucket with versioning enabled); from then on its
versioning cannot be suspended, through either API. Each version may carry, in hidden
object system metadata (``s3-`` keys: kept by a Swift POST, never shown to Swift):

- a retention: mode GOVERNANCE or COMPLIANCE and a retain-until date;
- a legal hold (ON / OFF).

While the retention runs (COMPLIANCE; GOVERNANCE unless the caller may and does ask to
bypass it) or the legal hold is ON, no operation of either API may destroy that version:
the MetaStore checks it (``blocker``) inside the transaction of every delete or overwrite
that would release a version's blob, so a Swift ``DELETE ?version-id=`` is refused as an
S3 DeleteObject is. Writes into a lock-enabled container get the container's default
retention (``apply_default``), whichever API wrote them.

Dates are kept as fixed-width ISO 8601 text (``2030-01-01T00:00:00.000Z``), which sorts
as time does, so the store can compare them in SQL.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

from lampi.core import errors

MODE_KEY = "s3-lock-mode"
UNTIL_KEY = "s3-lock-until"
HOLD_KEY = "s3-legal-hold"
KEYS = (MODE_KEY, UNTIL_KEY, HOLD_KEY)
CONFIG_KEY = "sys:s3-object-lock"  # container sysmeta: JSON {"mode", "days" | "years"} ({} = enabled, no rule)
MODES = ("GOVERNANCE", "COMPLIANCE")
DAY = 86400
YEAR_DAYS = 365  # a default retention's year, as Ceph RGW counts it


def iso(ts: float) -> str:
    """Fixed-width UTC ISO 8601 with milliseconds (sorts as time does)."""
    ms = int(round(ts * 1000))
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def parse_date(text: str) -> float | None:
    """An ISO 8601 date-time (``Z`` or an offset; a date alone is midnight UTC) as epoch
    seconds; None when it is not one or not between the years 1970 and 9999."""
    t = text.strip()
    if not t or len(t) > 64:
        return None
    try:
        dt = datetime.fromisoformat(t.replace("z", "Z"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    try:
        ts = dt.timestamp()
    except (OverflowError, OSError, ValueError):
        return None
    return ts if 0 <= ts < 253402300800 else None


def config(meta: dict[str, str]) -> dict[str, object] | None:
    """The container's lock configuration (``{}``: enabled without a default rule), or
    None when object lock is not enabled."""
    raw = meta.get(CONFIG_KEY)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def enabled(meta: dict[str, str]) -> bool:
    return CONFIG_KEY in meta


def encode_config(mode: str | None = None, days: int | None = None, years: int | None = None) -> str:
    rule: dict[str, object] = {}
    if mode is not None:
        rule["mode"] = mode
        rule["days" if days is not None else "years"] = days if days is not None else years
    return json.dumps(rule, sort_keys=True)


def retention(mode: str, until: float) -> dict[str, str]:
    return {MODE_KEY: mode, UNTIL_KEY: iso(until)}


def apply_default(container_meta: dict[str, str], sysmeta: dict[str, str], now: float) -> dict[str, str]:
    """The sysmeta a new version is written with: lock keys only in a lock-enabled
    container (a copy never carries its source's lock elsewhere), and there the
    container's default retention unless the write set one."""
    cfg = config(container_meta)
    if cfg is None:
        if any(k in sysmeta for k in KEYS):
            return {k: v for k, v in sysmeta.items() if k not in KEYS}
        return sysmeta
    if MODE_KEY in sysmeta or not cfg.get("mode"):
        return sysmeta
    days = cfg.get("days")
    if days is None:
        days = int(cfg.get("years") or 0) * YEAR_DAYS  # type: ignore[call-overload]
    return {**sysmeta, **retention(str(cfg["mode"]), now + int(days) * DAY)}  # type: ignore[call-overload]


def blocker(sysmeta: dict[str, str], now: float, bypass_governance: bool = False) -> str | None:
    """Why this version may not be deleted or overwritten now, or None."""
    if sysmeta.get(HOLD_KEY) == "ON":
        return "legal hold"
    mode, until = sysmeta.get(MODE_KEY), sysmeta.get(UNTIL_KEY)
    if mode and until and until > iso(now):
        if mode == "COMPLIANCE" or not bypass_governance:
            return f"{mode} retention until {until}"
    return None


def check(sysmeta: dict[str, str], now: float, bypass_governance: bool = False) -> None:
    why = blocker(sysmeta, now, bypass_governance)
    if why is not None:
        raise errors.ObjectLocked(f"Access Denied because object protected by object lock ({why}).")


def may_lock(sysmeta_text: str) -> bool:
    """Whether a stored sysmeta JSON text can hold a lock at all (a cheap test before
    parsing it)."""
    return '"s3-l' in sysmeta_text
