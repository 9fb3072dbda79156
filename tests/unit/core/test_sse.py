"""Encryption at rest (lampi/core/sse.py): the chunked AES-GCM blob format read back by
range, its integrity checks, data keys wrapped by server keys or derived from a
customer's key, and rotation."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from lampi.core import errors, sse
from lampi.core.blobwrite import HASH_BUFFER, stream_to_blob
from lampi.store.blob.fs import FSBlobStore
from lampi.store.blob.memory import MemoryBlobStore


@pytest.fixture(params=["fs", "memory"])
def blobs(request, tmp_path: Path):
    if request.param == "fs":
        return FSBlobStore(tmp_path / "root")
    return MemoryBlobStore()


async def body(data: bytes, step: int):
    for i in range(0, len(data), step):
        yield data[i:i + step]


async def read_all(it) -> bytes:
    return b"".join([c async for c in it])


SIZES = [0, 1, sse.CHUNK - 1, sse.CHUNK, sse.CHUNK + 1, 3 * sse.CHUNK, HASH_BUFFER + 5, 2 * HASH_BUFFER]


@pytest.mark.parametrize("size", SIZES)
async def test_a_sealed_blob_reads_back_whole_and_by_range(blobs, size: int) -> None:
    data = os.urandom(size)
    key = os.urandom(32)
    blob_id, n, md5 = await stream_to_blob(blobs, body(data, 100_000), expected_size=size, sealer=sse.Sealer(key))
    assert n == size
    import hashlib

    assert md5 == hashlib.md5(data).hexdigest()  # the plaintext's, for Content-MD5 and ETags
    raw = await read_all(blobs.read(blob_id))
    assert len(raw) == sse.stored_size(size)
    if size >= 16:
        assert data[:16] not in raw  # not stored in clear
    assert await read_all(sse.read(blobs, blob_id, size, key)) == data
    for off, ln in [(0, 1), (1, 10), (sse.CHUNK - 3, 7), (sse.CHUNK, sse.CHUNK), (size // 2, size), (size - 1, 1)]:
        if size == 0 or off >= size or off < 0:
            continue
        got = await read_all(sse.read(blobs, blob_id, size, key, off, ln))
        assert got == data[off:off + ln], (off, ln)


async def test_another_key_or_an_altered_byte_is_refused(tmp_path: Path) -> None:
    blobs = FSBlobStore(tmp_path / "root")
    data = os.urandom(3 * sse.CHUNK + 100)
    key = os.urandom(32)
    blob_id, *_ = await stream_to_blob(blobs, body(data, 65536), sealer=sse.Sealer(key))
    blobs.release(blob_id)
    with pytest.raises(errors.DataUnavailable, match="integrity"):
        await read_all(sse.read(blobs, blob_id, len(data), os.urandom(32)))
    path = blobs.path_for(blob_id)
    raw = bytearray(path.read_bytes())
    raw[sse.HEADER + sse.CHUNK + sse.TAG + 5] ^= 1  # a byte of the second chunk
    path.write_bytes(bytes(raw))
    assert await read_all(sse.read(blobs, blob_id, len(data), key, 0, 100)) == data[:100]  # chunk 0 is intact
    with pytest.raises(errors.DataUnavailable, match="integrity"):
        await read_all(sse.read(blobs, blob_id, len(data), key))
    # cut short at a chunk boundary: the last chunk must say it is the last
    path.write_bytes(bytes(raw[:sse.HEADER + 2 * (sse.CHUNK + sse.TAG)]))
    with pytest.raises(errors.DataUnavailable):
        await read_all(sse.read(blobs, blob_id, 2 * sse.CHUNK, key))
    path.unlink()
    with pytest.raises(errors.DataUnavailable, match="missing"):
        await read_all(sse.read(blobs, blob_id, len(data), key, sse.CHUNK * 2, 10))


def test_server_keys_wrap_data_keys_and_rotate(tmp_path: Path) -> None:
    keys = sse.KeyService(tmp_path / "keys")
    k1, meta1 = keys.new_data_key(sse.Encryption(sse.SSE_S3))
    assert meta1[sse.MODE_KEY] == "AES256" and k1.hex() not in str(meta1)
    assert stat.S_IMODE(os.stat(tmp_path / "keys" / "sse-0").st_mode) == 0o600
    assert keys.data_key(meta1) == k1
    keys.rotate_master()
    k2, meta2 = keys.new_data_key(sse.Encryption(sse.SSE_S3))
    assert meta2[sse.WRAPPED_KEY].split(":")[0] != meta1[sse.WRAPPED_KEY].split(":")[0]
    assert keys.data_key(meta1) == k1 and keys.data_key(meta2) == k2  # old keys still open
    (tmp_path / "keys" / "sse-0").unlink()  # lost: a process that had not loaded it cannot open meta1
    fresh = sse.KeyService(tmp_path / "keys")
    with pytest.raises(errors.EncryptionKeyUnavailable):
        fresh.data_key(meta1)
    assert fresh.data_key(meta2) == k2


def test_kms_keys_are_named_and_must_exist(tmp_path: Path) -> None:
    keys = sse.KeyService(tmp_path / "keys")
    with pytest.raises(errors.NoSuchEncryptionKey):
        keys.new_data_key(sse.Encryption(sse.SSE_KMS, "testkey-1"))
    keys.kms_create("testkey-1")
    keys.kms_create("testkey-2")
    with pytest.raises(errors.Conflict):
        keys.kms_create("testkey-1")
    assert keys.kms_names() == ["testkey-1", "testkey-2"]
    k, meta = keys.new_data_key(sse.Encryption(sse.SSE_KMS, "testkey-1"))
    assert meta[sse.KMS_KEY] == "testkey-1"
    keys.kms_rotate("testkey-1")
    assert len(keys.kms_versions("testkey-1")) == 2
    assert keys.data_key(meta) == k
    # the wrapped key names its KMS key: it does not open under another
    with pytest.raises(errors.EncryptionKeyUnavailable):
        keys.data_key({**meta, sse.KMS_KEY: "testkey-2"})
    for bad in ("../sse", "a/b", "", ".hidden"):
        assert not keys.kms_exists(bad)


def test_customer_keys_are_never_stored_and_are_checked(tmp_path: Path) -> None:
    keys = sse.KeyService(tmp_path / "keys")
    ck = os.urandom(32)
    k, meta = keys.new_data_key(sse.Encryption(sse.SSE_C, customer_key=ck))
    assert ck.hex() not in str(meta) and __import__("base64").b64encode(ck).decode() not in str(meta)
    assert not (tmp_path / "keys").exists()  # no server key involved
    assert keys.data_key(meta, ck) == k
    with pytest.raises(errors.EncryptionKeyMismatch):
        keys.data_key(meta, os.urandom(32))
    with pytest.raises(errors.EncryptionKeyRequired):
        keys.data_key(meta)
    # the same key makes another data key for another object (per-object salt)
    k2, _ = keys.new_data_key(sse.Encryption(sse.SSE_C, customer_key=ck))
    assert k2 != k
    # a customer key for an object that is not SSE-C is refused, never ignored
    _, s3meta = keys.new_data_key(sse.Encryption(sse.SSE_S3))
    with pytest.raises(errors.EncryptionNotApplicable):
        keys.data_key(s3meta, ck)


def test_etags() -> None:
    md5 = "0" * 32
    assert sse.etag_for({sse.MODE_KEY: sse.SSE_S3}, b"k" * 32, md5) == md5
    assert sse.etag_for({sse.MODE_KEY: sse.SSE_KMS}, b"k" * 32, md5) == md5
    opaque = sse.etag_for({sse.MODE_KEY: sse.SSE_C}, b"k" * 32, md5)
    assert opaque != md5 and len(opaque) == 32 and int(opaque, 16) >= 0
