"""SQLite MetaStore for one node.

WAL journal with ``synchronous=FULL``: a committed transaction is on disk before the
client hears 2xx. Several worker processes share one database file; writes take
``BEGIN IMMEDIATE`` so counters stay exact under concurrent writers. Reads run on one
dedicated thread per process and write transactions on another (each with its own
connection; a sqlite3 connection belongs to its thread), so the event loop never blocks
on the database and reads never wait for a commit's fsync. Concurrent write
transactions are group-committed (see ``_tx``).

Token revocations live in a second small database file so that workers can notice a
new revocation with ``PRAGMA data_version`` (no query on the hot path).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, TypeVar

from lampi.core import errors
from lampi.core.versions import DELETE_MARKER, EMPTY_MD5, version_id
from lampi.core.models import (
    Account,
    Container,
    Credential,
    Domain,
    ListingEntry,
    ListParams,
    ManifestInfo,
    MultipartUpload,
    ObjectRecord,
    Project,
    UploadPart,
    User,
)

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS domains (
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, enabled INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS projects (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, domain_id TEXT NOT NULL REFERENCES domains(id),
    description TEXT NOT NULL DEFAULT '', enabled INTEGER NOT NULL DEFAULT 1,
    UNIQUE (domain_id, name)
);
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, domain_id TEXT NOT NULL REFERENCES domains(id),
    password_hash TEXT NOT NULL, enabled INTEGER NOT NULL DEFAULT 1, default_project_id TEXT,
    UNIQUE (domain_id, name)
);
CREATE TABLE IF NOT EXISTS assignments (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    PRIMARY KEY (user_id, project_id, role)
);
CREATE TABLE IF NOT EXISTS accounts (
    project_id TEXT PRIMARY KEY, meta TEXT NOT NULL DEFAULT '{}', created_at REAL NOT NULL,
    container_count INTEGER NOT NULL DEFAULT 0, object_count INTEGER NOT NULL DEFAULT 0,
    bytes_used INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS containers (
    name TEXT PRIMARY KEY, project_id TEXT NOT NULL, created_at REAL NOT NULL,
    put_timestamp REAL NOT NULL, updated_at REAL NOT NULL, meta TEXT NOT NULL DEFAULT '{}',
    object_count INTEGER NOT NULL DEFAULT 0, bytes_used INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS containers_by_project ON containers (project_id, name);
CREATE TABLE IF NOT EXISTS objects (
    container TEXT NOT NULL, name TEXT NOT NULL, blob_id TEXT NOT NULL, size INTEGER NOT NULL,
    etag TEXT NOT NULL, content_type TEXT NOT NULL, last_modified REAL NOT NULL,
    data_timestamp REAL NOT NULL, meta TEXT NOT NULL DEFAULT '{}',
    sysmeta TEXT NOT NULL DEFAULT '{}', delete_at INTEGER, manifest TEXT,
    PRIMARY KEY (container, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS objects_by_blob ON objects (blob_id);
CREATE TABLE IF NOT EXISTS credentials (
    access TEXT PRIMARY KEY, secret TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS credentials_by_user ON credentials (user_id);
-- the background expirer's scan (lampi/bg/expirer.py)
CREATE INDEX IF NOT EXISTS objects_by_delete_at ON objects (delete_at) WHERE delete_at IS NOT NULL;
-- per-project quota overrides (lampi project set-quota); NULL = the configured default
CREATE TABLE IF NOT EXISTS project_quotas (
    project_id TEXT PRIMARY KEY, max_bytes INTEGER, max_containers INTEGER,
    max_objects_per_container INTEGER
);
-- S3 multipart uploads in progress and their parts (lampi/core/multipart.py). Upload
-- ids sort by creation time, so (container, name, upload_id) is S3's listing order.
CREATE TABLE IF NOT EXISTS mpu_uploads (
    upload_id TEXT PRIMARY KEY, container TEXT NOT NULL, name TEXT NOT NULL,
    project_id TEXT NOT NULL, initiated REAL NOT NULL, content_type TEXT NOT NULL,
    meta TEXT NOT NULL DEFAULT '{}', sysmeta TEXT NOT NULL DEFAULT '{}',
    checksum_alg TEXT, checksum_type TEXT, owner TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS mpu_uploads_by_key ON mpu_uploads (container, name, upload_id);
CREATE TABLE IF NOT EXISTS mpu_parts (
    upload_id TEXT NOT NULL, part_number INTEGER NOT NULL, blob_id TEXT NOT NULL,
    size INTEGER NOT NULL, etag TEXT NOT NULL, last_modified REAL NOT NULL, checksum TEXT,
    PRIMARY KEY (upload_id, part_number)
) WITHOUT ROWID;
-- part blobs owned by a completed upload's manifest (its body blob is ``owner``); they
-- count as referenced only while an object still refers to the owner
CREATE TABLE IF NOT EXISTS manifest_parts (
    owner TEXT NOT NULL, blob_id TEXT NOT NULL, PRIMARY KEY (owner, blob_id)
) WITHOUT ROWID;
-- object versioning (lampi/core/versions.py): every version of an object of a versioned
-- container, each owning its blob ('' for a delete marker); objects.version_id set means
-- the current object points at (shares the blob of) that version
CREATE TABLE IF NOT EXISTS object_versions (
    container TEXT NOT NULL, name TEXT NOT NULL, version_id TEXT NOT NULL, blob_id TEXT NOT NULL,
    size INTEGER NOT NULL, etag TEXT NOT NULL, content_type TEXT NOT NULL, last_modified REAL NOT NULL,
    data_timestamp REAL NOT NULL, meta TEXT NOT NULL DEFAULT '{}', sysmeta TEXT NOT NULL DEFAULT '{}',
    delete_at INTEGER, manifest TEXT,
    PRIMARY KEY (container, name, version_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS object_versions_by_blob ON object_versions (blob_id);
"""

# Identity generation: a counter that moves, in the same transaction, whenever a
# credential, user, project or role assignment is written (cascades included). Workers
# cache what an S3 access key resolves to (lampi.s3.sigv4) and read this counter per
# request on a dedicated connection, without a thread hop (``identity_generation``): a
# deleted key, disabled user or revoked role is refused at once on every worker. No row
# means 0, so opening a connection (which runs this schema) never writes.
SCHEMA += "CREATE TABLE IF NOT EXISTS identity_gen (id INTEGER PRIMARY KEY CHECK (id = 0), gen INTEGER NOT NULL);\n"
SCHEMA += "".join(
    f"CREATE TRIGGER IF NOT EXISTS identity_gen_{_t}_{_op.lower()} AFTER {_op} ON {_t} BEGIN "
    "INSERT OR REPLACE INTO identity_gen (id, gen) "
    "VALUES (0, COALESCE((SELECT gen FROM identity_gen WHERE id = 0), 0) + 1); END;\n"
    for _t in ("credentials", "users", "projects", "assignments") for _op in ("INSERT", "UPDATE", "DELETE")
)

REVOKE_SCHEMA = """
CREATE TABLE IF NOT EXISTS revoked (audit_id TEXT PRIMARY KEY, expires_at REAL NOT NULL);
"""

_LIST_BATCH = 1000


def _after(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix``.

    None when there is none (``prefix`` is all U+10FFFF). Code points are stepped over
    the surrogate block, which no (UTF-8) name can hold and sqlite3 cannot bind.
    """
    while prefix:
        nxt = ord(prefix[-1]) + 1
        if nxt <= 0x10FFFF:
            if 0xD800 <= nxt <= 0xDFFF:
                nxt = 0xE000
            return prefix[:-1] + chr(nxt)
        prefix = prefix[:-1]
    return None


def fold_listing(
    fetch: Callable[[str | None, bool, str | None, bool, int], list[tuple[Any, ...]]],
    params: ListParams,
    make: Callable[[tuple[Any, ...]], ListingEntry],
) -> list[ListingEntry]:
    """Swift listing semantics over ordered range scans.

    ``fetch(lower, lower_inclusive, upper, upper_inclusive, n)`` returns up to ``n`` rows
    (name first) ordered by name — descending when ``params.reverse``. Prefix,
    delimiter (subdir folding), marker, end_marker, limit and reverse are applied here
    without ever loading more than one batch.
    """
    prefix, delim, limit = params.prefix, params.delimiter, params.limit
    out: list[ListingEntry] = []
    if limit <= 0:
        return out
    # Swift swaps the markers for a reverse listing and skips a subdir equal to the
    # (swapped) marker, i.e. to the exclusive *lower* bound in both directions.
    skip_subdir = params.end_marker if params.reverse else params.marker
    pupper = _after(prefix) if prefix else None
    if not params.reverse:
        lower: str | None = prefix or None
        lower_inc = True
        if params.marker and (lower is None or params.marker >= lower):
            lower, lower_inc = params.marker, False
        upper: str | None = params.end_marker or None
        if pupper is not None and (upper is None or pupper < upper):
            upper = pupper
        upper_inc = False
    else:
        # reverse: marker is the exclusive upper bound, end_marker the exclusive lower
        upper = params.marker or None
        upper_inc = False
        if pupper is not None and (upper is None or pupper < upper):
            upper = pupper
        lower = params.end_marker or None
        lower_inc = False
        if prefix and (lower is None or prefix > lower):
            lower, lower_inc = prefix, True
    while len(out) < limit:
        want = min(_LIST_BATCH, limit - len(out))
        rows = fetch(lower, lower_inc, upper, upper_inc, want)
        if not rows:
            break
        moved = False
        for row in rows:
            name = row[0]
            if prefix and not name.startswith(prefix):
                return out
            if delim:
                idx = name.find(delim, len(prefix))
                if idx >= 0:
                    subdir = name[: idx + len(delim)]
                    if subdir != skip_subdir:
                        out.append(ListingEntry(name=subdir, is_subdir=True))
                    if not params.reverse:
                        lower, lower_inc = _after(subdir), True
                        if lower is None:  # nothing sorts after this subdir
                            return out
                    else:
                        upper, upper_inc = subdir, False
                    moved = True
                    break
            out.append(make(row))
            if len(out) >= limit:
                return out
            if not params.reverse:
                lower, lower_inc = name, False
            else:
                upper, upper_inc = name, False
        if not moved and len(rows) < want:
            break
    return out


class SQLiteMetaStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._local = threading.local()
        self._revoke_path = self.path.with_name("revocations.db")
        self._revoked: set[str] = set()
        self._revoke_version: int | None = None
        self._revoke_lock = threading.Lock()
        self._revoke_conn = self._open(self._revoke_path, REVOKE_SCHEMA, check_same_thread=False)
        # create the schema once, synchronously, so start-up errors surface at once
        conn = self._open(self.path, SCHEMA)
        self._migrate(conn)
        conn.close()
        # read on the event loop (see identity_generation): a plain read, short busy wait
        self._gen_lock = threading.Lock()
        self._gen_conn = sqlite3.connect(str(self.path), timeout=1, isolation_level=None, check_same_thread=False)
        # write transactions: one writer thread per process, started on first use
        self._wq: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._writer_pid = 0
        self._writer_lock = threading.Lock()

    # -- plumbing ---------------------------------------------------------------

    # Columns added after the first release: (table, column, definition). Data dirs
    # created before them get the column by a guarded ALTER TABLE at start-up.
    _ADDED_COLUMNS = (("objects", "manifest", "TEXT"), ("objects", "version_id", "TEXT"))

    @classmethod
    def _migrate(cls, conn: sqlite3.Connection) -> None:
        for table, column, decl in cls._ADDED_COLUMNS:
            have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
            if column in have:
                continue
            try:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
            except sqlite3.OperationalError as exc:  # another worker added it first
                if "duplicate column" not in str(exc):
                    raise

    @staticmethod
    def _open(path: Path, schema: str, check_same_thread: bool = True) -> sqlite3.Connection:
        conn = sqlite3.connect(
            str(path), timeout=60, isolation_level=None, check_same_thread=check_same_thread
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=60000")
        for attempt in range(50):
            try:
                conn.executescript(schema)
                break
            except sqlite3.OperationalError as exc:  # concurrent first start of workers
                if "locked" not in str(exc) or attempt == 49:
                    raise
                time.sleep(0.05)
        return conn

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open(self.path, SCHEMA)
            self._local.conn = conn
        return conn

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(self._conn()))

    def run_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on the store's thread from synchronous code (CLI)."""
        return self._executor.submit(lambda: fn(self._conn())).result()

    @staticmethod
    def _write(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    async def _tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in a write transaction; returns once it is committed (durable).

        Group commit: write transactions run on their own thread and connection. Each
        WAL commit costs an fsync (``synchronous=FULL``); under concurrent writes the
        thread takes every transaction already queued (up to ``_GROUP_MAX``) and runs them
        in one ``BEGIN IMMEDIATE ... COMMIT``, each inside its own SAVEPOINT, so a failing
        one is rolled back alone, exactly as if it had run by itself. No caller hears
        back before that COMMIT has returned, so acknowledged still means durable; no
        delay is added to wait for company (a lone write commits at once). Reads stay on
        the other thread and connection, so they no longer queue behind a commit's fsync
        (WAL readers see the last committed state).
        """
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._start_writer()
        self._wq.put((fn, fut))
        return await asyncio.wrap_future(fut)

    _GROUP_MAX = 64

    def _start_writer(self) -> None:
        if self._writer is not None and self._writer_pid == os.getpid():
            return
        with self._writer_lock:
            if self._writer is None or self._writer_pid != os.getpid():  # none yet, or forked
                self._wq = queue.SimpleQueue()
                self._writer = threading.Thread(target=self._writer_loop, args=(self._wq,),
                                                name="sqlite-writer", daemon=True)
                self._writer_pid = os.getpid()
                self._writer.start()

    def _writer_loop(self, wq: queue.SimpleQueue[Any]) -> None:
        conn: sqlite3.Connection | None = None
        stop = False
        while not stop:
            job = wq.get()
            if job is None:
                break
            batch = [job]
            while len(batch) < self._GROUP_MAX:
                try:
                    job = wq.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                batch.append(job)
            # a caller cancelled before its turn: skip it (as a not yet started executor job)
            batch = [(fn, fut) for fn, fut in batch if fut.set_running_or_notify_cancel()]
            if not batch:
                continue
            results: list[tuple[bool, Any]] = []
            try:
                if conn is None:
                    conn = self._open(self.path, SCHEMA)
                if len(batch) == 1:  # the common case at low concurrency: no savepoint
                    results.append((True, self._write(conn, batch[0][0])))
                else:
                    conn.execute("BEGIN IMMEDIATE")
                    for fn, _fut in batch:
                        conn.execute("SAVEPOINT grouped")
                        try:
                            r = fn(conn)
                        except Exception as exc:
                            conn.execute("ROLLBACK TO grouped")
                            conn.execute("RELEASE grouped")
                            results.append((False, exc))
                        else:
                            conn.execute("RELEASE grouped")
                            results.append((True, r))
                    conn.execute("COMMIT")
            except BaseException as exc:  # BEGIN/COMMIT failed, or a lone write raised
                if conn is not None and conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                for _fn, fut in batch:
                    fut.set_exception(exc)
                continue
            for (_fn, fut), (ok, value) in zip(batch, results):
                if ok:
                    fut.set_result(value)
                else:
                    fut.set_exception(value)
        if conn is not None:
            conn.close()

    def _stop_writer(self) -> None:
        if self._writer is not None and self._writer_pid == os.getpid():
            self._wq.put(None)
            self._writer.join()
            self._writer = None

    async def close(self) -> None:
        def _close(conn: sqlite3.Connection) -> None:
            conn.close()
            self._local.conn = None

        try:
            await self._run(_close)
        finally:
            self._executor.shutdown(wait=True)
            self._stop_writer()
            self._revoke_conn.close()
            self._gen_conn.close()

    # -- identity ---------------------------------------------------------------

    @staticmethod
    def _domain(row: tuple[Any, ...] | None) -> Domain | None:
        return Domain(row[0], row[1], bool(row[2])) if row else None

    @staticmethod
    def _project(row: tuple[Any, ...] | None) -> Project | None:
        return Project(row[0], row[1], row[2], row[3], bool(row[4])) if row else None

    @staticmethod
    def _user(row: tuple[Any, ...] | None) -> User | None:
        return User(row[0], row[1], row[2], row[3], bool(row[4]), row[5]) if row else None

    async def create_domain(self, domain: Domain) -> Domain:
        def fn(c: sqlite3.Connection) -> Domain:
            try:
                c.execute(
                    "INSERT INTO domains (id, name, enabled) VALUES (?, ?, ?)",
                    (domain.id, domain.name, int(domain.enabled)),
                )
            except sqlite3.IntegrityError:
                raise errors.Conflict(f"domain {domain.name!r} exists") from None
            return domain

        return await self._tx(fn)

    async def get_domain(self, id_or_name: str) -> Domain | None:
        return await self._run(
            lambda c: self._domain(
                c.execute(
                    "SELECT id, name, enabled FROM domains WHERE id = ? OR name = ? "
                    "ORDER BY id = ? DESC LIMIT 1",
                    (id_or_name, id_or_name, id_or_name),
                ).fetchone()
            )
        )

    _PCOLS = "id, name, domain_id, description, enabled"
    _UCOLS = "id, name, domain_id, password_hash, enabled, default_project_id"

    async def create_project(self, project: Project) -> Project:
        def fn(c: sqlite3.Connection) -> Project:
            try:
                c.execute(
                    f"INSERT INTO projects ({self._PCOLS}) VALUES (?, ?, ?, ?, ?)",
                    (project.id, project.name, project.domain_id, project.description, int(project.enabled)),
                )
            except sqlite3.IntegrityError:
                raise errors.Conflict(f"project {project.name!r} exists") from None
            c.execute(
                "INSERT OR IGNORE INTO accounts (project_id, created_at) VALUES (?, ?)",
                (project.id, time.time()),
            )
            return project

        return await self._tx(fn)

    async def get_project(self, project_id: str) -> Project | None:
        return await self._run(
            lambda c: self._project(
                c.execute(f"SELECT {self._PCOLS} FROM projects WHERE id = ?", (project_id,)).fetchone()
            )
        )

    async def find_project(self, name: str, domain_id: str) -> Project | None:
        return await self._run(
            lambda c: self._project(
                c.execute(
                    f"SELECT {self._PCOLS} FROM projects WHERE name = ? AND domain_id = ?",
                    (name, domain_id),
                ).fetchone()
            )
        )

    async def list_projects(self) -> list[Project]:
        return await self._run(
            lambda c: [
                self._project(r)  # type: ignore[misc]
                for r in c.execute(f"SELECT {self._PCOLS} FROM projects ORDER BY name").fetchall()
            ]
        )

    async def delete_project(self, project_id: str) -> None:
        def fn(c: sqlite3.Connection) -> None:
            n = c.execute(
                "SELECT COUNT(*) FROM containers WHERE project_id = ?", (project_id,)
            ).fetchone()[0]
            if n:
                raise errors.Conflict(f"project still has {n} container(s); delete them first")
            if not c.execute("DELETE FROM projects WHERE id = ?", (project_id,)).rowcount:
                raise errors.NotFound("project not found")
            c.execute("DELETE FROM accounts WHERE project_id = ?", (project_id,))

        await self._tx(fn)

    async def create_user(self, user: User) -> User:
        def fn(c: sqlite3.Connection) -> User:
            try:
                c.execute(
                    f"INSERT INTO users ({self._UCOLS}) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        user.id,
                        user.name,
                        user.domain_id,
                        user.password_hash,
                        int(user.enabled),
                        user.default_project_id,
                    ),
                )
            except sqlite3.IntegrityError:
                raise errors.Conflict(f"user {user.name!r} exists") from None
            return user

        return await self._tx(fn)

    async def get_user(self, user_id: str) -> User | None:
        return await self._run(
            lambda c: self._user(
                c.execute(f"SELECT {self._UCOLS} FROM users WHERE id = ?", (user_id,)).fetchone()
            )
        )

    async def find_user(self, name: str, domain_id: str) -> User | None:
        return await self._run(
            lambda c: self._user(
                c.execute(
                    f"SELECT {self._UCOLS} FROM users WHERE name = ? AND domain_id = ?",
                    (name, domain_id),
                ).fetchone()
            )
        )

    async def list_users(self) -> list[User]:
        return await self._run(
            lambda c: [
                self._user(r)  # type: ignore[misc]
                for r in c.execute(f"SELECT {self._UCOLS} FROM users ORDER BY name").fetchall()
            ]
        )

    async def delete_user(self, user_id: str) -> None:
        def fn(c: sqlite3.Connection) -> None:
            if not c.execute("DELETE FROM users WHERE id = ?", (user_id,)).rowcount:
                raise errors.NotFound("user not found")

        await self._tx(fn)

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        def fn(c: sqlite3.Connection) -> None:
            if not c.execute(
                "UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id)
            ).rowcount:
                raise errors.NotFound("user not found")

        await self._tx(fn)

    async def grant_role(self, user_id: str, project_id: str, role: str) -> None:
        await self._tx(
            lambda c: c.execute(
                "INSERT OR IGNORE INTO assignments (user_id, project_id, role) VALUES (?, ?, ?)",
                (user_id, project_id, role),
            )
        )

    async def revoke_role(self, user_id: str, project_id: str, role: str) -> None:
        def fn(c: sqlite3.Connection) -> None:
            if not c.execute(
                "DELETE FROM assignments WHERE user_id = ? AND project_id = ? AND role = ?",
                (user_id, project_id, role),
            ).rowcount:
                raise errors.NotFound("role assignment not found")

        await self._tx(fn)

    async def roles_for(self, user_id: str, project_id: str) -> list[str]:
        return await self._run(
            lambda c: [
                r[0]
                for r in c.execute(
                    "SELECT role FROM assignments WHERE user_id = ? AND project_id = ? ORDER BY role",
                    (user_id, project_id),
                ).fetchall()
            ]
        )

    async def projects_for_user(self, user_id: str) -> list[Project]:
        return await self._run(
            lambda c: [
                self._project(r)  # type: ignore[misc]
                for r in c.execute(
                    f"SELECT DISTINCT {', '.join('p.' + x.strip() for x in self._PCOLS.split(','))} "
                    "FROM projects p JOIN assignments a ON a.project_id = p.id "
                    "WHERE a.user_id = ? ORDER BY p.name",
                    (user_id,),
                ).fetchall()
            ]
        )

    async def revoke_token(self, audit_id: str, expires_at: float) -> None:
        def fn() -> None:
            with self._revoke_lock:
                c = self._revoke_conn
                c.execute("BEGIN IMMEDIATE")
                c.execute(
                    "INSERT OR REPLACE INTO revoked (audit_id, expires_at) VALUES (?, ?)",
                    (audit_id, expires_at),
                )
                c.execute("DELETE FROM revoked WHERE expires_at < ?", (time.time() - 3600,))
                c.execute("COMMIT")
                # data_version only moves for other connections' commits: reload ours now
                self._revoke_version = None

        await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def revoked_tokens(self) -> set[str]:
        """The revoked token audit ids; re-read only when another connection wrote."""
        with self._revoke_lock:
            version = self._revoke_conn.execute("PRAGMA data_version").fetchone()[0]
            if version != self._revoke_version:
                rows = self._revoke_conn.execute("SELECT audit_id FROM revoked").fetchall()
                self._revoked = {r[0] for r in rows}
                self._revoke_version = version
            return self._revoked

    def identity_generation(self) -> int:
        """The identity generation (see ``identity_gen`` in the schema), read synchronously:
        one indexed row on a WAL database, a few microseconds, cheaper than a thread hop.
        Raises sqlite3.Error if the database is busy; callers then skip their cache."""
        with self._gen_lock:
            row = self._gen_conn.execute("SELECT gen FROM identity_gen WHERE id = 0").fetchone()
        return row[0] if row else 0

    # -- accounts and containers ------------------------------------------------

    async def get_account(self, project_id: str) -> Account:
        def fn(c: sqlite3.Connection) -> Account:
            row = c.execute(
                "SELECT project_id, meta, created_at, container_count, object_count, bytes_used "
                "FROM accounts WHERE project_id = ?",
                (project_id,),
            ).fetchone()
            if row is None:
                raise errors.AccountNotFound()
            return Account(row[0], json.loads(row[1]), row[2], row[3], row[4], row[5])

        return await self._run(fn)

    @staticmethod
    def _merge_meta(current: str, updates: dict[str, str | None]) -> str:
        meta = json.loads(current)
        for k, v in updates.items():
            if v is None or v == "":
                meta.pop(k, None)
            else:
                meta[k] = v
        return json.dumps(meta)

    async def update_account_meta(self, project_id: str, updates: dict[str, str | None]) -> None:
        def fn(c: sqlite3.Connection) -> None:
            row = c.execute("SELECT meta FROM accounts WHERE project_id = ?", (project_id,)).fetchone()
            if row is None:
                raise errors.AccountNotFound()
            c.execute(
                "UPDATE accounts SET meta = ? WHERE project_id = ?",
                (self._merge_meta(row[0], updates), project_id),
            )

        await self._tx(fn)

    async def list_containers(self, project_id: str, params: ListParams) -> list[ListingEntry]:
        def fn(c: sqlite3.Connection) -> list[ListingEntry]:
            def fetch(lo: str | None, lo_inc: bool, hi: str | None, hi_inc: bool, n: int) -> list[Any]:
                sql = "SELECT name, object_count, bytes_used, put_timestamp FROM containers WHERE project_id = ?"
                args: list[Any] = [project_id]
                if lo is not None:
                    sql += " AND name >= ?" if lo_inc else " AND name > ?"
                    args.append(lo)
                if hi is not None:
                    sql += " AND name <= ?" if hi_inc else " AND name < ?"
                    args.append(hi)
                sql += " ORDER BY name DESC" if params.reverse else " ORDER BY name"
                sql += " LIMIT ?"
                args.append(n)
                return c.execute(sql, args).fetchall()

            return fold_listing(
                fetch,
                params,
                lambda r: ListingEntry(name=r[0], count=r[1], bytes=r[2], last_modified=r[3]),
            )

        return await self._run(fn)

    async def create_container(
        self, project_id: str, name: str, meta: dict[str, str], timestamp: float
    ) -> bool:
        def fn(c: sqlite3.Connection) -> bool:
            row = c.execute("SELECT project_id, meta FROM containers WHERE name = ?", (name,)).fetchone()
            if row is not None:
                if row[0] != project_id:
                    raise errors.ContainerNameTaken()
                if meta:
                    c.execute(
                        "UPDATE containers SET meta = ?, updated_at = ? WHERE name = ?",
                        (self._merge_meta(row[1], dict(meta)), timestamp, name),
                    )
                return False
            if c.execute("SELECT 1 FROM accounts WHERE project_id = ?", (project_id,)).fetchone() is None:
                raise errors.AccountNotFound()
            c.execute(
                "INSERT INTO containers (name, project_id, created_at, put_timestamp, updated_at, meta) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (name, project_id, timestamp, timestamp, timestamp, json.dumps(meta)),
            )
            c.execute(
                "UPDATE accounts SET container_count = container_count + 1 WHERE project_id = ?",
                (project_id,),
            )
            return True

        return await self._tx(fn)

    async def get_container(self, name: str) -> Container | None:
        def fn(c: sqlite3.Connection) -> Container | None:
            row = c.execute(
                "SELECT name, project_id, created_at, meta, object_count, bytes_used, put_timestamp, "
                "updated_at FROM containers WHERE name = ?",
                (name,),
            ).fetchone()
            if row is None:
                return None
            return Container(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5], row[6], row[7])

        return await self._run(fn)

    async def containers_with_meta(self, key: str) -> list[Container]:
        """Every container whose metadata has ``key`` (the S3 lifecycle pass's scan)."""

        def fn(c: sqlite3.Connection) -> list[Container]:
            rows = c.execute(
                "SELECT name, project_id, created_at, meta, object_count, bytes_used, put_timestamp, "
                "updated_at FROM containers WHERE json_extract(meta, ?) IS NOT NULL ORDER BY name",
                ('$."' + key.replace('"', '') + '"',),
            ).fetchall()
            return [Container(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], r[6], r[7]) for r in rows]

        return await self._run(fn)

    async def update_container_meta(self, name: str, updates: dict[str, str | None]) -> None:
        def fn(c: sqlite3.Connection) -> None:
            row = c.execute("SELECT meta FROM containers WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise errors.ContainerNotFound()
            c.execute(
                "UPDATE containers SET meta = ?, updated_at = ? WHERE name = ?",
                (self._merge_meta(row[0], updates), time.time(), name),
            )

        await self._tx(fn)

    async def delete_container(self, project_id: str, name: str) -> None:
        def fn(c: sqlite3.Connection) -> None:
            row = c.execute(
                "SELECT project_id FROM containers WHERE name = ?", (name,)
            ).fetchone()
            if row is None or row[0] != project_id:
                raise errors.ContainerNotFound()
            if c.execute("SELECT 1 FROM objects WHERE container = ? LIMIT 1", (name,)).fetchone():
                raise errors.ContainerNotEmpty()
            if c.execute("SELECT 1 FROM object_versions WHERE container = ? LIMIT 1", (name,)).fetchone():
                raise errors.ContainerNotEmpty("Delete all versions before deleting container.")
            c.execute("DELETE FROM containers WHERE name = ?", (name,))
            # multipart uploads in progress go with the bucket; their part blobs are
            # then unreferenced and fsck collects them
            c.execute("DELETE FROM mpu_parts WHERE upload_id IN "
                      "(SELECT upload_id FROM mpu_uploads WHERE container = ?)", (name,))
            c.execute("DELETE FROM mpu_uploads WHERE container = ?", (name,))
            c.execute(
                "UPDATE accounts SET container_count = container_count - 1 WHERE project_id = ?",
                (project_id,),
            )

        await self._tx(fn)

    # -- objects ----------------------------------------------------------------

    _OCOLS = (
        "container, name, blob_id, size, etag, content_type, last_modified, meta, sysmeta, "
        "delete_at, data_timestamp, manifest, version_id"
    )

    @staticmethod
    def _stored_size(size: int, manifest: str | None) -> int:
        """Bytes an object adds to bytes-used: its own blob (the manifest body for an
        SLO, as Swift counts an SLO's JSON, not its total). An S3 multipart object owns
        its part blobs, so it counts its whole size (as its segments count in Swift)."""
        if not manifest:
            return size
        m = json.loads(manifest)
        return size if m.get("kind") == "mpu" else int(m["body_size"])

    @staticmethod
    def _object(row: tuple[Any, ...] | None) -> ObjectRecord | None:
        if row is None:
            return None
        return ObjectRecord(
            container=row[0],
            name=row[1],
            blob_id=row[2],
            size=row[3],
            etag=row[4],
            content_type=row[5],
            last_modified=row[6],
            meta=json.loads(row[7]),
            sysmeta=json.loads(row[8]),
            delete_at=row[9],
            data_timestamp=row[10],
            manifest=ManifestInfo(**json.loads(row[11])) if row[11] else None,
            version_id=row[12],
        )

    @staticmethod
    def _adjust(c: sqlite3.Connection, container: str, objects: int, nbytes: int) -> None:
        row = c.execute(
            "UPDATE containers SET object_count = object_count + ?, bytes_used = bytes_used + ? "
            "WHERE name = ? RETURNING project_id",
            (objects, nbytes, container),
        ).fetchone()
        if row is None:
            raise errors.ContainerNotFound()
        c.execute(
            "UPDATE accounts SET object_count = object_count + ?, bytes_used = bytes_used + ? "
            "WHERE project_id = ?",
            (objects, nbytes, row[0]),
        )

    async def put_object(self, record: ObjectRecord) -> str | None:
        return await self._tx(lambda c: self._put_row(c, record))

    @staticmethod
    def _values(record: ObjectRecord) -> tuple[Any, ...]:
        """``record`` as the ``_OCOLS`` values."""
        return (
            record.container,
            record.name,
            record.blob_id,
            record.size,
            record.etag,
            record.content_type,
            record.last_modified,
            json.dumps(record.meta),
            json.dumps(record.sysmeta),
            record.delete_at,
            record.data_timestamp or record.last_modified,
            json.dumps(asdict(record.manifest)) if record.manifest else None,
            record.version_id,
        )

    def _put_row(self, c: sqlite3.Connection, record: ObjectRecord) -> str | None:
        """put_object's transaction body (shared with complete_upload).

        With ``record.version_id`` (a versioned write, lampi/core/versions.py) the record
        also becomes a version row owning the blob, an unversioned current object is kept
        as a version (Swift's _copy_current) and nothing is released. A current object
        pointing at a version never owns its blob: replacing it releases nothing.
        Bytes-used counts each blob once: version rows and unversioned objects."""
        old = c.execute(
            "SELECT blob_id, size, manifest, version_id FROM objects WHERE container = ? AND name = ?",
            (record.container, record.name),
        ).fetchone()
        if c.execute("SELECT 1 FROM containers WHERE name = ?", (record.container,)).fetchone() is None:
            raise errors.ContainerNotFound()
        released: str | None = None
        old_used = 0
        if old is not None and old[3] is None:
            old_used = self._stored_size(old[1], old[2])
            if record.version_id is not None:
                self._keep_as_version(c, record.container, record.name)
            else:
                released = str(old[0])
        if record.version_id is not None:
            self._insert_version(c, replace(record, delete_at=None))  # expiry applies to the current only
        c.execute(
            f"INSERT OR REPLACE INTO objects ({self._OCOLS}) VALUES ({', '.join('?' * 13)})",
            self._values(record),
        )
        used = 0 if record.version_id is not None else self._stored_size(
            record.size, json.dumps(asdict(record.manifest)) if record.manifest else None)
        self._adjust(c, record.container, 1 if old is None else 0, used - old_used)
        return released

    # -- object versions (lampi/core/versions.py) ----------------------------------

    def _insert_version(self, c: sqlite3.Connection, record: ObjectRecord) -> None:
        """A new version row (Conflict when the id exists); counts its blob's bytes."""
        try:
            c.execute(f"INSERT INTO object_versions ({self._OCOLS}) VALUES ({', '.join('?' * 13)})",
                      self._values(record))
        except sqlite3.IntegrityError:
            raise errors.Conflict("version exists") from None
        if record.blob_id:
            used = self._stored_size(record.size, json.dumps(asdict(record.manifest)) if record.manifest else None)
            self._adjust(c, record.container, 0, used)

    def _keep_as_version(self, c: sqlite3.Connection, container: str, name: str) -> None:
        """Copy the unversioned current object into a version row (id = its timestamp,
        moved on past a taken id); the caller replaces or deletes the current row."""
        rec = self._object(c.execute(f"SELECT {self._OCOLS} FROM objects WHERE container = ? AND name = ?",
                                     (container, name)).fetchone())
        assert rec is not None and rec.version_id is None
        ts = rec.last_modified
        while True:
            try:
                self._insert_version(c, replace(rec, version_id=version_id(ts), delete_at=None))
                return
            except errors.Conflict:
                ts += 0.00001

    async def get_object(self, container: str, name: str, now: float) -> ObjectRecord | None:
        def fn(c: sqlite3.Connection) -> ObjectRecord | None:
            rec = self._object(
                c.execute(
                    f"SELECT {self._OCOLS} FROM objects WHERE container = ? AND name = ?",
                    (container, name),
                ).fetchone()
            )
            if rec is not None and rec.delete_at is not None and rec.delete_at <= now:
                return None
            return rec

        return await self._run(fn)

    async def objects_sysmeta(self, container: str, names: list[str], now: float) -> dict[str, dict[str, str]]:
        """System metadata of those of ``names`` that exist (and have not expired) in
        ``container``: one query per 500 names (symlink targets in JSON listings)."""

        def fn(c: sqlite3.Connection) -> dict[str, dict[str, str]]:
            out: dict[str, dict[str, str]] = {}
            for i in range(0, len(names), 500):
                chunk = names[i:i + 500]
                sql = ("SELECT name, sysmeta FROM objects WHERE container = ? AND (delete_at IS NULL OR delete_at > ?) "
                       "AND name IN (" + ",".join("?" * len(chunk)) + ")")
                for name, sysmeta in c.execute(sql, [container, now, *chunk]):
                    out[name] = json.loads(sysmeta)
            return out

        return await self._run(fn)

    async def update_object_meta(
        self,
        container: str,
        name: str,
        meta: dict[str, str],
        sysmeta: dict[str, str],
        content_type: str,
        delete_at: int | None,
        timestamp: float,
    ) -> None:
        def fn(c: sqlite3.Connection) -> None:
            if not c.execute(
                "UPDATE objects SET meta = ?, sysmeta = ?, content_type = ?, delete_at = ?, "
                "last_modified = ? WHERE container = ? AND name = ?",
                (json.dumps(meta), json.dumps(sysmeta), content_type, delete_at, timestamp, container, name),
            ).rowcount:
                raise errors.ObjectNotFound()
            # a current object pointing at a version: the POST updates that version too
            # (Swift follows the versions symlink); expiry stays the current's own
            c.execute(
                "UPDATE object_versions SET meta = ?, sysmeta = ?, content_type = ?, last_modified = ? "
                "WHERE container = ? AND name = ? AND version_id = "
                "(SELECT version_id FROM objects WHERE container = ? AND name = ?)",
                (json.dumps(meta), json.dumps(sysmeta), content_type, timestamp, container, name, container, name),
            )

        await self._tx(fn)

    async def delete_object(self, container: str, name: str) -> str | None:
        def fn(c: sqlite3.Connection) -> str | None:
            row = c.execute(
                "DELETE FROM objects WHERE container = ? AND name = ? RETURNING blob_id, size, manifest, version_id",
                (container, name),
            ).fetchone()
            if row is None:
                return None
            if row[3] is not None:  # pointed at a version, which keeps the blob
                self._adjust(c, container, -1, 0)
                return ""
            self._adjust(c, container, -1, -self._stored_size(row[1], row[2]))
            return str(row[0])

        return await self._tx(fn)

    async def list_objects(self, container: str, params: ListParams, now: float,
                           raw: bool = False) -> list[Any]:
        """Listing entries; with ``raw``, each object is the row tuple as SQLite returns it,
        ``(name, size, etag, content_type, last_modified, manifest JSON or None)`` (subdirs
        stay ListingEntry). Speed: building a frozen dataclass per row was a fifth of a
        10,000-object JSON listing; the JSON fast path renders the tuples directly
        (lampi.swift.listing.render_object_rows). The scan is a range scan of the
        (container, name) primary key either way."""

        def fn(c: sqlite3.Connection) -> list[Any]:
            def fetch(lo: str | None, lo_inc: bool, hi: str | None, hi_inc: bool, n: int) -> list[Any]:
                sql = (
                    "SELECT name, size, etag, content_type, last_modified, manifest FROM objects "
                    "WHERE container = ? AND (delete_at IS NULL OR delete_at > ?)"
                )
                args: list[Any] = [container, now]
                if lo is not None:
                    sql += " AND name >= ?" if lo_inc else " AND name > ?"
                    args.append(lo)
                if hi is not None:
                    sql += " AND name <= ?" if hi_inc else " AND name < ?"
                    args.append(hi)
                sql += " ORDER BY name DESC" if params.reverse else " ORDER BY name"
                sql += " LIMIT ?"
                args.append(n)
                return c.execute(sql, args).fetchall()

            return fold_listing(
                fetch,
                params,
                (lambda r: r) if raw else lambda r: ListingEntry(
                    name=r[0], bytes=r[1], hash=r[2], content_type=r[3], last_modified=r[4],
                    # a manifest's listing carries its kind and body MD5 (Swift lists an SLO
                    # with the JSON's MD5 as hash and the SLO ETag as slo_etag)
                    extra={"manifest": json.loads(r[5])} if r[5] else None,
                ),
            )

        return await self._run(fn)

    async def blob_refs(self) -> set[str]:
        def fn(c: sqlite3.Connection) -> set[str]:
            refs = {r[0] for r in c.execute("SELECT blob_id FROM objects")}
            refs.update(r[0] for r in c.execute("SELECT blob_id FROM mpu_parts"))
            refs.update(r[0] for r in c.execute(
                "SELECT m.blob_id FROM manifest_parts m WHERE EXISTS "
                "(SELECT 1 FROM objects o WHERE o.blob_id = m.owner) "
                "OR EXISTS (SELECT 1 FROM object_versions v WHERE v.blob_id = m.owner)"))
            refs.update(r[0] for r in c.execute("SELECT blob_id FROM object_versions WHERE blob_id != ''"))
            return refs

        return await self._run(fn)

    async def objects_with_blobs(self) -> list[tuple[str, str, str, int]]:
        return await self._run(
            lambda c: [
                tuple(r)  # type: ignore[misc]
                for r in c.execute(
                    "SELECT container, name, blob_id, "
                    "CASE WHEN manifest IS NULL THEN size ELSE json_extract(manifest, '$.body_size') END "
                    "FROM objects WHERE version_id IS NULL UNION ALL "
                    # object versions (delete markers have no blob), named as their URL
                    "SELECT container, name || '?version-id=' || version_id, blob_id, "
                    "CASE WHEN manifest IS NULL THEN size ELSE json_extract(manifest, '$.body_size') END "
                    "FROM object_versions WHERE blob_id != '' ORDER BY 1, 2"
                )
            ]
        )

    async def reap_expired(self, now: float, limit: int) -> list[str]:
        """Remove up to ``limit`` objects whose delete_at has passed; return their blob ids.

        One write transaction: each row is deleted only if it is still expired (a PUT
        or POST may have replaced it since), so several workers reaping at once never
        count a row twice and a retry is harmless.
        """

        def fn(c: sqlite3.Connection) -> list[str]:
            rows = c.execute(
                "SELECT container, name FROM objects WHERE delete_at IS NOT NULL AND delete_at <= ? "
                "ORDER BY delete_at LIMIT ?",
                (now, limit),
            ).fetchall()
            blobs: list[str] = []
            for container, name in rows:
                row = c.execute(
                    "DELETE FROM objects WHERE container = ? AND name = ? AND delete_at IS NOT NULL "
                    "AND delete_at <= ? RETURNING blob_id, size, manifest, version_id",
                    (container, name, now),
                ).fetchone()
                if row is not None and row[3] is not None:  # pointed at a version: it keeps the blob
                    self._adjust(c, container, -1, 0)
                elif row is not None:
                    self._adjust(c, container, -1, -self._stored_size(row[1], row[2]))
                    blobs.append(str(row[0]))
            return blobs

        return await self._tx(fn)

    async def get_project_quota(self, project_id: str) -> dict[str, int | None]:
        def fn(c: sqlite3.Connection) -> dict[str, int | None]:
            row = c.execute(
                "SELECT max_bytes, max_containers, max_objects_per_container FROM project_quotas "
                "WHERE project_id = ?",
                (project_id,),
            ).fetchone()
            row = row or (None, None, None)
            return {"bytes": row[0], "containers": row[1], "objects_per_container": row[2]}

        return await self._run(fn)

    async def set_project_quota(self, project_id: str, updates: dict[str, int | None]) -> None:
        """Set (int) or reset to the default (None) the given quota keys of a project."""
        cols = {"bytes": "max_bytes", "containers": "max_containers",
                "objects_per_container": "max_objects_per_container"}

        def fn(c: sqlite3.Connection) -> None:
            if c.execute("SELECT 1 FROM projects WHERE id = ?", (project_id,)).fetchone() is None:
                raise errors.NotFound("project not found")
            c.execute("INSERT OR IGNORE INTO project_quotas (project_id) VALUES (?)", (project_id,))
            for key, value in updates.items():
                c.execute(f"UPDATE project_quotas SET {cols[key]} = ? WHERE project_id = ?", (value, project_id))

        await self._tx(fn)

    # -- EC2 credentials (S3 keys) ------------------------------------------------
    # Read on every S3 request (no cache), so a deleted key stops at once on every worker.

    _CCOLS = "access, secret, user_id, project_id, created_at"

    async def create_credential(self, cred: Credential) -> Credential:
        def fn(c: sqlite3.Connection) -> Credential:
            try:
                c.execute(
                    f"INSERT INTO credentials ({self._CCOLS}) VALUES (?, ?, ?, ?, ?)",
                    (cred.access, cred.secret, cred.user_id, cred.project_id, cred.created_at or time.time()),
                )
            except sqlite3.IntegrityError:
                raise errors.Conflict("credential exists or refers to an unknown user/project") from None
            return cred

        return await self._tx(fn)

    async def get_credential(self, access: str) -> Credential | None:
        def fn(c: sqlite3.Connection) -> Credential | None:
            row = c.execute(f"SELECT {self._CCOLS} FROM credentials WHERE access = ?", (access,)).fetchone()
            return Credential(*row) if row else None

        return await self._run(fn)

    async def list_credentials(self, user_id: str | None = None) -> list[Credential]:
        def fn(c: sqlite3.Connection) -> list[Credential]:
            if user_id is None:
                rows = c.execute(f"SELECT {self._CCOLS} FROM credentials ORDER BY created_at, access")
            else:
                rows = c.execute(
                    f"SELECT {self._CCOLS} FROM credentials WHERE user_id = ? ORDER BY created_at, access",
                    (user_id,),
                )
            return [Credential(*r) for r in rows.fetchall()]

        return await self._run(fn)

    async def delete_credential(self, access: str) -> None:
        def fn(c: sqlite3.Connection) -> None:
            if not c.execute("DELETE FROM credentials WHERE access = ?", (access,)).rowcount:
                raise errors.NotFound("credential not found")

        await self._tx(fn)

    # -- S3 multipart uploads -----------------------------------------------------

    _MUCOLS = ("upload_id, container, name, project_id, initiated, content_type, meta, sysmeta, "
              "checksum_alg, checksum_type, owner")
    _MPCOLS = "upload_id, part_number, blob_id, size, etag, last_modified, checksum"

    @staticmethod
    def _upload(row: tuple[Any, ...]) -> MultipartUpload:
        return MultipartUpload(row[0], row[1], row[2], row[3], row[4], row[5], json.loads(row[6]),
                               json.loads(row[7]), row[8], row[9], row[10])

    async def create_upload(self, upload: MultipartUpload) -> None:
        def fn(c: sqlite3.Connection) -> None:
            if c.execute("SELECT 1 FROM containers WHERE name = ?", (upload.container,)).fetchone() is None:
                raise errors.ContainerNotFound()
            c.execute(
                f"INSERT INTO mpu_uploads ({self._MUCOLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (upload.upload_id, upload.container, upload.name, upload.project_id, upload.initiated,
                 upload.content_type, json.dumps(upload.meta), json.dumps(upload.sysmeta),
                 upload.checksum_alg, upload.checksum_type, upload.owner),
            )

        await self._tx(fn)

    async def get_upload(self, upload_id: str) -> MultipartUpload | None:
        def fn(c: sqlite3.Connection) -> MultipartUpload | None:
            row = c.execute(f"SELECT {self._MUCOLS} FROM mpu_uploads WHERE upload_id = ?", (upload_id,)).fetchone()
            return self._upload(row) if row else None

        return await self._run(fn)

    async def list_uploads(
        self, container: str, prefix: str, key_marker: str, upload_id_marker: str, limit: int
    ) -> list[MultipartUpload]:
        def fn(c: sqlite3.Connection) -> list[MultipartUpload]:
            sql = f"SELECT {self._MUCOLS} FROM mpu_uploads WHERE container = ?"
            args: list[Any] = [container]
            if prefix:
                sql += " AND name >= ?"
                args.append(prefix)
                upper = _after(prefix)
                if upper is not None:
                    sql += " AND name < ?"
                    args.append(upper)
            if key_marker and upload_id_marker:
                sql += " AND (name > ? OR (name = ? AND upload_id > ?))"
                args += [key_marker, key_marker, upload_id_marker]
            elif key_marker:
                sql += " AND name > ?"
                args.append(key_marker)
            sql += " ORDER BY name, upload_id LIMIT ?"
            args.append(limit)
            return [self._upload(r) for r in c.execute(sql, args).fetchall()]

        return await self._run(fn)

    async def put_part(self, part: UploadPart) -> str | None:
        def fn(c: sqlite3.Connection) -> str | None:
            if c.execute("SELECT 1 FROM mpu_uploads WHERE upload_id = ?", (part.upload_id,)).fetchone() is None:
                raise errors.NotFound("upload not found")
            old = c.execute("SELECT blob_id FROM mpu_parts WHERE upload_id = ? AND part_number = ?",
                            (part.upload_id, part.part_number)).fetchone()
            c.execute(
                f"INSERT OR REPLACE INTO mpu_parts ({self._MPCOLS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (part.upload_id, part.part_number, part.blob_id, part.size, part.etag, part.last_modified,
                 part.checksum),
            )
            return str(old[0]) if old and old[0] != part.blob_id else None

        return await self._tx(fn)

    async def list_parts(self, upload_id: str, marker: int = 0, limit: int = 10000) -> list[UploadPart]:
        def fn(c: sqlite3.Connection) -> list[UploadPart]:
            rows = c.execute(
                f"SELECT {self._MPCOLS} FROM mpu_parts WHERE upload_id = ? AND part_number > ? "
                "ORDER BY part_number LIMIT ?",
                (upload_id, marker, limit),
            ).fetchall()
            return [UploadPart(*r) for r in rows]

        return await self._run(fn)

    async def complete_upload(
        self, upload_id: str, record: ObjectRecord, part_blobs: list[str]
    ) -> tuple[str | None, list[str]]:
        def fn(c: sqlite3.Connection) -> tuple[str | None, list[str]]:
            if c.execute("SELECT 1 FROM mpu_uploads WHERE upload_id = ?", (upload_id,)).fetchone() is None:
                raise errors.NotFound("upload not found")
            have = {r[0] for r in c.execute("SELECT blob_id FROM mpu_parts WHERE upload_id = ?", (upload_id,))}
            used = set(part_blobs)
            if not used <= have:  # a part was replaced or the upload completed meanwhile
                raise errors.Conflict("a part changed while completing")
            c.execute("DELETE FROM mpu_parts WHERE upload_id = ?", (upload_id,))
            c.execute("DELETE FROM mpu_uploads WHERE upload_id = ?", (upload_id,))
            c.executemany("INSERT OR IGNORE INTO manifest_parts (owner, blob_id) VALUES (?, ?)",
                          [(record.blob_id, b) for b in part_blobs])
            old = self._put_row(c, record)
            return old, sorted(have - used)

        return await self._tx(fn)

    async def abort_upload(self, upload_id: str) -> list[str] | None:
        def fn(c: sqlite3.Connection) -> list[str] | None:
            if not c.execute("DELETE FROM mpu_uploads WHERE upload_id = ?", (upload_id,)).rowcount:
                return None
            return [r[0] for r in c.execute(
                "DELETE FROM mpu_parts WHERE upload_id = ? RETURNING blob_id", (upload_id,)).fetchall()]

        return await self._tx(fn)

    async def release_manifest(self, owner_blob_id: str) -> list[str]:
        # called for every released blob: a read first, a write only for an S3 manifest
        if not await self._run(lambda c: c.execute(
                "SELECT 1 FROM manifest_parts WHERE owner = ? LIMIT 1", (owner_blob_id,)).fetchone()):
            return []

        def fn(c: sqlite3.Connection) -> list[str]:
            if c.execute("SELECT 1 FROM objects WHERE blob_id = ? LIMIT 1", (owner_blob_id,)).fetchone() or \
                    c.execute("SELECT 1 FROM object_versions WHERE blob_id = ? LIMIT 1", (owner_blob_id,)).fetchone():
                return []  # still in use
            return [r[0] for r in c.execute(
                "DELETE FROM manifest_parts WHERE owner = ? RETURNING blob_id", (owner_blob_id,)).fetchall()]

        return await self._tx(fn)

    # -- object versions (lampi/core/versions.py) ------------------------------------

    async def get_version(self, container: str, name: str, vid: str) -> ObjectRecord | None:
        return await self._run(lambda c: self._object(c.execute(
            f"SELECT {self._OCOLS} FROM object_versions WHERE container = ? AND name = ? AND version_id = ?",
            (container, name, vid)).fetchone()))

    def _insert_marker(self, c: sqlite3.Connection, container: str, name: str, ts: float) -> str:
        while True:
            vid = version_id(ts)
            try:
                self._insert_version(c, ObjectRecord(
                    container=container, name=name, blob_id="", size=0, etag=EMPTY_MD5,
                    content_type=DELETE_MARKER, last_modified=ts, data_timestamp=ts, version_id=vid))
                return vid
            except errors.Conflict:
                ts += 0.00001

    async def delete_current(self, container: str, name: str, ts: float, now: float) -> tuple[bool, str, str | None]:
        def fn(c: sqlite3.Connection) -> tuple[bool, str, str | None]:
            if c.execute("SELECT 1 FROM containers WHERE name = ?", (container,)).fetchone() is None:
                raise errors.ContainerNotFound()
            old = c.execute("SELECT version_id, delete_at, blob_id FROM objects WHERE container = ? AND name = ?",
                            (container, name)).fetchone()
            existed, released = False, None
            if old is not None:
                expired = old[1] is not None and old[1] <= now
                existed = not expired
                if old[0] is None:
                    if expired:
                        released = str(old[2])
                    else:
                        self._keep_as_version(c, container, name)
                row = c.execute("DELETE FROM objects WHERE container = ? AND name = ? "
                                "RETURNING size, manifest, version_id", (container, name)).fetchone()
                self._adjust(c, container, -1, 0 if row[2] is not None else -self._stored_size(row[0], row[1]))
            return existed, self._insert_marker(c, container, name, ts), released

        return await self._tx(fn)

    async def delete_version(self, container: str, name: str, vid: str) -> tuple[bool, str | None, str]:
        def fn(c: sqlite3.Connection) -> tuple[bool, str | None, str]:
            row = c.execute("DELETE FROM object_versions WHERE container = ? AND name = ? AND version_id = ? "
                            "RETURNING blob_id, size, manifest", (container, name, vid)).fetchone()
            cur = c.execute("SELECT version_id FROM objects WHERE container = ? AND name = ?",
                            (container, name)).fetchone()
            if row is None:
                return False, None, (cur[0] or "null") if cur else "null"
            if row[0]:
                self._adjust(c, container, 0, -self._stored_size(row[1], row[2]))
            if cur is not None and cur[0] == vid:  # it was current: the link goes too, as in Swift
                c.execute("DELETE FROM objects WHERE container = ? AND name = ?", (container, name))
                self._adjust(c, container, -1, 0)
                cur = None
            return True, (str(row[0]) or None), (cur[0] or "null") if cur else "null"

        return await self._tx(fn)

    async def restore_version(
        self, container: str, name: str, vid: str, keep_current: bool
    ) -> tuple[ObjectRecord | None, str | None]:
        def fn(c: sqlite3.Connection) -> tuple[ObjectRecord | None, str | None]:
            v = self._object(c.execute(
                f"SELECT {self._OCOLS} FROM object_versions WHERE container = ? AND name = ? AND version_id = ?",
                (container, name, vid)).fetchone())
            if v is None or v.content_type == DELETE_MARKER:
                return None, None
            old = c.execute("SELECT blob_id, size, manifest, version_id FROM objects WHERE container = ? AND name = ?",
                            (container, name)).fetchone()
            released, old_used = None, 0
            if old is not None and old[3] is None:
                old_used = self._stored_size(old[1], old[2])
                if keep_current:
                    self._keep_as_version(c, container, name)
                else:
                    released = str(old[0])
            c.execute(f"INSERT OR REPLACE INTO objects ({self._OCOLS}) VALUES ({', '.join('?' * 13)})",
                      self._values(v))
            self._adjust(c, container, 1 if old is None else 0, -old_used)
            return v, released

        return await self._tx(fn)

    async def list_versions(
        self, container: str, params: ListParams, version_marker: str | None, now: float
    ) -> list[ListingEntry]:
        """Swift's ``?versions`` listing: unversioned current objects (``null``) and
        version rows, by name, each name's ``null`` first, then its versions newest first
        (oldest first when reversed, as Swift's merge gives). Two paged range scans merged
        (never more than a batch of each in memory); delimiter subdirs skip both scans past
        the subdir. ``extra`` carries version_id, is_latest and the manifest."""
        rev = params.reverse
        prefix, delim, marker = params.prefix, params.delimiter, params.marker
        after, before = (">", "<") if not rev else ("<", ">")

        def fn(c: sqlite3.Connection) -> list[ListingEntry]:
            a_base = ("SELECT name, size, etag, content_type, last_modified, manifest FROM objects "
                      "WHERE container = ? AND version_id IS NULL AND (delete_at IS NULL OR delete_at > ?)")
            b_base = ("SELECT v.name, v.size, v.etag, v.content_type, v.last_modified, v.manifest, v.version_id, "
                      "(SELECT COALESCE(o.version_id, 'null') FROM objects o WHERE o.container = v.container "
                      "AND o.name = v.name AND (o.delete_at IS NULL OR o.delete_at > ?)), "
                      "(SELECT MAX(w.version_id) FROM object_versions w WHERE w.container = v.container "
                      "AND w.name = v.name) FROM object_versions v WHERE v.container = ?")
            a_args: list[Any] = [container, now]
            b_args: list[Any] = [now, container]
            if prefix:
                a_base += " AND name >= ?"
                b_base += " AND v.name >= ?"
                a_args.append(prefix)
                b_args.append(prefix)
                pupper = _after(prefix)
                if pupper is not None:
                    a_base += " AND name < ?"
                    b_base += " AND v.name < ?"
                    a_args.append(pupper)
                    b_args.append(pupper)
            a_order = " ORDER BY name" + (" DESC" if rev else "")
            b_order = " ORDER BY v.name DESC, v.version_id" if rev else " ORDER BY v.name, v.version_id DESC"

            def b_after(n: str, vid: str) -> tuple[str, list[Any]]:
                return f"(v.name {after} ? OR (v.name = ? AND v.version_id {before} ?))", [n, n, vid]

            a = _Scan(c, a_base, a_args, a_order, lambda r: (f"name {after} ?", [r[0]]))
            b = _Scan(c, b_base, b_args, b_order, lambda r: b_after(r[0], r[6]))
            if marker:
                a.seek((f"name {after} ?", [marker]))
                if version_marker is None:
                    b.seek((f"v.name {after} ?", [marker]))
                elif version_marker == "null":
                    b.seek((f"v.name {after}= ?", [marker]))
                else:
                    b.seek(b_after(marker, version_marker))
            out: list[ListingEntry] = []
            while len(out) < params.limit:
                ra, rb = a.peek(), b.peek()
                if ra is None and rb is None:
                    break
                take_a = rb is None or (ra is not None and (ra[0] <= rb[0] if not rev else ra[0] >= rb[0]))
                row = (a if take_a else b).pop()
                name = row[0]
                if delim:
                    idx = name.find(delim, len(prefix))
                    if idx >= 0:
                        subdir = name[: idx + len(delim)]
                        if subdir != marker:
                            out.append(ListingEntry(name=subdir, is_subdir=True))
                        if rev:
                            cond: tuple[str, list[Any]] = ("name < ?", [subdir])
                        else:
                            nxt = _after(subdir)
                            if nxt is None:
                                break
                            cond = ("name >= ?", [nxt])
                        a.seek(cond)
                        b.seek(("v." + cond[0], cond[1]))
                        continue
                extra: dict[str, Any] = {}
                if row[5]:
                    extra["manifest"] = json.loads(row[5])
                if take_a:
                    extra.update(version_id="null", is_latest=True)
                else:
                    vid, cur, newest = row[6], row[7], row[8]
                    extra.update(version_id=vid, is_latest=cur == vid or (
                        cur is None and row[3] == DELETE_MARKER and vid == newest))
                out.append(ListingEntry(name=name, bytes=row[1], hash=row[2], content_type=row[3],
                                        last_modified=row[4], extra=extra))
            return out

        return await self._run(fn)


class _Scan:
    """A paged range scan: rows after the current position, ``_LIST_BATCH`` at a time;
    ``seek`` moves the position (dropping what was buffered)."""

    def __init__(self, c: sqlite3.Connection, base: str, args: list[Any], order: str,
                 after: Callable[[tuple[Any, ...]], tuple[str, list[Any]]]) -> None:
        self.c, self.base, self.args, self.order, self.after = c, base, args, order, after
        self.cond: tuple[str, list[Any]] | None = None
        self.buf: list[tuple[Any, ...]] = []
        self.pos = 0
        self.done = False

    def seek(self, cond: tuple[str, list[Any]]) -> None:
        self.cond, self.buf, self.pos, self.done = cond, [], 0, False

    def peek(self) -> tuple[Any, ...] | None:
        if self.pos >= len(self.buf) and not self.done:
            sql, args = self.base, list(self.args)
            if self.cond is not None:
                sql += " AND " + self.cond[0]
                args += self.cond[1]
            self.buf = self.c.execute(sql + self.order + " LIMIT ?", [*args, _LIST_BATCH]).fetchall()
            self.pos = 0
            self.done = len(self.buf) < _LIST_BATCH
            if self.buf:
                self.cond = self.after(self.buf[-1])
        return self.buf[self.pos] if self.pos < len(self.buf) else None

    def pop(self) -> tuple[Any, ...]:
        row = self.buf[self.pos]
        self.pos += 1
        return row
