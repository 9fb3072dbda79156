"""Who uses a data dir: ``<data-dir>/lampi.lock``.

``lampi serve`` holds a shared ``flock`` on it from start-up until its last worker has
stopped (the workers inherit the descriptor), so several gateways may share a data dir;
``lampi migrate`` takes it exclusively, without waiting: it refuses to copy a store that
a server is serving (its copy would miss what the server writes meanwhile), and a
server refuses to start on a store being copied. A crashed process's lock goes with it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = "lampi.lock"


class DataDirLock:
    def __init__(self, data_dir: str | Path) -> None:
        self.path = Path(data_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self, exclusive: bool) -> bool:
        """Take the lock without waiting (shared: a server; exclusive: lampi migrate);
        False when another process holds it in a way that excludes this one."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
