"""make_private (lampi/store/fsmodes.py): an open data dir is made private, symlinks are
not followed out of it, another owner's files are named, not changed."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from lampi.store.fsmodes import PRIVATE_UMASK, make_private


@pytest.fixture(autouse=True)
def keep_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(p: Path) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


def old_data_dir(root: Path) -> None:
    for d in ("keys", "blobs/ab/cd", "tmp"):
        (root / d).mkdir(parents=True, mode=0o755)
    for f in ("meta.db", "meta.db-wal", "keys/fernet-0", "blobs/ab/cd/blob1", "openrc.sh"):
        (root / f).write_text("x")
        (root / f).chmod(0o644)
    for d in (root, root / "keys", root / "blobs", root / "blobs/ab", root / "blobs/ab/cd", root / "tmp"):
        d.chmod(0o755)


def test_an_open_data_dir_is_made_private_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "data"
    root.mkdir()
    old_data_dir(root)
    outside = tmp_path / "outside"
    outside.write_text("not ours to change")
    outside.chmod(0o644)
    (root / "link").symlink_to(outside)
    with caplog.at_level(logging.WARNING, logger="lampi.server"):
        fixed = make_private(root)
    assert os.umask(0o022) == PRIVATE_UMASK
    assert sorted(fixed.changed) == sorted([".", "blobs", "blobs/ab", "blobs/ab/cd", "blobs/ab/cd/blob1", "keys",
                                            "keys/fernet-0", "meta.db", "meta.db-wal", "openrc.sh", "tmp"])
    for p in [root, *root.rglob("*")]:
        if not p.is_symlink():
            assert mode(p) == (0o700 if p.is_dir() else 0o600), p
    assert mode(outside) == 0o644  # the symlink was not followed
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "11 path(s)" in record.getMessage() and "meta.db" in record.getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lampi.server"):
        again = make_private(root)
    assert not again.changed and not caplog.records


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
def test_files_of_another_owner_are_named_not_changed(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir(mode=0o755)
    root.chmod(0o755)
    (root / "meta.db").write_text("x")
    (root / "meta.db").chmod(0o644)
    os.chown(root / "meta.db", 65534, 65534)
    fixed = make_private(root)
    assert fixed.changed == ["."] and fixed.skipped == ["meta.db"]
    assert mode(root / "meta.db") == 0o644
    assert "could not make private 1 path(s)" in fixed.message(root)


def test_a_missing_data_dir_is_left_to_be_made_under_the_umask(tmp_path: Path) -> None:
    fixed = make_private(tmp_path / "new")
    assert not fixed.changed and not (tmp_path / "new").exists()
    (tmp_path / "new").mkdir()
    assert mode(tmp_path / "new") == 0o700
