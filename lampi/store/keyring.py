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

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from lampi.store.fsmodes import fsync_dir


T = TypeVar("T")


class SealError(Exception):
    """A sealed secret cannot be opened: its key is missing, or it was altered."""


def key_id(key: bytes) -> str:
    return hashlib.sha256(key.strip()).hexdigest()[:16]


class _Ring:
    """What both key rings do once their keys are in memory: ``KeyRing`` (files) and
    ``StoredKeyRing`` (the keys table) provide ``_load_locked`` (re-read when the source
    changed, or always with ``force``), ``_reload_on_miss_locked`` (a key id not in
    memory: look again), ``primary``, ``add_key`` and ``remove``."""

    prefix: str
    where: str
    _lock: threading.Lock
    _keys: dict[str, Fernet]  # key id -> key
    _raw: dict[str, bytes]  # key id -> its 32 random bytes (``secret``)
    _primary: str | None
    _loaded: bool = False  # the keys in memory were read from the source at least once
    _loaded_at = 0.0  # monotonic time of the last look at the source (its primary is fresh for FRESH s)
    _read_began = 0.0  # monotonic time the last read of the source began (misses: lampi.store.keyring._Ring.asecret)

    def _load_locked(self, force: bool = False) -> None:
        raise NotImplementedError

    def _reload_on_miss_locked(self) -> None:
        self._load_locked()

    def _missing(self, kid: str, sealed: bool) -> str:
        return f"the key {kid} that sealed it is not in {self.where}"

    def primary(self, create: bool = True) -> str | None:
        raise NotImplementedError

    def refresh(self) -> None:
        """Re-read the ring if its source changed: keys another process or gateway made."""
        with self._lock:
            self._reload_on_miss_locked()

    def key_ids(self) -> list[str]:
        """The ids of the ring's keys, oldest first; the last is the primary."""
        with self._lock:
            self._load_locked()
            return list(self._keys)

    # -- sealing ----------------------------------------------------------------------

    def seal(self, plaintext: bytes) -> tuple[str, str]:
        """(key id, token): ``plaintext`` sealed with the primary key as it is now."""
        kid = self.primary(create=True)
        assert kid is not None
        with self._lock:
            fernet = self._keys[kid]
        return kid, fernet.encrypt(plaintext).decode()

    def _get(self, what: str, kid: str, sealed: bool) -> Any:
        """``self.<what>[kid]`` (``_keys`` or ``_raw``; a reload replaces the dicts)."""
        with self._lock:
            found = getattr(self, what).get(kid)
            if found is None:
                self._reload_on_miss_locked()  # made by another process since we last looked
                found = getattr(self, what).get(kid)
        if found is None:
            raise SealError(self._missing(kid, sealed))
        return found

    def open(self, kid: str, token: str) -> bytes:
        """The plaintext of ``token`` sealed by key ``kid``; SealError when that key is not
        in the ring or the token does not verify under it (altered, or another key's)."""
        fernet = self._get("_keys", kid, True)
        try:
            return fernet.decrypt(token.encode())
        except (InvalidToken, UnicodeError):
            raise SealError(f"it does not verify under key {kid}: altered, or sealed with another key") from None

    # -- raw key material (wrapping data keys: lampi.core.sse) ------------------------

    def secret(self, kid: str) -> bytes:
        """The 32 random bytes of key ``kid`` (its Fernet encoding decoded), for callers
        that derive keys of their own from it; SealError when the key is not in the ring."""
        return self._get("_raw", kid, False)

    def primary_secret(self, create: bool = True) -> tuple[str, bytes]:
        """(id, 32 bytes) of the primary key as it is now (made when there is none and
        ``create``); SealError when there is none."""
        kid = self.primary(create=create)
        if kid is None:
            raise SealError(f"there is no {self.prefix} key in {self.where}")
        return kid, self.secret(kid)

    def exists(self) -> bool:
        """Whether the ring has any key (re-reading its source if it changed)."""
        with self._lock:
            self._load_locked()
            return self._primary is not None

    # -- from the event loop: never a read of the source on its thread --------------------
    #
    # The methods above may read the source (a listdir, a query of the keys table) and
    # are for threads and admin commands. A request handler asks through these: what is
    # in memory answers at once; a read (the primary older than FRESH seconds, a key id
    # not in memory, a first key to make) runs on a thread, one at a time per ring, and
    # a miss that a read begun after it already covered does not read again (a burst of
    # tokens no key verifies costs one read at a time, not one each). A ring of files
    # (``_local``) reads on the loop, as before: a listdir of a local directory, as the
    # SQLite store's point lookups run there, so a rotation by ``lampi sse rotate-key`` on
    # one node is taken for the very next write.

    _local = False

    def snapshot(self) -> tuple[tuple[str, ...], dict[str, bytes]]:
        """(key ids oldest first, {id: 32 bytes}) as in memory now; no read."""
        with self._lock:
            return tuple(self._keys), dict(self._raw)

    def _fresh(self) -> bool:
        return self._loaded and time.monotonic() - self._loaded_at < FRESH

    def _async_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        locks: dict[Any, asyncio.Lock] = self.__dict__.setdefault("_alocks", {})
        lock = locks.get(loop)
        if lock is None:
            for old in [k for k in locks if k.is_closed()]:
                del locks[old]
            lock = locks[loop] = asyncio.Lock()
        return lock

    async def _read_off_loop(self, fn: Callable[[], T]) -> T:
        async with self._async_lock():
            return await asyncio.to_thread(fn)

    async def arefresh(self) -> None:
        """``refresh`` for the event loop: a key id met is not in memory; look again,
        unless a read that began since then did."""
        if self._local:
            return self.refresh()
        missed = time.monotonic()
        async with self._async_lock():
            if self._read_began <= missed or not self._loaded:
                await asyncio.to_thread(self.refresh)

    async def aprimary(self, create: bool = True) -> str | None:
        """``primary`` for the event loop: from memory while fresh."""
        if self._local:
            return self.primary(create=create)
        if self._fresh() and (self._primary is not None or not create):
            return self._primary
        return await self._read_off_loop(lambda: self.primary(create=create))

    async def asecret(self, kid: str) -> bytes:
        """``secret`` for the event loop: a key id not in memory is looked for on a thread."""
        if self._local:
            return self.secret(kid)
        found = self._raw.get(kid)
        if found is None:
            await self.arefresh()
            found = self._raw.get(kid)
            if found is None:
                raise SealError(self._missing(kid, False))
        return found

    async def aprimary_secret(self, create: bool = True) -> tuple[str, bytes]:
        kid = await self.aprimary(create=create)
        if kid is None:
            raise SealError(f"there is no {self.prefix} key in {self.where}")
        return kid, await self.asecret(kid)

    async def aexists(self) -> bool:
        if self._local:
            return self.exists()
        if self._fresh():
            return self._primary is not None
        return await self._read_off_loop(self.exists)


class KeyRing(_Ring):
    """The Fernet keys ``<key_dir>/<prefix>-<n>``; thread-safe, shared by a process's
    threads. Keys are read from disk when first needed and again when the directory's
    listing changed (``refresh``) or an unknown key id is met."""

    _local = True  # the a* methods read here, on the loop (a listdir: see _Ring)

    def __init__(self, key_dir: Path, prefix: str = "credential") -> None:
        self.key_dir = Path(key_dir)
        self.prefix = prefix
        self.where = str(self.key_dir)
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
        self._read_began = time.monotonic()
        found = self._scan()
        self._loaded_at = time.monotonic()
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
        self._loaded = True

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

    def _missing(self, kid: str, sealed: bool) -> str:
        what = "that sealed it " if sealed else ""
        return f"the key {kid} {what}is not in {self.key_dir} (restore it from the backup of {self.key_dir})"

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

    def remove(self, kids: Iterable[str], execute: Any = None) -> list[Path]:
        """Delete the files of keys ``kids`` (never the primary); return what was removed.
        (``execute``: for ``StoredKeyRing``'s signature; files are no rows.)"""
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
        return _link_new_file(self.key_dir / f"{self.prefix}-{n}", Fernet.generate_key())


def _link_new_file(path: Path, data: bytes) -> bool:
    """Write ``data`` as ``path`` durably (0600 in a 0700 directory, file and directory
    fsynced) and at once (a temp file linked into place); False, writing nothing, when
    ``path`` exists already (another process won the race)."""
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
            os.link(tmp, path)  # atomic: one process wins
        except FileExistsError:
            return False
    finally:
        os.unlink(tmp)
    fsync_dir(path.parent)
    return True


# -- keys kept in the metadata store, sealed with a master key ---------------------------
#
# Gateways over one PostgreSQL database share their keys through it: table ``keys``, one
# row per key ``(ring, n, kid, sealed)``, ``sealed`` being the key's text sealed (Fernet)
# with the *master key*, which every gateway gets from its configuration and which is
# never stored in the database. A ring is read into memory and re-read when an unknown
# key id is met (another gateway rotated), or at most every ``FRESH`` seconds when its
# primary is asked for. Row ``("master", 0)`` holds a check value sealed with the master
# key: a gateway given another master key refuses to start (``MasterKeyError``).

MASTER_RING = "master"
_CHECK = b"lampi master key check v1"
FRESH = 1.0  # seconds a ring's primary may be taken from memory before the table is re-read
FILE_RINGS = ("fernet", "credential", "sse")  # the files of keys/ a table is filled from, and kms/


class MasterKeyError(Exception):
    """The master key is missing, unreadable, or not the one the stored keys were sealed with."""


class MasterKeyMoved(SealError):
    """A running lampi meets keys sealed with a master key it was not given (the table
    was re-sealed by ``lampi master-key rotate`` after it started)."""


class KeyTable:
    """What a ``StoredKeyRing`` needs from the metadata store: synchronous access to its
    ``keys`` table from any thread (``lampi/store/meta/sqlite/keys.py``, both stores)."""

    def key_rows(self, ring: str) -> list[tuple[int, str, str]]:  # (n, kid, sealed), by n
        raise NotImplementedError

    def insert_key_rows(self, rows: list[tuple[str, int, str, str]], *, fresh_check: bool = False) -> bool:
        """Insert ``(ring, n, kid, sealed)`` rows in one transaction; False (nothing
        inserted) when one of them exists already. ``fresh_check``: the first row is the
        master check row, and the others go in only when it did not exist yet."""
        raise NotImplementedError

    def delete_key_rows(self, ring: str, ns: list[int]) -> int:
        raise NotImplementedError

    def key_rings(self) -> list[str]:
        raise NotImplementedError

    def reseal_key_rows(
        self, change: Callable[[list[tuple[str, int, str, str]]], list[tuple[str, int, str, str]]]
    ) -> tuple[int, int]:
        """In one write transaction: every row ``(ring, n, kid, sealed)`` to ``change``,
        which returns ``(ring, n, old sealed, new sealed)`` for the rows to rewrite (or
        raises: nothing is written); (rows rewritten, rows read)."""
        raise NotImplementedError


@dataclass(frozen=True)
class MasterKeySource:
    """Where a gateway's master key comes from: ``value`` (LAMPI_MASTER_KEY, TOML
    ``master_key``), else the file ``file`` (``master_key_file``), else — no setting —
    ``default_file`` (``<data-dir>/master.key``), made by the first lampi that needs it
    while the database has no keys yet."""

    value: str = ""
    file: str = ""
    default_file: str = ""

    @property
    def configured(self) -> bool:
        return bool(self.value or self.file)

    def describe(self) -> str:
        if self.value:
            return "the master key of LAMPI_MASTER_KEY (setting master_key)"
        return f"the master key file {self.file or self.default_file}"

    def _where(self) -> str:
        return "LAMPI_MASTER_KEY (setting master_key)" if self.value else self.describe()

    def load(self) -> MultiFernet | None:
        """The master keys as one: the first seals, every one opens (a rotation: "new,old");
        None when no setting names one and the default file does not exist yet;
        MasterKeyError when the one named cannot be read or is malformed."""
        keys = self.load_all()
        return None if keys is None else MultiFernet(keys)

    def load_all(self) -> list[Fernet] | None:
        """The master keys given, in order (comma-separated in LAMPI_MASTER_KEY, one a line
        in the file); None as ``load``."""
        if self.value:
            text = self.value.strip().encode()
        else:
            path = Path(self.file or self.default_file)
            try:
                text = path.read_bytes().strip()
            except FileNotFoundError:
                if self.file:
                    raise MasterKeyError(f"the master key file {path} does not exist (setting master_key_file)") \
                        from None
                return None
            except OSError as exc:
                raise MasterKeyError(f"cannot read the master key file {path}: {exc.strerror}") from None
        # keys are URL-safe base64: no comma, no white space in one
        parts = [p for p in re.split(rb"[,\s]+", text) if p]
        if not parts:
            raise MasterKeyError(f"{self._where()} holds no master key (one, or several separated by commas or "
                                 "new lines, as `lampi master-key generate` prints them)")
        keys = []
        for i, part in enumerate(parts):
            try:
                keys.append(Fernet(part))
            except (ValueError, TypeError):
                what = f"key {i + 1} of {len(parts)} of {self._where()}" if len(parts) > 1 else self.describe()
                raise MasterKeyError(f"{what} is not a master key (44 characters of URL-safe "
                                     "base64, as `lampi master-key generate` prints)") from None
        return keys

    def generate(self) -> MultiFernet:
        """Make the default master key file (0600), unless another process just did."""
        path = Path(self.default_file)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}-{os.getpid()}-{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(Fernet.generate_key() + b"\n")
                fh.flush()
                os.fsync(fh.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)  # atomic: one process wins
        finally:
            os.unlink(tmp)
        fsync_dir(path.parent)
        loaded = self.load()
        assert loaded is not None
        return loaded


class StoredKeyRing(_Ring):
    """A ring of Fernet keys in the metadata store's ``keys`` table (``ring`` = the file
    prefix it replaces: ``fernet``, ``credential``, ``sse``, ``kms/<name>``), each sealed
    with the master key. The same methods as ``KeyRing``; thread-safe."""

    def __init__(self, keys: StoredKeys, ring: str) -> None:
        self._store = keys
        self.prefix = ring
        self.where = f"the keys table of the metadata store (ring {ring})"
        self._lock = threading.Lock()
        self._rows: tuple[tuple[int, str], ...] | None = None
        self._keys: dict[str, Fernet] = {}
        self._raw: dict[str, bytes] = {}
        self._ns: dict[str, int] = {}
        self._primary: str | None = None
        self._loaded_at = 0.0

    def _load_locked(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and self._rows is not None and now - self._loaded_at < FRESH:
            return
        self._read_began = now
        try:
            rows = self._store.table.key_rows(self.prefix)
        except Exception:
            if force or self._rows is None:
                raise
            # the periodic look (not a missing key): the database is away; go on with the
            # keys in memory for another FRESH seconds rather than wait for it each time
            self._loaded_at = time.monotonic()
            return
        self._loaded_at = time.monotonic()
        listing = tuple((n, kid) for n, kid, _ in rows)
        if listing == self._rows:
            return
        master = self._store.master()
        keys: dict[str, Fernet] = {}
        raws: dict[str, bytes] = {}
        ns: dict[str, int] = {}
        primary = None
        for n, kid, sealed in rows:
            try:
                text = self._store.unseal_key(self.prefix, n, sealed, master)
            except SealError:
                self._store.check_master_unchanged()  # re-sealed with another master key since we started?
                raise
            if key_id(text) != kid:
                raise SealError(f"key {self.prefix}-{n} of {self.where} does not match its id {kid}")
            keys[kid], raws[kid], ns[kid] = Fernet(text), base64.urlsafe_b64decode(text), n
            primary = kid
        self._keys, self._raw, self._ns, self._primary, self._rows = keys, raws, ns, primary, listing
        self._loaded = True

    def _reload_on_miss_locked(self) -> None:
        # one indexed read: no more than the revocation check every token validation does
        self._load_locked(force=True)

    def primary(self, create: bool = True) -> str | None:
        with self._lock:
            self._load_locked()
            if self._primary is None and create:
                self._add_locked(0)
            return self._primary

    def add_key(self) -> str:
        with self._lock:
            self._load_locked(force=True)
            self._add_locked(max(self._ns.values(), default=-1) + 1)
            assert self._primary is not None
            return self._primary

    def _add_locked(self, n: int) -> None:
        """Insert a new key as number ``n`` or, when another gateway took that number,
        the next free one; then re-read the ring."""
        master = self._store.master()
        while True:
            text = Fernet.generate_key()
            row = (self.prefix, n, key_id(text), self._store.seal_key(self.prefix, n, text, master))
            if self._store.table.insert_key_rows([row]):
                break
            self._load_locked(force=True)
            n = max(max(self._ns.values(), default=-1) + 1, n + 1)
        self._load_locked(force=True)

    def remove(self, kids: Iterable[str], execute: Any = None) -> list[str]:
        """Delete keys ``kids`` (never the primary); return what was removed. ``execute``:
        a statement runner of the caller's transaction (the credentials table locked) to
        delete the rows in, rather than a transaction of their own."""
        with self._lock:
            self._load_locked(force=True)
            gone = [(kid, self._ns[kid]) for kid in kids if kid in self._ns and kid != self._primary]
            if gone and execute is not None:
                for _, n in gone:
                    execute("DELETE FROM keys WHERE ring = ? AND n = ?", (self.prefix, n))
                self._rows, self._loaded_at, self._loaded = None, 0.0, False  # re-read at the next use (after the commit)
            elif gone:
                self._store.table.delete_key_rows(self.prefix, [n for _, n in gone])
                self._load_locked(force=True)
        return [f"{self.prefix}-{n} ({kid})" for kid, n in gone]


class FileKeys:
    """The rings of one node: files under ``<data-dir>/keys`` (SQLite, no master key)."""

    shared = False

    def __init__(self, key_dir: Path) -> None:
        self.key_dir = Path(key_dir)
        self.where = str(self.key_dir)
        self._rings: dict[str, KeyRing] = {}
        self._lock = threading.Lock()

    def ring(self, name: str) -> KeyRing:
        with self._lock:
            ring = self._rings.get(name)
            if ring is None:
                if name.startswith("kms/"):
                    ring = KeyRing(self.key_dir / "kms", name[4:])
                else:
                    ring = KeyRing(self.key_dir, name)
                self._rings[name] = ring
            return ring

    def kms_names(self) -> list[str]:
        try:
            files = os.listdir(self.key_dir / "kms")
        except FileNotFoundError:
            return []
        return sorted({n.rsplit("-", 1)[0] for n in files if re.fullmatch(r".+-\d+", n) and not n.startswith(".")})

    def check(self) -> None:
        """Nothing to check: the files are this node's own."""


class StoredKeys:
    """The rings of a metadata store's ``keys`` table, sealed with the master key."""

    shared = True

    def __init__(self, table: KeyTable, source: MasterKeySource, import_dir: Path | None = None) -> None:
        self.table = table
        self.source = source
        self.import_dir = import_dir  # keys/ files copied into an empty table (stores from before)
        self.where = "the metadata store (sealed with the master key)"
        self._master: MultiFernet | None = None
        self.imported: list[str] = []  # the key files this process copied into the table
        self._rings: dict[str, StoredKeyRing] = {}
        self._lock = threading.Lock()

    # -- the master key -----------------------------------------------------------------

    def master(self) -> MultiFernet:
        with self._lock:
            if self._master is None:
                self._master = self._open_master()
            return self._master

    def check(self) -> None:
        """Load and verify the master key now (``lampi serve``'s start, admin commands):
        MasterKeyError, with one line saying what to do, when it cannot be used."""
        self.master()

    def _open_master(self) -> MultiFernet:
        given = self.source.load_all()
        master, count = (MultiFernet(given), len(given)) if given else (None, 0)
        rows = self.table.key_rows(MASTER_RING)
        if not rows:  # a store without keys yet: this lampi sets the master key
            if master is None:
                master = self.source.generate()
            check = (MASTER_RING, 0, "check", master.encrypt(_CHECK).decode())
            imports = self._imports(master)
            if self.table.insert_key_rows([check, *imports], fresh_check=True):
                self.imported = [f"{ring}-{n}" for ring, n, _, _ in imports]
                return master
            rows = self.table.key_rows(MASTER_RING)  # another gateway was first
        if master is None:
            raise MasterKeyError(
                "the metadata store's keys are sealed with a master key this lampi was not given: set "
                "LAMPI_MASTER_KEY or master_key_file (--master-key-file) to the cluster's master key "
                f"(the first gateway wrote it to its data dir's master.key) [looked for {self.source.default_file}]")
        try:
            ok = master.decrypt(rows[0][2].encode()) == _CHECK
        except (InvalidToken, UnicodeError):
            ok = False
        if not ok:
            if count == 1:
                raise MasterKeyError(f"{self.source.describe()} is not the master key the metadata store's keys "
                                     "were sealed with: give every gateway the same master key")
            raise MasterKeyError(f"none of the {count} master keys of {self.source._where()} is the master key the "
                                 "metadata store's keys were sealed with: give every gateway the same master key")
        return master

    def check_master_unchanged(self) -> None:
        """``MasterKeyMoved`` when the check row no longer opens with this process's master
        keys: the table was re-sealed (``lampi master-key rotate``) with a key it lacks."""
        master = self.master()
        rows = self.table.key_rows(MASTER_RING)
        try:
            ok = bool(rows) and master.decrypt(rows[0][2].encode()) == _CHECK
        except (InvalidToken, UnicodeError):
            ok = False
        if not ok:
            raise MasterKeyMoved(
                "the metadata store's keys were re-sealed with a master key this lampi was not given (`lampi "
                "master-key rotate`): restart it with the new master key first in LAMPI_MASTER_KEY or master_key_file")

    def rotate_master(self) -> tuple[int, int]:
        """Re-seal every row of the keys table sealed with another of the given master
        keys with the first one, in one transaction: (rows re-sealed, rows in the table).
        Idempotent (a row the first key opens is left alone). MasterKeyError, nothing
        changed, when a row opens with none of the keys."""
        keys = self.source.load_all()
        if keys is None:
            raise MasterKeyError("no master key given: set LAMPI_MASTER_KEY or master_key_file (--master-key-file) "
                                 "to the new master key, then the old one (\"new,old\")")
        first, others = keys[0], keys[1:]

        def change(rows: list[tuple[str, int, str, str]]) -> list[tuple[str, int, str, str]]:
            out = []
            for ring, n, _kid, sealed in rows:
                try:
                    first.decrypt(sealed.encode())
                    continue  # sealed with the first key already
                except (InvalidToken, UnicodeError):
                    pass
                for key in others:
                    try:
                        plain = key.decrypt(sealed.encode())
                        break
                    except (InvalidToken, UnicodeError):
                        continue
                else:
                    raise MasterKeyError(
                        f"row {ring}-{n} of the keys table opens with none of the {len(keys)} master key(s) given: "
                        "give the new master key first, then the one the keys are sealed with now; nothing changed")
                out.append((ring, n, sealed, first.encrypt(plain).decode()))
            return out

        resealed, total = self.table.reseal_key_rows(change)
        with self._lock:
            self._master = None  # opened again at the next use
        return resealed, total

    def _imports(self, master: MultiFernet) -> list[tuple[str, int, str, str]]:
        """Rows for the key files of ``import_dir`` (keys/ of a store from before keys
        moved into the metadata store), numbers and ids kept: what they sealed still opens."""
        if self.import_dir is None:
            return []
        rows = []
        files = [(name, self.import_dir) for name in FILE_RINGS]
        kms = self.import_dir / "kms"
        names = FileKeys(self.import_dir).kms_names()
        files += [(f"kms/{n}", kms) for n in names]
        for ring, directory in files:
            prefix = ring.rsplit("/", 1)[-1]
            for n, path in KeyRing(directory, prefix)._scan():
                text = path.read_bytes().strip()
                try:
                    Fernet(text)  # refuse a malformed file here, not at first use
                except ValueError:
                    raise MasterKeyError(f"cannot copy {path} into the metadata store: it is not a Fernet key "
                                         "(restore it from a backup, or remove it)") from None
                rows.append((ring, n, key_id(text), self.seal_key(ring, n, text, master)))
        return rows

    @staticmethod
    def seal_key(ring: str, n: int, text: bytes, master: Fernet | MultiFernet) -> str:
        return master.encrypt(json.dumps([ring, n, text.decode()]).encode()).decode()

    @staticmethod
    def unseal_key(ring: str, n: int, sealed: str, master: Fernet | MultiFernet) -> bytes:
        try:
            got = json.loads(master.decrypt(sealed.encode()))
        except (InvalidToken, UnicodeError, ValueError):
            raise SealError(f"key {ring}-{n} does not open with the master key (altered)") from None
        if not (isinstance(got, list) and len(got) == 3 and got[0] == ring and got[1] == n):
            raise SealError(f"the row of key {ring}-{n} holds another key")
        return str(got[2]).encode()

    # -- rings ----------------------------------------------------------------------------

    def ring(self, name: str) -> StoredKeyRing:
        with self._lock:
            ring = self._rings.get(name)
            if ring is None:
                ring = self._rings[name] = StoredKeyRing(self, name)
            return ring

    def kms_names(self) -> list[str]:
        return sorted(r[4:] for r in self.table.key_rings() if r.startswith("kms/"))

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
        # made meanwhile: the same key, or refuse
        if not _link_new_file(path, data) and path.read_bytes().strip() != data.strip():
            raise SealError(f"{path} exists with another key")
    return len(todo)
