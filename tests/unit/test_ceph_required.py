"""The ``ceph`` fixture (tests/conftest.py) skips without Ceph on a laptop, and fails in CI
(``LAMPI_REQUIRE_CEPH=1``, set by .ci/run): run in a pytest of its own with a PATH where
no Ceph binary is found."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEST = "tests/unit/store/test_rados_blobs.py::test_layout_stripes_and_delete"


def run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "LAMPI_REQUIRE_CEPH"}
    clean["PATH"] = str(tmp_path)  # nothing in it: no ceph-mon, no ceph-osd
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", TEST],
                          cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=300)


def test_without_ceph_the_rados_tests_skip(tmp_path: Path) -> None:
    res = run(tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 skipped" in res.stdout and "Ceph is not installed" in res.stdout


def test_with_lampi_require_ceph_they_fail(tmp_path: Path) -> None:
    res = run(tmp_path, LAMPI_REQUIRE_CEPH="1")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "LAMPI_REQUIRE_CEPH is set but Ceph is not installed" in res.stdout
