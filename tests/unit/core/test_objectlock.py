"""lampi/core/objectlock.py: dates, default retention, what blocks a delete."""

from __future__ import annotations

import json

import pytest

from lampi.core import errors, objectlock as lock


@pytest.mark.parametrize("text,want", [
    ("2030-01-01T00:00:00Z", 1893456000.0), ("2030-01-01T00:00:00.000Z", 1893456000.0),
    ("2030-01-01T02:00:00+02:00", 1893456000.0), ("2030-01-01", 1893456000.0),
])
def test_parse_date(text: str, want: float) -> None:
    assert lock.parse_date(text) == want


@pytest.mark.parametrize("text", ["", "tomorrow", "2030-13-01T00:00:00Z", "1960-01-01T00:00:00Z", "x" * 100])
def test_parse_date_refuses(text: str) -> None:
    assert lock.parse_date(text) is None


def test_iso_is_fixed_width_and_sorts_as_time() -> None:
    a, b = lock.iso(1893456000.0), lock.iso(1893456000.5)
    assert a == "2030-01-01T00:00:00.000Z" and b == "2030-01-01T00:00:00.500Z" and a < b
    assert lock.iso(5.0) < lock.iso(1e9) and len(lock.iso(5.0)) == len(a)


def test_default_retention_only_in_lock_containers() -> None:
    on = {lock.CONFIG_KEY: lock.encode_config("GOVERNANCE", days=2)}
    got = lock.apply_default(on, {"x": "1"}, 1000.0)
    assert got[lock.MODE_KEY] == "GOVERNANCE" and got[lock.UNTIL_KEY] == lock.iso(1000.0 + 2 * 86400)
    years = {lock.CONFIG_KEY: lock.encode_config("COMPLIANCE", years=1)}
    assert lock.apply_default(years, {}, 0.0)[lock.UNTIL_KEY] == lock.iso(365 * 86400)
    explicit = lock.retention("COMPLIANCE", 5000.0)
    assert lock.apply_default(on, explicit, 1000.0) == explicit  # the write's own wins
    assert lock.apply_default({lock.CONFIG_KEY: lock.encode_config()}, {"x": "1"}, 0.0) == {"x": "1"}
    assert lock.apply_default({}, {**explicit, lock.HOLD_KEY: "ON", "x": "1"}, 0.0) == {"x": "1"}  # no lock there
    assert json.loads(on[lock.CONFIG_KEY]) == {"days": 2, "mode": "GOVERNANCE"}


def test_blocker() -> None:
    gov, comp = lock.retention("GOVERNANCE", 2000.0), lock.retention("COMPLIANCE", 2000.0)
    assert lock.blocker(gov, 1000.0) and lock.blocker(gov, 1000.0, bypass_governance=True) is None
    assert lock.blocker(comp, 1000.0, bypass_governance=True)
    assert lock.blocker(comp, 3000.0) is None and lock.blocker({}, 0.0) is None
    assert lock.blocker({lock.HOLD_KEY: "ON"}, 0.0, bypass_governance=True) == "legal hold"
    assert lock.blocker({lock.HOLD_KEY: "OFF"}, 0.0) is None
    with pytest.raises(errors.ObjectLocked):
        lock.check(comp, 1000.0)
    assert lock.may_lock(json.dumps(gov)) and not lock.may_lock(json.dumps({"s3-tags": "a"}))
