"""tests/pgcluster.py: without PostgreSQL, its tests skip on a laptop and fail in CI."""

from __future__ import annotations

import pytest

from tests import pgcluster


def test_missing_postgres_skips_unless_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pgcluster, "_bindir", lambda: None)
    monkeypatch.delenv("LAMPI_REQUIRE_POSTGRES", raising=False)
    with pytest.raises(pytest.skip.Exception):
        pgcluster.require_postgres()
    monkeypatch.setenv("LAMPI_REQUIRE_POSTGRES", "1")  # what .ci/run sets
    with pytest.raises(pytest.fail.Exception, match="required here"):
        pgcluster.require_postgres()


def test_debian_bindir_found_off_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    found = pgcluster._bindir()
    import glob

    assert (found is not None) == bool(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
