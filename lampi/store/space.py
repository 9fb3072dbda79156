"""Free space on the data dir's filesystem: the upload floor and the metadata reserve.

A full disk must not stop the store from freeing space (docs/operations.md, "A full
disk"). Two guards:

* ``MinFree`` — uploads are refused with ``InsufficientStorage`` (Swift 507, S3 507
  ``InsufficientStorage``) when writing them would leave less than ``min_free_space``
  free (Swift's ``fallocate_reserve``): ``FSBlobStore`` checks it before the first byte
  (with the declared size when there is one) and again before each 1 MiB write.
* ``Reserve`` — a preallocated file (``meta.db-reserve``, 8 MiB at most) kept beside
  the SQLite database. When a transaction that frees space (a delete) or the opening of
  the database fails because the disk is full, the store gives back a slice of the file
  and tries again: the WAL and its index can grow by that much, the delete commits and
  its blob is unlinked. The reserve is grown back once there is room.

``is_full`` recognises the errors a full disk (or an exhausted quota) raises: ENOSPC /
EDQUOT from the OS, SQLITE_FULL and a failed extension of the WAL index from SQLite.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from lampi.core import errors

log = logging.getLogger("lampi.store")

FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})

RESERVE_SIZE = 8 * 1024 * 1024  # at most; 1/16 of a smaller filesystem
RESERVE_SLICE = 1024 * 1024  # given back per failed attempt


def is_full(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or an exception it was raised from/while handling) says the disk
    or the quota is full."""
    for _ in range(4):  # the error itself, or the one a ROLLBACK failed after
        if exc is None:
            return False
        if isinstance(exc, errors.InsufficientStorage):
            return True
        if isinstance(exc, OSError) and exc.errno in FULL_ERRNOS:
            return True
        if isinstance(exc, sqlite3.Error):
            code = getattr(exc, "sqlite_errorcode", None)
            # SQLITE_FULL (any extended form), or the WAL index (-shm) could not be extended
            if code is not None and (code & 0xFF == sqlite3.SQLITE_FULL or code == sqlite3.SQLITE_IOERR_SHMSIZE):
                return True
        exc = exc.__cause__ or exc.__context__
    return False


def full_message(where: Path | str) -> str:
    """What an operator reads (CLI) about a full filesystem."""
    return (f"no space left on the filesystem holding {where}: free some space (delete objects, or "
            "grow the filesystem) and try again")


def insufficient(path: Path | str, cause: BaseException | None = None) -> errors.InsufficientStorage:
    """The domain error for a full filesystem holding ``path``; clients see it named by
    its base name only, as Swift names the full drive."""
    err = errors.InsufficientStorage(full_message(path), drive=Path(path).name or str(path))
    err.__cause__ = cause
    return err


@dataclass(frozen=True, slots=True)
class MinFree:
    """The free space uploads must leave: the larger of ``bytes`` and ``fraction`` of the
    filesystem's size. Both zero: no check (a full disk still answers 507)."""

    bytes: int = 0
    fraction: float = 0.0

    def __bool__(self) -> bool:
        return self.bytes > 0 or self.fraction > 0

    def floor(self, total: int) -> int:
        return max(self.bytes, int(total * self.fraction))


def free_bytes(path: Path | str) -> tuple[int, int]:
    """(bytes available to unprivileged writers, size) of the filesystem holding ``path``."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize


class Reserve:
    """A preallocated file whose blocks are given back, a slice at a time, when the
    metadata store must write on a full disk. Safe to share between processes: each
    step is one ``truncate``, ``unlink`` or ``fallocate`` of the same file."""

    def __init__(self, path: Path | str, size: int = RESERVE_SIZE) -> None:
        self.path = Path(path)
        try:
            _free, total = free_bytes(self.path.parent)
        except OSError:
            total = size * 16
        self.size = max(RESERVE_SLICE, min(size, total // 16 // 4096 * 4096))

    def current(self) -> int:
        try:
            return os.stat(self.path).st_size
        except FileNotFoundError:
            return 0

    def ensure(self) -> bool:
        """Bring the file to its full size when the filesystem has room for it and as
        much again; True if it is complete afterwards. Never raises for lack of space."""
        have = self.current()
        if have >= self.size:
            return True
        try:
            free, _total = free_bytes(self.path.parent)
            if free < 2 * (self.size - have):  # growing it must leave as much again free
                return False
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                # real blocks, grown in place (glibc writes zeros where fallocate is unsupported);
                # no fsync: a reserve lost in a crash is made again at the next start
                os.posix_fallocate(fd, 0, self.size)
            finally:
                os.close(fd)
        except OSError as exc:
            log.debug("could not restore the metadata reserve %s: %s", self.path, exc)
            return False
        if have:
            log.info("metadata reserve %s restored (%d bytes)", self.path, self.size)
        return True

    def release(self) -> bool:
        """Give back one slice of the file (the last one removes it); False if there
        was nothing left to give."""
        have = self.current()
        if have <= 0:
            return False
        left = max(0, have - RESERVE_SLICE)
        try:
            if left:
                os.truncate(self.path, left)
            else:
                os.unlink(self.path)
        except FileNotFoundError:
            return False
        log.warning("disk full: gave %d bytes of the metadata reserve %s back (%d left) so that the "
                    "metadata store can open and deletes can proceed", have - left, self.path, left)
        return True
