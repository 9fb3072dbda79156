"""Keys that seal secrets at rest: the EC2 (S3) secret keys of the metadata store.

As Keystone's credential keys (``keystone-manage credential_setup``/``credential_rotate``/
``credential_migrate``): Fernet keys (AES-128-CBC + HMAC-SHA256, from ``cryptography``)
in files ``<data-dir>/keys/credential-<n>`` (0600, in a 0700 directory), apart from the
token keys (``fernet-<n>``). The key with the highest ``n`` is the *primary*: it seals
new secrets. Every sealed secret is stored with the id of the key that sealed it (the
first 16 hex digits of the key's SHA-256, like Keystone's ``key_hash``), so any key
still in the ring opens it, a rotation knows which rows to re-seal, and a worker that
meets a key it has not loaded yet (another process rotated) re-reads the directory.

A stolen ``meta.db`` alone yields no usable secret; a lost ``keys/`` directory loses
them all (``docs/operations.md``: back up ``keys/`` with the database).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import threading
from collections.abc import Iterable
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from lampi.store.fsmodes import fsync_dir


class SealError(Exception):
    """A sealed secret cannot be opened: its key is missing, or it was altered."""


def key_id(key: bytes) -> str:
    return hashlib.sha256(key.strip()).hexdigest()[:16]


class KeyRing:
    """The Fernet keys ``<key_dir>/<prefix>-<n>``; thread-safe, shared by a process's
    threads. Keys are read from disk when first needed and again when the directory's
    listing changed (``refresh``) or an unknown key id is met."""

    def __init__(self, key_dir: Path, prefix: str = "credential") -> None:
        self.key_dir = Path(key_dir)
        self.prefix = prefix
        self._name = re.compile(re.escape(prefix) + r"-(\d+)")
        self._lock = threading.Lock()
        self._listing: tuple[str, ...] | None = None
        self._keys: dict[str, Fernet] = {}  # key id -> key
        self._raw: dict[str, bytes] = {}  # key id -> its 32 random bytes (``secret``)
        self._files: dict[str, Path] = {}  # key id -> its file
        self._primary: str | None = None

    # -- loading ----------------------------------------------------------------------

    def _scan(self) -> list[tuple[int, Path]]:
        try:
            names = os.listdir(self.key_dir)
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            m = self._name.fullmatch(name)
            if m:
                found.append((int(m.group(1)), self.key_dir / name))
        return sorted(found)

    def _load_locked(self, force: bool = False) -> None:
        found = self._scan()
        listing = tuple(p.name for _, p in found)
        if listing == self._listing and not force:
            return
        keys: dict[str, Fernet] = {}
        raws: dict[str, bytes] = {}
        files: dict[str, Path] = {}
        primary = None
        for _n, path in found:
            try:
                raw = path.read_bytes().strip()
                fernet = Fernet(raw)
            except FileNotFoundError:  # removed by a rotation meanwhile
                continue
            except (ValueError, OSError) as exc:
                raise SealError(f"key file {path} is unreadable or not a Fernet key: {exc}") from None
            kid = key_id(raw)
            keys[kid], files[kid] = fernet, path
            raws[kid] = base64.urlsafe_b64decode(raw)
            primary = kid  # sorted by n: the last one is the highest
        self._keys, self._raw, self._files, self._primary, self._listing = keys, raws, files, primary, listing

    def refresh(self) -> None:
        """Re-read the key directory if its listing changed (one ``listdir``)."""
        with self._lock:
            self._load_locked()

    def key_ids(self) -> list[str]:
        """The ids of the keys on disk, oldest first; the last is the primary."""
        with self._lock:
            self._load_locked()
            return list(self._keys)

    def primary(self, create: bool = True) -> str | None:
        """The primary key's id, re-reading the directory first (a rotation by another
        process must be seen before anything is sealed); with ``create``, make key 0
        when there is none yet."""
        with self._lock:
            self._load_locked()
            if self._primary is None and create:
                self._write_key(0)
                self._load_locked()
            return self._primary

    # -- sealing ----------------------------------------------------------------------

    def seal(self, plaintext: bytes) -> tuple[str, str]:
        """(key id, token): ``plaintext`` sealed with the primary key as it is on disk now."""
        kid = self.primary(create=True)
        assert kid is not None
        with self._lock:
            fernet = self._keys[kid]
        return kid, fernet.encrypt(plaintext).decode()

    def open(self, kid: str, token: str) -> bytes:
        """The plaintext of ``token`` sealed by key ``kid``; SealError when that key is not
        in the ring or the token does not verify under it (altered, or another key's)."""
        with self._lock:
            fernet = self._keys.get(kid)
            if fernet is None:
                self._load_locked()  # rotated by another process since we last looked
                fernet = self._keys.get(kid)
        if fernet is None:
            raise SealError(f"the key {kid} that sealed it is not in {self.key_dir} "
                            f"(restore it from the backup of {self.key_dir})")
        try:
            return fernet.decrypt(token.encode())
        except (InvalidToken, UnicodeError):
            raise SealError(f"it does not verify under key {kid}: altered, or sealed with another key") from None

    # -- raw key material (wrapping data keys: lampi.core.sse) ------------------------

    def secret(self, kid: str) -> bytes:
        """The 32 random bytes of key ``kid`` (its Fernet encoding decoded), for callers
        that derive keys of their own from it; SealError when the key is not in the ring."""
        with self._lock:
            raw = self._raw.get(kid)
            if raw is None:
                self._load_locked()  # rotated by another process since we last looked
                raw = self._raw.get(kid)
        if raw is None:
            raise SealError(f"the key {kid} is not in {self.key_dir} (restore it from the backup of {self.key_dir})")
        return raw

    def primary_secret(self, create: bool = True) -> tuple[str, bytes]:
        """(id, 32 bytes) of the primary key as it is on disk now (made when there is none
        and ``create``); SealError when there is none."""
        kid = self.primary(create=create)
        if kid is None:
            raise SealError(f"there is no {self.prefix} key in {self.key_dir}")
        return kid, self.secret(kid)

    def exists(self) -> bool:
        """Whether any key of this ring is on disk (re-reading the directory if it changed)."""
        with self._lock:
            self._load_locked()
            return self._primary is not None

    # -- rotation ---------------------------------------------------------------------

    def add_key(self) -> str:
        """Make a new primary key (the next number); return its id."""
        with self._lock:
            self._load_locked()
            while True:
                found = self._scan()
                n = found[-1][0] + 1 if found else 0
                if self._write_key(n):
                    break
            self._load_locked()
            assert self._primary is not None
            return self._primary

    def remove(self, kids: Iterable[str]) -> list[Path]:
        """Delete the files of keys ``kids`` (never the primary); return what was removed."""
        removed = []
        with self._lock:
            self._load_locked()
            for kid in kids:
                path = self._files.get(kid)
                if path is None or kid == self._primary:
                    continue
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    continue
                removed.append(path)
            if removed:
                fsync_dir(self.key_dir)
            self._load_locked()
        return removed

    def _write_key(self, n: int) -> bool:
        """Write a new key as ``<prefix>-<n>``, durably (file and directory fsynced before
        anything is sealed with it); False when that name exists already (another
        process won the race: its key is used)."""
        created = not self.key_dir.exists()
        self.key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if created:
            fsync_dir(self.key_dir.parent)
        tmp = self.key_dir / f".{self.prefix}-{os.getpid()}-{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(Fernet.generate_key())
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, self.key_dir / f"{self.prefix}-{n}")  # atomic: one process wins
            except FileExistsError:
                return False
        finally:
            os.unlink(tmp)
        fsync_dir(self.key_dir)
        return True


# -- all the keys of a store, for copying it elsewhere (lampi migrate) ----------------------

_KEY_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*-\d+")


def store_keys(key_dir: Path) -> dict[str, bytes]:
    """Every key of a store's key directory, by its name relative to it: the token keys
    (``fernet-<n>``), the EC2-secret sealing keys (``credential-<n>``), the SSE master
    keys (``sse-<n>``) and the KMS keys (``kms/<name>-<n>``). Together with the metadata
    they are what another store needs to open what this one sealed."""
    key_dir = Path(key_dir)
    found: dict[str, bytes] = {}
    for sub in ("", "kms"):
        d = key_dir / sub if sub else key_dir
        try:
            names = sorted(os.listdir(d))
        except FileNotFoundError:
            continue
        for name in names:
            if _KEY_FILE.fullmatch(name) and (d / name).is_file():
                found[f"{sub}/{name}" if sub else name] = (d / name).read_bytes()
    return found


def install_store_keys(key_dir: Path, keys: dict[str, bytes]) -> int:
    """Write ``keys`` (as ``store_keys`` gives them) into ``key_dir``, each durably (0600,
    fsynced, linked into place at once) unless it is there already with the same bytes;
    return how many were written. SealError, before anything is written, when a key of
    that name is there with other bytes: the directory holds another store's keys."""
    key_dir = Path(key_dir)
    todo: dict[str, bytes] = {}
    for rel, data in keys.items():
        parts = rel.split("/")
        if not (len(parts) == 1 or (len(parts) == 2 and parts[0] == "kms")) or not _KEY_FILE.fullmatch(parts[-1]):
            raise SealError(f"not a key file name: {rel!r}")
        try:
            have = (key_dir / rel).read_bytes()
        except FileNotFoundError:
            todo[rel] = data
            continue
        if have.strip() != data.strip():
            raise SealError(f"{key_dir / rel} exists with another key: {key_dir} holds another store's keys")
    for rel, data in todo.items():
        path = key_dir / rel
        created = not path.parent.exists()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if created:
            fsync_dir(path.parent.parent)
        tmp = path.parent / f".{path.name}-{os.getpid()}-{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:  # made meanwhile: the same key, or refuse
                if path.read_bytes().strip() != data.strip():
                    raise SealError(f"{path} exists with another key") from None
        finally:
            os.unlink(tmp)
        fsync_dir(path.parent)
    return len(todo)
