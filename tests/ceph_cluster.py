"""Moved to :mod:`lampi.testing.ceph` (``lampi bench --compare rgw`` needs it at run time)."""

from lampi.testing.ceph import BINARIES, CephCluster, available, required

__all__ = ["BINARIES", "CephCluster", "available", "required"]
