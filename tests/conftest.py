"""Fixtures shared by unit and functional tests: a throw-away one-node Ceph.

``ceph``: one monitor and one OSD (lampi/testing/ceph.py) for the whole run, started at
the first test that asks for it and stopped (its directory removed) at the end, with
a pool ``lampi-test`` made at set-up. Without Ceph installed the tests that need it
are skipped; with ``LAMPI_REQUIRE_CEPH=1`` (CI) they fail instead. The OSD keeps its
data in memory (``memstore``) unless ``LAMPI_TEST_CEPH_STORE=bluestore``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest

from lampi.testing import ceph as ceph_cluster

CEPH_POOL = "lampi-test"


def ceph_missing(why: str) -> None:
    if ceph_cluster.required():
        pytest.fail(f"LAMPI_REQUIRE_CEPH is set but {why}")
    pytest.skip(why)


@pytest.fixture(scope="session")
def ceph() -> Iterator[ceph_cluster.CephCluster]:
    if not ceph_cluster.available():
        ceph_missing("Ceph is not installed (apt-get install ceph-mon ceph-osd ceph-common python3-rados)")
    from lampi.store.blob import radosbind

    try:
        radosbind.load()
    except (radosbind.RadosUnavailable, ImportError) as exc:
        ceph_missing(str(exc))
    with running_ceph() as cluster:
        yield cluster


@contextlib.contextmanager
def running_ceph() -> Iterator[ceph_cluster.CephCluster]:
    """A one-node Ceph with the tests' pool, stopped at the end (the session's ``ceph``,
    or one a test has to itself)."""
    cluster = ceph_cluster.CephCluster(os.environ.get("LAMPI_TEST_CEPH_STORE", "memstore"))
    cluster.start()
    try:
        cluster.create_pool(CEPH_POOL)
        yield cluster
    finally:
        cluster.stop()
