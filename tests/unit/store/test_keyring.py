"""The key ring sealing secrets at rest (lampi/store/keyring.py): Fernet keys in
``keys/credential-<n>``, the highest the primary; wrong keys and altered tokens are
refused; rotation adds a key, removal never takes the primary."""

from __future__ import annotations

import base64
import os
import stat

import pytest
from cryptography.fernet import Fernet

from lampi.store.keyring import KeyRing, SealError, key_id


def test_seal_and_open_make_a_private_key_file_on_first_use(tmp_path) -> None:
    ring = KeyRing(tmp_path / "keys")
    assert ring.primary(create=False) is None and not (tmp_path / "keys").exists()
    kid, token = ring.seal(b"s3cret")
    assert token.encode() != b"s3cret" and b"s3cret" not in base64.urlsafe_b64decode(token)
    assert ring.open(kid, token) == b"s3cret"
    path = tmp_path / "keys" / "credential-0"
    assert kid == key_id(path.read_bytes())
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "keys").st_mode) == 0o700
    assert [p.name for p in (tmp_path / "keys").iterdir()] == ["credential-0"]  # no temp file left


def test_token_keys_are_not_credential_keys(tmp_path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "fernet-0").write_bytes(Fernet.generate_key())  # a token key
    ring = KeyRing(tmp_path / "keys")
    assert ring.primary(create=False) is None
    kid, _ = ring.seal(b"x")
    assert kid != key_id((tmp_path / "keys" / "fernet-0").read_bytes())


def test_a_wrong_key_is_refused(tmp_path) -> None:
    kid, token = KeyRing(tmp_path / "a").seal(b"s3cret")
    other = KeyRing(tmp_path / "b")
    other.seal(b"x")  # a ring with a key of its own
    with pytest.raises(SealError, match="not in"):
        other.open(kid, token)
    # the same file name holding another key: its id differs, so it is not taken for it
    (tmp_path / "a" / "credential-0").write_bytes(Fernet.generate_key())
    with pytest.raises(SealError, match="not in"):
        KeyRing(tmp_path / "a").open(kid, token)
    # a token presented under the id of a key that did not seal it
    okid, _ = other.seal(b"y")
    with pytest.raises(SealError, match="does not verify"):
        other.open(okid, token)


@pytest.mark.parametrize("where", [0, 9, 30, -5, -1])
def test_an_altered_token_is_refused(tmp_path, where: int) -> None:
    ring = KeyRing(tmp_path / "keys")
    kid, token = ring.seal(b"s3cret")
    raw = bytearray(base64.urlsafe_b64decode(token))
    raw[where] ^= 0x01
    with pytest.raises(SealError, match="does not verify"):
        ring.open(kid, base64.urlsafe_b64encode(bytes(raw)).decode())
    with pytest.raises(SealError):
        ring.open(kid, token[:-8])
    with pytest.raises(SealError):
        ring.open(kid, "not a token \u00e9")


def test_rotation_adds_a_primary_and_removal_retires_the_old_key(tmp_path) -> None:
    ring = KeyRing(tmp_path / "keys")
    k0, t0 = ring.seal(b"old")
    k1 = ring.add_key()
    assert k1 != k0 and ring.primary() == k1 and ring.key_ids() == [k0, k1]
    assert (tmp_path / "keys" / "credential-1").exists()
    assert ring.open(k0, t0) == b"old"  # still opens under the old key
    k, t1 = ring.seal(b"new")
    assert k == k1
    assert ring.remove([k0, k1]) == [tmp_path / "keys" / "credential-0"]  # never the primary
    with pytest.raises(SealError, match="not in"):
        ring.open(k0, t0)
    assert ring.open(k1, t1) == b"new"
    assert ring.add_key() != k1 and (tmp_path / "keys" / "credential-2").exists()


def test_another_process_rotating_is_seen(tmp_path) -> None:
    """Workers hold a ring each; a rotation by another process (the admin CLI) must reach
    them: an unknown key id re-reads the directory, and sealing uses the primary on disk."""
    worker, admin = KeyRing(tmp_path / "keys"), KeyRing(tmp_path / "keys")
    k0, _ = worker.seal(b"a")
    assert admin.seal(b"b")[0] == k0  # the second ring finds key 0, makes no other
    k1 = admin.add_key()
    kid, token = admin.seal(b"c")
    assert kid == k1
    assert worker.open(kid, token) == b"c"
    assert worker.seal(b"d")[0] == k1


def test_an_unreadable_key_file_is_named(tmp_path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "credential-0").write_text("not a key")
    with pytest.raises(SealError, match="credential-0"):
        KeyRing(tmp_path / "keys").seal(b"x")


# -- StoredKeyRing: keys in a metadata store's table (lampi.store.keyring.StoredKeys) ---------


class _Table:
    """The keys table as a dict (the stores' own are in the contract suite); ``down``
    makes every call fail as a database that went away."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, int], tuple[str, str]] = {}
        self.down = False

    def _up(self) -> None:
        if self.down:
            raise ConnectionError("database away")

    def key_rows(self, ring):  # noqa: ANN001, ANN201
        self._up()
        return [(n, *v) for (r, n), v in sorted(self.rows.items()) if r == ring]

    def insert_key_rows(self, rows, *, fresh_check=False):  # noqa: ANN001, ANN201
        self._up()
        if any((r, n) in self.rows for r, n, _, _ in rows):
            return False
        for r, n, kid, sealed in rows:
            self.rows[(r, n)] = (kid, sealed)
        return True

    def delete_key_rows(self, ring, ns):  # noqa: ANN001, ANN201
        self._up()
        return sum(self.rows.pop((ring, n), None) is not None for n in ns)

    def key_rings(self):  # noqa: ANN201
        self._up()
        return sorted({r for r, _ in self.rows})


def test_stored_ring_goes_on_with_its_keys_while_the_database_is_away(monkeypatch) -> None:  # noqa: ANN001
    from cryptography.fernet import Fernet

    from lampi.store import keyring
    from lampi.store.keyring import MasterKeySource, StoredKeys

    table = _Table()
    keys = StoredKeys(table, MasterKeySource(value=Fernet.generate_key().decode()))
    ring = keys.ring("sse")
    kid = ring.primary(create=True)
    table.down = True
    monkeypatch.setattr(keyring, "FRESH", 0.0)  # every look at the primary goes to the table
    assert ring.primary() == kid  # the periodic look failed: the keys in memory serve
    assert ring.secret(kid)
    with pytest.raises(ConnectionError):  # a key it does not have: the error, not a wrong answer
        ring.secret("0123456789abcdef")
    table.down = False
    other = StoredKeys(table, keys.source).ring("sse")
    assert other.add_key() != kid
    assert ring.primary() == other.primary()  # back: the new primary is taken in


def test_malformed_key_file_is_refused_at_import(tmp_path: Path) -> None:
    from cryptography.fernet import Fernet

    from lampi.store.keyring import MasterKeyError, MasterKeySource, StoredKeys

    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "credential-0").write_text("not a key")
    keys = StoredKeys(_Table(), MasterKeySource(value=Fernet.generate_key().decode()), import_dir=tmp_path / "keys")
    with pytest.raises(MasterKeyError, match="credential-0 into the metadata store: it is not a Fernet key"):
        keys.check()


def test_store_keys_copy_into_another_key_dir(tmp_path):
    """lampi migrate moves every key of a store (tokens, credentials, SSE, KMS) through
    ``store_keys`` / ``install_store_keys``: written once, 0600, and refused over another
    store's keys."""
    import stat

    from lampi.core.sse import KeyService
    from lampi.core.tokens import load_keys
    from lampi.store.keyring import SealError, install_store_keys, store_keys

    src = tmp_path / "src" / "keys"
    load_keys(src)
    KeyRing(src, "credential").primary(create=True)
    svc = KeyService(src)
    svc.master.primary(create=True)
    svc.kms_create("lab-key")
    keys = store_keys(src)
    assert set(keys) == {"fernet-0", "credential-0", "sse-0", "kms/lab-key-0"}
    dst = tmp_path / "dst" / "keys"
    assert install_store_keys(dst, keys) == 4
    assert store_keys(dst) == keys
    assert stat.S_IMODE((dst / "kms" / "lab-key-0").stat().st_mode) == 0o600
    assert install_store_keys(dst, keys) == 0  # again: nothing to do
    ring = KeyRing(dst, "credential")
    kid, token = KeyRing(src, "credential").seal(b"secret")
    assert ring.open(kid, token) == b"secret"
    other = tmp_path / "other" / "keys"
    load_keys(other)
    with pytest.raises(SealError):
        install_store_keys(other, keys)
    assert sorted(p.name for p in other.iterdir()) == ["fernet-0"]  # nothing written


# -- from the event loop: a key ring never reads its source on the loop's thread ------------


def test_request_paths_read_the_keys_table_off_the_event_loop(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """Tokens issued and validated, SSE data keys made and opened, KMS keys looked up, as
    the request handlers ask (``lampi.core.identity``, ``lampi.core.storage``): every read
    of the keys table (a real SQLite store with a master key; PostgreSQL's is the same
    mixin) runs on a thread, never on the event loop's, and a key another gateway made
    since is still found at once. A burst of tokens no key verifies reads the table a
    few times, not once each."""
    import asyncio
    import threading

    from lampi.core import sse
    from lampi.core.tokens import TokenCodec, TokenError
    from lampi.store import keyring
    from lampi.store.keyring import MasterKeySource
    from lampi.store.meta.factory import open_meta

    source = MasterKeySource(value=Fernet.generate_key().decode())
    meta = open_meta("", tmp_path, master_key=source)
    other = open_meta("", tmp_path, master_key=source)  # another gateway over the same table
    reads: list[str] = []
    real = meta.key_rows

    def key_rows(ring):  # noqa: ANN001, ANN202 - the real query, its thread noted
        reads.append(threading.current_thread().name)
        return real(ring)

    monkeypatch.setattr(meta, "key_rows", key_rows)
    codec = TokenCodec(meta.keys.ring("fernet"))  # start-up: reads here (no loop yet)
    service = sse.KeyService(meta.keys)
    monkeypatch.setattr(keyring, "FRESH", 0.0)  # every look at a primary goes to the table

    async def main() -> None:
        loop_thread = threading.current_thread().name
        reads.clear()
        args = {"user_id": "u", "project_id": "p", "roles": ("member",), "methods": ("password",), "ttl": 60}
        tok, data = await codec.aissue(**args)
        assert (await codec.adecode(tok)).audit_id == data.audit_id
        # a token key made by another gateway: a token it signed validates here at once
        theirs = TokenCodec(other.keys.ring("fernet"))
        other.keys.ring("fernet").add_key()
        tok2, _ = theirs.issue(**args)
        assert (await codec.adecode(tok2)).user_id == "u"
        # SSE-S3 and KMS data keys; a master key rotated by another gateway
        key, meta1 = await service.anew_data_key(sse.Encryption(sse.SSE_S3))
        assert await service.adata_key(meta1) == key
        sse.KeyService(other.keys).kms_create("lab")
        assert await service.akms_exists("lab") and not await service.akms_exists("nope")
        key2, meta2 = sse.KeyService(other.keys).new_data_key(sse.Encryption(sse.SSE_KMS, "lab"))
        assert await service.adata_key(meta2) == key2
        sse.KeyService(other.keys).rotate_master()
        key3, meta3 = sse.KeyService(other.keys).new_data_key(sse.Encryption(sse.SSE_S3))
        assert await service.adata_key(meta3) == key3
        assert reads and loop_thread not in reads, reads
        # forged tokens (no key verifies them): each would make the ring look again
        reads.clear()
        forged = [Fernet(Fernet.generate_key()).encrypt(b"[]").decode().rstrip("=") for _ in range(40)]
        results = await asyncio.gather(*(codec.adecode(f) for f in forged), return_exceptions=True)
        assert all(isinstance(r, TokenError) for r in results)
        assert 1 <= len(reads) <= 3, len(reads)
        assert loop_thread not in reads

    try:
        asyncio.run(main())
    finally:
        asyncio.run(meta.close())
        asyncio.run(other.close())
