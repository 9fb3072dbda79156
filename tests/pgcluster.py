"""A throw-away PostgreSQL cluster for tests (``lampi.testing.postgres.PGCluster``:
``initdb`` + ``pg_ctl`` in a temp dir, on 127.0.0.1 and a free port, fsync off).

Where PostgreSQL is missing the tests that need it skip, except when
``LAMPI_REQUIRE_POSTGRES=1`` (CI sets it: .ci/run installs PostgreSQL), where they fail.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from lampi.testing.postgres import PGCluster, bindir

__all__ = ["PGCluster", "require_postgres", "running"]


def _bindir() -> Path | None:
    return bindir()


def require_postgres() -> Path:
    """PostgreSQL's bin directory; skip (or, with LAMPI_REQUIRE_POSTGRES=1, fail) without it."""
    found = _bindir()
    if found is not None:
        return found
    msg = "PostgreSQL (initdb) is not installed: apt-get install postgresql"
    if os.environ.get("LAMPI_REQUIRE_POSTGRES") == "1":
        pytest.fail(msg + " (LAMPI_REQUIRE_POSTGRES=1: required here)", pytrace=False)
    pytest.skip(msg)


@contextlib.contextmanager
def running() -> Iterator[PGCluster]:
    """A throw-away cluster for the ``with`` block (a module fixture's body)."""
    c = PGCluster(require_postgres())
    try:
        c.start()
        yield c
    finally:
        c.stop()
