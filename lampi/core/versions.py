"""Object versioning (Swift's ``object_versioning``, ``X-Versions-Enabled``): shared names.

Model (docs/architecture.md "Object versions"): every version of an object in a
versioned container is a record of the MetaStore's version table with its own blob
(or manifest body); delete markers are version records without a blob. The current
object stays in the objects table: either an unversioned ("null") object owning its
blob, or a pointer to one of its versions (``ObjectRecord.version_id`` set) that shares
the version's blob. Version ids are Swift's: the write's timestamp as ``%016.5f``.
"""

from __future__ import annotations

ENABLED_KEY = "sys:x-versions-enabled"  # container sysmeta "True"/"False" (shown as X-Versions-Enabled)
VERSIONED_KEY = "sys:ov-versioned"  # set once versioning was first enabled (Swift: the versions container exists)
DELETE_MARKER = "application/x-deleted;swift_versions_deleted=1"
EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"


def version_id(ts: float) -> str:
    """Swift's Timestamp.internal of ``ts`` (as X-Timestamp)."""
    return f"{ts:016.5f}"


def normalize(value: str) -> str | None:
    """A client's version id as stored (``null`` as is), or None when Swift's
    ``Timestamp()`` would refuse it (not a number, negative, from 10^10 on)."""
    if value == "null":
        return value
    try:
        ts = float(value)
    except ValueError:
        return None
    if not (0 <= ts < 1e10):  # also NaN
        return None
    return version_id(ts)


def enabled(meta: dict[str, str]) -> bool:
    return meta.get(ENABLED_KEY) == "True"


def versioned(meta: dict[str, str]) -> bool:
    return bool(meta.get(VERSIONED_KEY))
