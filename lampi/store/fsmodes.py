"""File modes of the data dir: everything lampi keeps is private to the service user.

``meta.db`` holds password hashes, the sealed EC2 secrets and the temp-URL keys (which
Swift keeps in clear as account/container metadata); ``keys/`` the keys that sign tokens
and seal the EC2 secrets; ``openrc.sh`` the admin's password; ``blobs/`` every object.
So the data dir is 0700 and every file and directory in it 0600/0700:

- ``private_umask`` (umask 077) is set at the start of every ``lampi`` command, server
  and admin commands alike, so whatever they create is private whatever the caller's
  umask (SQLite's ``-wal``/``-shm`` files, blobs, keys, the RC file);
- ``make_private`` runs when the server starts and fixes a data dir made before this
  (0755 directories, 0644 files), with one warning line naming what it changed.

Cost at start: a store whose top level is already private is not walked (a dozen
``lstat`` calls): the blob tree beneath a 0700 directory is out of other users' reach.
When anything at the top level was open to others (a data dir of an older version), the
whole tree is walked once. Symlinks are not followed; files of another owner are left
alone (and named).
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("lampi.server")

PRIVATE_UMASK = 0o077
_OPEN = 0o077  # group and other permission bits


def private_umask() -> None:
    """Files and directories this process creates are private (0600 / 0700)."""
    os.umask(PRIVATE_UMASK)


@dataclass
class ModeFix:
    changed: list[str] = field(default_factory=list)  # paths relative to the data dir
    skipped: list[str] = field(default_factory=list)  # another owner's, or chmod failed

    def message(self, root: Path, shown: int = 8) -> str:
        def names(paths: list[str]) -> str:
            more = f" and {len(paths) - shown} more" if len(paths) > shown else ""
            return ", ".join(paths[:shown]) + more

        parts = []
        if self.changed:
            parts.append(f"data dir {root} was open to other users: removed their access (dirs 0700, files 0600) "
                         f"from {len(self.changed)} path(s): {names(self.changed)}")
        if self.skipped:
            parts.append(f"could not make private {len(self.skipped)} path(s) (other owner or chmod refused): "
                         f"{names(self.skipped)}")
        return "; ".join(parts)


def _fix(path: Path, rel: str, st: os.stat_result, uid: int, out: ModeFix) -> bool:
    """Remove group/other access from ``path``; True if it had any."""
    mode = stat.S_IMODE(st.st_mode)
    if not mode & _OPEN:
        return False
    if st.st_uid != uid:
        out.skipped.append(rel)
        return True
    try:
        os.chmod(path, mode & ~_OPEN)
    except OSError:
        out.skipped.append(rel)
        return True
    out.changed.append(rel)
    return True


def _walk(root: Path, rel: str, uid: int, out: ModeFix) -> None:
    try:
        entries = list(os.scandir(root / rel if rel != "." else root))
    except OSError:
        return
    for e in entries:
        child = e.name if rel == "." else f"{rel}/{e.name}"
        try:
            st = e.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISLNK(st.st_mode):
            continue
        _fix(Path(e.path), child, st, uid, out)
        if stat.S_ISDIR(st.st_mode):
            _walk(root, child, uid, out)


def make_private(data_dir: Path) -> ModeFix:
    """Set the private umask and take group/other access away from the data dir and
    what is in it (see the module docstring); log one warning line if anything changed."""
    private_umask()
    out = ModeFix()
    root = Path(data_dir)
    try:
        st = os.stat(root)  # the data dir itself may be a symlink to the real one
    except FileNotFoundError:
        return out  # made later, under the umask
    uid = os.geteuid()
    loose = _fix(root, ".", st, uid, out)
    # the top level and keys/: a few entries, checked at every start
    for rel in _listdir(root) + [f"keys/{n}" for n in _listdir(root / "keys")]:
        try:
            est = os.lstat(root / rel)
        except OSError:
            continue
        if not stat.S_ISLNK(est.st_mode) and _fix(root / rel, rel, est, uid, out):
            loose = True
    if loose:  # made by an older version (or by hand): walk the whole tree once
        seen = set(out.changed) | set(out.skipped)
        rest = ModeFix()
        _walk(root, ".", uid, rest)
        out.changed += [p for p in rest.changed if p not in seen]
        out.skipped += [p for p in rest.skipped if p not in seen]
    if out.changed or out.skipped:
        log.warning("%s", out.message(root))
    return out


def _listdir(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def fsync_dir(path: Path | str) -> None:
    """Make a directory's entries durable (a file created, renamed or removed in it)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
