"""EC2 secrets sealed at rest in the SQLite MetaStore (lampi/store/meta/sqlite/credentials.py):
no secret in the database file's bytes, altered or swapped rows refused, clear rows of
older stores sealed once and scrubbed from the file, rotation beside other processes."""

from __future__ import annotations

import secrets
import sqlite3
import time
import uuid
from pathlib import Path

import pytest

from lampi.core import errors
from lampi.core.models import Credential, Domain, Project, User
from lampi.store.meta.sqlite import SQLiteMetaStore

# the credentials table as lampi wrote it before secrets were sealed
OLD_CREDENTIALS_DDL = """CREATE TABLE credentials (
    access TEXT PRIMARY KEY, secret TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    created_at REAL NOT NULL
)"""


def raw_bytes(db: Path) -> bytes:
    """Every byte SQLite keeps for the database: the file, its WAL and shared memory."""
    return b"".join(p.read_bytes() for p in sorted(db.parent.glob(db.name + "*")))


async def setup(meta: SQLiteMetaStore) -> tuple[str, str]:
    if await meta.get_domain("default") is None:
        await meta.create_domain(Domain("default", "Default"))
    p = await meta.create_project(Project(uuid.uuid4().hex, "p" + uuid.uuid4().hex[:6], "default"))
    u = await meta.create_user(User(uuid.uuid4().hex, "u" + uuid.uuid4().hex[:6], "default", "h"))
    return u.id, p.id


def new_cred(uid: str, pid: str) -> Credential:
    return Credential(secrets.token_hex(16), secrets.token_hex(16), uid, pid, time.time())


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "meta.db"


def rows(db: Path) -> dict[str, tuple[str, str | None]]:
    with sqlite3.connect(db) as c:
        return {a: (s, k) for a, s, k in c.execute("SELECT access, secret, key_hash FROM credentials")}


async def test_a_secret_is_never_written_in_clear(db: Path) -> None:
    meta = SQLiteMetaStore(db)
    try:
        uid, pid = await setup(meta)
        made = [await meta.create_credential(new_cred(uid, pid)) for _ in range(20)]
        data = raw_bytes(db)  # the WAL still holds the writes here
        assert data and not [c.access for c in made if c.secret.encode() in data]
        stored = rows(db)
        for c in made:
            assert stored[c.access][0] != c.secret and stored[c.access][1]  # sealed, with its key id
            assert await meta.get_credential(c.access) == c
        assert await meta.list_credentials(uid) == made
    finally:
        await meta.close()
    assert not [c.access for c in made if c.secret.encode() in raw_bytes(db)]


async def test_altered_or_swapped_sealed_secrets_are_refused(db: Path) -> None:
    meta = SQLiteMetaStore(db)
    try:
        uid, pid = await setup(meta)
        a = await meta.create_credential(new_cred(uid, pid))
        b = await meta.create_credential(new_cred(uid, pid))
        with sqlite3.connect(db) as c:
            sealed_a = c.execute("SELECT secret FROM credentials WHERE access = ?", (a.access,)).fetchone()[0]
            # b's row gets a's sealed secret: it opens, but belongs to another access key
            c.execute("UPDATE credentials SET secret = ? WHERE access = ?", (sealed_a, b.access))
            # a's row altered by one character
            flipped = sealed_a[:40] + ("A" if sealed_a[40] != "A" else "B") + sealed_a[41:]
            c.execute("UPDATE credentials SET secret = ? WHERE access = ?", (flipped, a.access))
        with pytest.raises(errors.DataUnavailable, match="another access key"):
            await meta.get_credential(b.access)
        with pytest.raises(errors.DataUnavailable, match="does not verify"):
            await meta.get_credential(a.access)
        with pytest.raises(errors.DataUnavailable):
            await meta.list_credentials()
    finally:
        await meta.close()


async def test_a_lost_key_directory_is_named_not_guessed(db: Path) -> None:
    meta = SQLiteMetaStore(db)
    try:
        uid, pid = await setup(meta)
        a = await meta.create_credential(new_cred(uid, pid))
    finally:
        await meta.close()
    for p in (db.parent / "keys").glob("credential-*"):
        p.unlink()
    meta = SQLiteMetaStore(db)  # a fresh process: nothing cached
    try:
        with pytest.raises(errors.DataUnavailable, match=r"not in .*keys"):
            await meta.get_credential(a.access)
        b = await meta.create_credential(new_cred(uid, pid))  # new keys work
        assert (await meta.get_credential(b.access)).secret == b.secret
    finally:
        await meta.close()


async def make_old_store(db: Path, n: int) -> list[Credential]:
    """A store as older lampi versions left it: clear secrets, no key_hash column, and
    the clear secrets also in a freed page (a deleted row's leftovers)."""
    meta = SQLiteMetaStore(db)
    try:
        uid, pid = await setup(meta)
    finally:
        await meta.close()
    creds = [new_cred(uid, pid) for _ in range(n)]
    c = sqlite3.connect(db, isolation_level=None)
    c.execute("PRAGMA secure_delete=OFF")  # the default of most SQLite builds (not of every Python's)
    c.execute("DROP TABLE credentials")
    c.execute(OLD_CREDENTIALS_DDL)
    c.executemany("INSERT INTO credentials VALUES (?, ?, ?, ?, ?)",
                  [(x.access, x.secret, x.user_id, x.project_id, x.created_at) for x in creds])
    # a scratch table holding the secrets, dropped: its pages go to the free list as they were
    c.execute("CREATE TABLE scratch (s TEXT)")
    c.executemany("INSERT INTO scratch VALUES (?)", [(x.secret * 20,) for x in creds])
    c.execute("DROP TABLE scratch")
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert c.execute("PRAGMA freelist_count").fetchone()[0] > 0
    c.close()
    data = raw_bytes(db)
    assert all(x.secret.encode() in data and (x.secret * 2).encode() in data for x in creds)
    return creds


async def test_clear_secrets_of_an_old_store_are_sealed_once_and_scrubbed(db: Path) -> None:
    creds = await make_old_store(db, 300)
    meta = SQLiteMetaStore(db)  # opening adds the key_hash column
    try:
        for c in creds[:3]:
            assert await meta.get_credential(c.access) == c  # still usable before sealing
        rep = await meta.seal_credentials()
        assert rep.sealed == 300 and rep.primary and rep.scrubbed and not rep.unopenable
        data = raw_bytes(db)
        assert not [c.access for c in creds if c.secret.encode() in data]
        assert all(k == rep.primary for _s, k in rows(db).values())
        for c in creds:
            assert await meta.get_credential(c.access) == c
        again = await meta.seal_credentials()
        assert again.sealed == 0
    finally:
        await meta.close()


async def test_sealing_nothing_makes_no_key(db: Path) -> None:
    meta = SQLiteMetaStore(db)
    try:
        assert (await meta.seal_credentials()).sealed == 0
        assert not list((db.parent / "keys").glob("credential-*"))
    finally:
        await meta.close()


async def test_rotation_reseals_and_retires_the_old_key_beside_another_process(db: Path) -> None:
    worker, admin = SQLiteMetaStore(db), SQLiteMetaStore(db)
    try:
        uid, pid = await setup(worker)
        made = [await worker.create_credential(new_cred(uid, pid)) for _ in range(5)]
        (old,) = {k for _s, k in rows(db).values()}
        before = rows(db)
        rep = await admin.rotate_credential_key()
        assert rep.sealed == 5 and rep.primary != old and not rep.unopenable
        assert [p.name for p in rep.removed_keys] == ["credential-0"]
        assert sorted(p.name for p in (db.parent / "keys").glob("credential-*")) == ["credential-1"]
        after = rows(db)
        assert all(after[a][1] == rep.primary and after[a][0] != before[a][0] for a in after)
        # the worker loaded the old key only: it meets the new id and re-reads keys/
        for c in made:
            assert await worker.get_credential(c.access) == c
        # and seals what it creates with the key on disk now, not the one it had loaded
        late = await worker.create_credential(new_cred(uid, pid))
        assert rows(db)[late.access][1] == rep.primary
        assert (await admin.rotate_credential_key()).sealed == 6
        assert await worker.get_credential(late.access) == late
    finally:
        await worker.close()
        await admin.close()
