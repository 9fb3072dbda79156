"""Server-side encryption at rest: the format of encrypted blobs, per-object data keys,
and the keys that protect them. Protocol-neutral (the S3 headers are ``lampi.s3.sse``).

Three ways an object's bytes are encrypted, as S3 names them:

* ``AES256`` (SSE-S3): a random 256-bit data key per object, wrapped with the primary
  *master key* ``<data-dir>/keys/sse-<n>`` (the key ring of ``lampi.store.keyring``, as
  the EC2 secrets' ``credential-<n>``); ``lampi sse rotate-key`` makes a new one.
* ``aws:kms`` (SSE-KMS): the same, the data key wrapped with a named key of the local
  key store ``<data-dir>/keys/kms/<name>-<n>`` (``lampi kms create|list|rotate``).
* ``SSE-C``: the customer sends a 256-bit key with every request and lampi never stores
  it. The object's data key is derived from it (HKDF-SHA256 with a random per-object
  salt); what is stored is the salt and a *verifier* (another HKDF output), which tells
  a wrong key from the right one and gives nothing to compute the key from.

The data key never encrypts bytes directly. Each blob (an object's, or each part of a
multipart upload) starts with a 20-byte header — ``LSE1`` and a random 16-byte salt —
and its blob key is HKDF(data key, salt); the plaintext is cut into 64 KiB chunks, each
sealed with AES-256-GCM: nonce = the chunk's index, associated data = the index and
whether it is the last chunk, so chunks cannot be reordered, dropped or cut short
unnoticed. A blob of ``n`` plaintext bytes holds ``stored_size(n)`` bytes. A range read
decrypts only the chunks it overlaps (``read``). Writes stream (``Sealer``); memory is
one chunk plus the caller's buffer.

What an object keeps about its encryption is system metadata (``s3-`` keys: internal,
never sent as Swift headers, kept by Swift POST): ``s3-sse`` the mode, ``s3-sse-key``
the wrapped data key (or the SSE-C salt and verifier), ``s3-sse-kms-key-id`` the KMS key,
``s3-sse-stored`` the blob's size on disk (what fsck checks). ``Storage`` owns these
keys: it sets them on every write and keeps them on metadata updates.

ETags: an SSE-C object's ETag is not the MD5 of its plaintext (as in S3): it is an HMAC
of that MD5 under the data key, so neither a listing nor the stored metadata tells
anyone without the key whether the object holds bytes they can guess. SSE-S3 and
SSE-KMS objects keep the MD5 (S3 too for SSE-S3; for SSE-KMS S3 does not, but Swift's
own encryption keeps it, and Swift clients writing into a bucket whose default is
``aws:kms`` check their upload against it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import re
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from lampi.core import errors
from lampi.store.blob.base import BlobStore
from lampi.store.keyring import FileKeys, KeyRing, SealError, StoredKeyRing, StoredKeys

log = logging.getLogger("lampi.core.sse")

SSE_S3 = "AES256"
SSE_KMS = "aws:kms"
SSE_C = "SSE-C"
MODES = (SSE_S3, SSE_KMS, SSE_C)

CHUNK = 64 * 1024  # plaintext bytes per sealed chunk
TAG = 16  # AES-GCM tag
MAGIC = b"LSE1"
SALT = 16
HEADER = len(MAGIC) + SALT
KEY_BYTES = 32

# system metadata of an encrypted object or multipart upload (see the module docstring)
MODE_KEY = "s3-sse"
WRAPPED_KEY = "s3-sse-key"
KMS_KEY = "s3-sse-kms-key-id"
STORED_KEY = "s3-sse-stored"
SYSMETA_KEYS = (MODE_KEY, WRAPPED_KEY, KMS_KEY, STORED_KEY)

# a bucket's default encryption (S3 PutBucketEncryption), JSON in container metadata
DEFAULT_KEY = "sys:s3-encryption"

KMS_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def stored_size(n: int) -> int:
    """Bytes on disk of an encrypted blob of ``n`` plaintext bytes."""
    return HEADER + n + TAG * -(-n // CHUNK)


def _hkdf(key: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, info=info).derive(key)


def _nonce(index: int) -> bytes:
    return struct.pack(">4xQ", index)


def _aad(index: int, last: bool) -> bytes:
    return struct.pack(">QB", index, 1 if last else 0)


@dataclass(frozen=True, slots=True)
class Encryption:
    """What a write asks for: a mode, the KMS key's name (``aws:kms``), the customer's
    key (``SSE-C``; only ever held in memory)."""

    mode: str
    kms_key: str = ""
    customer_key: bytes = field(default=b"", repr=False)


def mode_of(sysmeta: dict[str, str]) -> str | None:
    return sysmeta.get(MODE_KEY) or None


def is_encrypted(sysmeta: dict[str, str]) -> bool:
    return MODE_KEY in sysmeta


def own_keys(sysmeta: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in sysmeta.items() if k in SYSMETA_KEYS}


def without_keys(sysmeta: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in sysmeta.items() if k not in SYSMETA_KEYS}


def opaque_etag(data_key: bytes, md5_hex: str) -> str:
    """The ETag of an SSE-C object (or part): not the plaintext's MD5."""
    return hmac.new(data_key, b"lampi-sse etag " + bytes.fromhex(md5_hex), hashlib.sha256).hexdigest()[:32]


def etag_for(sysmeta: dict[str, str], data_key: bytes | None, md5_hex: str) -> str:
    if data_key is not None and mode_of(sysmeta) == SSE_C:
        return opaque_etag(data_key, md5_hex)
    return md5_hex


# -- the default encryption of a bucket ------------------------------------------------


def bucket_default(container_meta: dict[str, str]) -> dict[str, object] | None:
    """``{"SSEAlgorithm": ..., "KMSMasterKeyID": ..., "BucketKeyEnabled": ...}`` or None."""
    raw = container_meta.get(DEFAULT_KEY)
    if not raw:
        return None
    try:
        conf = json.loads(raw)
    except ValueError:
        return None
    return conf if isinstance(conf, dict) and conf.get("SSEAlgorithm") in (SSE_S3, SSE_KMS) else None


def default_encryption(container_meta: dict[str, str]) -> Encryption | None:
    conf = bucket_default(container_meta)
    if conf is None:
        return None
    return Encryption(str(conf["SSEAlgorithm"]), str(conf.get("KMSMasterKeyID") or ""))


# -- keys ---------------------------------------------------------------------------------


class KeyService:
    """The server-managed keys: SSE-S3 master keys (ring ``sse``) and named KMS keys (rings
    ``kms/<name>``), in the store's key source (``lampi.store.keyring``: files
    ``<data-dir>/keys/sse-<n>`` and ``keys/kms/<name>-<n>`` on one node, or the metadata
    store's keys table); the newest key of a ring wraps new data keys, every key stays
    until nothing it wrapped is left (rotation)."""

    def __init__(self, keys: Path | FileKeys | StoredKeys) -> None:
        self.keys = FileKeys(keys) if isinstance(keys, (str, Path)) else keys
        self.master = self.keys.ring("sse")

    # KMS keys ---------------------------------------------------------------------

    def _kms_ring(self, name: str) -> KeyRing | StoredKeyRing:
        if not KMS_NAME.fullmatch(name):
            raise errors.NoSuchEncryptionKey(f"Invalid keyId {name}")
        return self.keys.ring(f"kms/{name}")

    def kms_exists(self, name: str) -> bool:
        try:
            return self._kms_ring(name).exists()
        except errors.NoSuchEncryptionKey:
            return False

    async def akms_exists(self, name: str) -> bool:
        """``kms_exists`` for the event loop (a read of the key source runs on a thread)."""
        try:
            return await self._kms_ring(name).aexists()
        except errors.NoSuchEncryptionKey:
            return False

    def kms_names(self) -> list[str]:
        return self.keys.kms_names()

    def kms_versions(self, name: str) -> list[str]:
        return self._kms_ring(name).key_ids()

    def kms_create(self, name: str) -> str:
        """Make KMS key ``name``; its first version's id. Conflict if it exists."""
        if not KMS_NAME.fullmatch(name):
            raise errors.InvalidArgument(f"KMS key names are 1-128 letters, digits, '.', '_' or '-' (got {name!r})")
        ring = self._kms_ring(name)
        if ring.exists():
            raise errors.Conflict(f"KMS key {name} exists")
        kid = ring.primary(create=True)
        assert kid is not None
        return kid

    def kms_rotate(self, name: str) -> str:
        """A new version of KMS key ``name`` wraps new data keys; older versions stay."""
        ring = self._kms_ring(name)
        if not ring.exists():
            raise errors.NoSuchEncryptionKey(f"Invalid keyId {name}")
        return ring.add_key()

    def rotate_master(self) -> str:
        """A new SSE-S3 master key wraps new data keys; older ones stay."""
        return self.master.add_key()

    # data keys --------------------------------------------------------------------

    def _ring(self, mode: str, kms_key: str, create: bool) -> KeyRing | StoredKeyRing:
        if mode == SSE_S3:
            return self.master
        ring = self._kms_ring(kms_key)
        if create and not ring.exists():
            raise errors.NoSuchEncryptionKey(f"Invalid keyId {kms_key}")
        return ring

    def _aad(self, mode: str, kms_key: str) -> bytes:
        return b"lampi-sse wrap " + mode.encode() + b" " + kms_key.encode()

    def new_data_key(self, enc: Encryption) -> tuple[bytes, dict[str, str]]:
        """A fresh data key for a write and the system metadata recording it (may read
        the key source: ``anew_data_key`` on the event loop)."""
        def primary(ring: KeyRing | StoredKeyRing, create: bool) -> tuple[str, bytes]:
            return ring.primary_secret(create=create)

        if enc.mode in (SSE_S3, SSE_KMS):
            ring = self._ring(enc.mode, enc.kms_key if enc.mode == SSE_KMS else "", create=True)
            return self._new_data_key(enc, lambda: primary(ring, enc.mode == SSE_S3))
        return self._new_data_key(enc, None)

    async def anew_data_key(self, enc: Encryption) -> tuple[bytes, dict[str, str]]:
        """``new_data_key`` for the event loop: the key source is read on a thread."""
        if enc.mode not in (SSE_S3, SSE_KMS):
            return self._new_data_key(enc, None)
        kms_key = enc.kms_key if enc.mode == SSE_KMS else ""
        ring = self._ring(enc.mode, kms_key, create=False)
        if enc.mode == SSE_KMS and not await ring.aexists():
            raise errors.NoSuchEncryptionKey(f"Invalid keyId {kms_key}")
        try:
            found = await ring.aprimary_secret(create=enc.mode == SSE_S3)
        except SealError as exc:
            return self._new_data_key(enc, _raiser(exc))
        return self._new_data_key(enc, lambda: found)

    def _new_data_key(
        self, enc: Encryption, primary: Callable[[], tuple[str, bytes]] | None
    ) -> tuple[bytes, dict[str, str]]:
        if enc.mode == SSE_C:
            if len(enc.customer_key) != KEY_BYTES:
                raise errors.InvalidArgument("The secret key was invalid for the specified algorithm.")
            salt = os.urandom(SALT)
            key, verifier = _customer_keys(enc.customer_key, salt)
            wrapped = f"{_b64(salt)}:{_b64(verifier)}"
            return key, {MODE_KEY: SSE_C, WRAPPED_KEY: wrapped}
        if enc.mode not in (SSE_S3, SSE_KMS) or primary is None:
            raise errors.InvalidArgument(f"unknown encryption mode {enc.mode!r}")
        kms_key = enc.kms_key if enc.mode == SSE_KMS else ""
        try:
            kid, secret = primary()
        except SealError as exc:
            if enc.mode == SSE_KMS:
                raise errors.NoSuchEncryptionKey(f"Invalid keyId {kms_key}") from None
            raise errors.EncryptionKeyUnavailable(str(exc)) from None
        key = os.urandom(KEY_BYTES)
        nonce = os.urandom(12)
        sealed = AESGCM(_hkdf(secret, b"", b"lampi-sse wrap v1")).encrypt(nonce, key, self._aad(enc.mode, kms_key))
        out = {MODE_KEY: enc.mode, WRAPPED_KEY: f"{kid}:{_b64(nonce + sealed)}"}
        if enc.mode == SSE_KMS:
            out[KMS_KEY] = kms_key
        return key, out

    def data_key(self, sysmeta: dict[str, str], customer_key: bytes | None = None) -> bytes | None:
        """The data key of an object (or upload) with system metadata ``sysmeta``; None
        when it is not encrypted. For SSE-C the customer's key is needed and checked;
        a customer key for an object that is not SSE-C is refused, never ignored. May
        read the key source (``adata_key`` on the event loop)."""
        return self._data_key(sysmeta, customer_key,
                              lambda mode, kms_key, kid: self._ring(mode, kms_key, create=False).secret(kid))

    async def adata_key(self, sysmeta: dict[str, str], customer_key: bytes | None = None) -> bytes | None:
        """``data_key`` for the event loop: a key not in memory is looked for on a thread."""
        mode = mode_of(sysmeta)
        secret_of: Callable[[str, str, str], bytes] = _raiser(SealError("no key"))
        if mode in (SSE_S3, SSE_KMS) and customer_key is None:
            kid = sysmeta.get(WRAPPED_KEY, "").split(":", 1)[0]
            try:
                ring = self._ring(mode, sysmeta.get(KMS_KEY, "") if mode == SSE_KMS else "", create=False)
                secret = await ring.asecret(kid)
                secret_of = lambda *_: secret  # noqa: E731
            except (SealError, errors.NoSuchEncryptionKey) as exc:
                secret_of = _raiser(exc)  # reported by _data_key
        return self._data_key(sysmeta, customer_key, secret_of)

    def _data_key(
        self, sysmeta: dict[str, str], customer_key: bytes | None, secret_of: Callable[[str, str, str], bytes]
    ) -> bytes | None:
        mode = mode_of(sysmeta)
        if mode is None:
            if customer_key is not None:
                raise errors.EncryptionNotApplicable()
            return None
        wrapped = sysmeta.get(WRAPPED_KEY, "")
        if mode == SSE_C:
            if customer_key is None:
                raise errors.EncryptionKeyRequired()
            try:
                salt_s, ver_s = wrapped.split(":", 1)
                salt, verifier = _unb64(salt_s), _unb64(ver_s)
            except ValueError:
                raise errors.EncryptionKeyUnavailable("the object's SSE-C record is damaged") from None
            key, expected = _customer_keys(customer_key, salt)
            if not hmac.compare_digest(expected, verifier):
                raise errors.EncryptionKeyMismatch()
            return key
        if customer_key is not None:
            raise errors.EncryptionNotApplicable()
        kms_key = sysmeta.get(KMS_KEY, "") if mode == SSE_KMS else ""
        try:
            kid, token = wrapped.split(":", 1)
            blob = _unb64(token)
            secret = secret_of(mode, kms_key, kid)
            return AESGCM(_hkdf(secret, b"", b"lampi-sse wrap v1")).decrypt(blob[:12], blob[12:],
                                                                          self._aad(mode, kms_key))
        except (ValueError, SealError, InvalidTag, errors.NoSuchEncryptionKey) as exc:
            what = f"KMS key {kms_key!r}" if mode == SSE_KMS else "SSE-S3 master key"
            log.error("cannot unwrap a data key (%s): %s", what, exc)
            raise errors.EncryptionKeyUnavailable(
                f"The {what} that encrypted this object is not available.") from None

    def key_ids_in_use(self) -> list[str]:
        return self.master.key_ids()


def _raiser(exc: Exception) -> Callable[..., Any]:
    def fn(*_: Any) -> Any:
        raise exc

    return fn


def _customer_keys(customer_key: bytes, salt: bytes) -> tuple[bytes, bytes]:
    """(data key, verifier) of an SSE-C object from the customer's key and its salt."""
    key = _hkdf(customer_key, salt, b"lampi-sse customer data key v1")
    verifier = _hkdf(customer_key, salt, b"lampi-sse customer key verifier v1")[:16]
    return key, verifier


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def _unb64(s: str) -> bytes:
    try:
        return base64.b64decode(s.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeError):
        raise ValueError("not base64") from None


# -- writing ------------------------------------------------------------------------------


class Sealer:
    """Encrypts one blob's plaintext as it streams: ``update(data)`` returns the sealed
    bytes of every chunk known not to be the last (the header first), ``finish()`` the
    rest. Output size: ``stored_size(total plaintext)``."""

    def __init__(self, data_key: bytes) -> None:
        self._salt = os.urandom(SALT)
        self._aead = AESGCM(_hkdf(data_key, self._salt, b"lampi-sse blob v1"))
        self._index = 0
        self._pending = bytearray()
        self._started = False
        self.plain_size = 0

    def _start(self, out: bytearray) -> None:
        if not self._started:
            out += MAGIC + self._salt
            self._started = True

    def _seal(self, out: bytearray, piece: bytes | bytearray | memoryview, last: bool) -> None:
        out += self._aead.encrypt(_nonce(self._index), piece, _aad(self._index, last))
        self._index += 1

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        out = bytearray()
        self._start(out)
        self.plain_size += len(data)
        with memoryview(data) as mv:
            pos = 0
            if self._pending:  # complete the chunk begun by the previous call
                need = CHUNK - len(self._pending)
                if len(mv) <= need:
                    self._pending += mv
                    return bytes(out)
                self._pending += mv[:need]
                pos = need
                self._seal(out, self._pending, False)
                self._pending = bytearray()
            full = (len(mv) - pos - 1) // CHUNK  # keep at least one byte: the last chunk is sealed in finish
            for _ in range(max(full, 0)):
                self._seal(out, mv[pos:pos + CHUNK], False)
                pos += CHUNK
            self._pending += mv[pos:]
        return bytes(out)

    def finish(self) -> bytes:
        out = bytearray()
        self._start(out)
        if self._pending:
            self._seal(out, bytes(self._pending), True)
            self._pending = bytearray()
        return bytes(out)


# -- reading ------------------------------------------------------------------------------

READ_BATCH = 256 * 1024  # plaintext handed on at a time


async def read(
    blobs: BlobStore, blob_id: str, plain_size: int, data_key: bytes, offset: int = 0, length: int | None = None
) -> AsyncIterator[bytes]:
    """Plaintext bytes [offset, offset + length) of the encrypted blob ``blob_id`` holding
    ``plain_size`` bytes: reads and decrypts only the chunks the range overlaps.

    A missing, short or altered blob raises ``DataUnavailable`` (before the first byte
    when the damage is in the first chunk read, else part way: callers cut the reply)."""
    end = plain_size if length is None else min(plain_size, offset + length)
    if end <= offset:
        return
    total_chunks = -(-plain_size // CHUNK)
    first, last = offset // CHUNK, (end - 1) // CHUNK
    start = HEADER + first * (CHUNK + TAG)
    last_len = min(CHUNK, plain_size - last * CHUNK)
    stop = HEADER + last * (CHUNK + TAG) + last_len + TAG
    if first == 0:  # one read: the header and the chunks are contiguous
        it = blobs.read(blob_id, 0, stop).__aiter__()
    else:
        it = blobs.read(blob_id, start, stop - start).__aiter__()
    try:
        buf = bytearray()
        if first == 0:
            while len(buf) < HEADER:
                piece = await _next(it, blob_id)
                if piece is None:
                    break
                buf += piece
            head = bytes(buf[:HEADER])
            del buf[:HEADER]
        else:
            head_it = blobs.read(blob_id, 0, HEADER).__aiter__()
            head = b""
            while (piece := await _next(head_it, blob_id)) is not None:
                head += piece
        if len(head) != HEADER or head[:len(MAGIC)] != MAGIC:
            raise errors.DataUnavailable(f"blob {blob_id} is not an encrypted blob (damaged?)")
        aead = AESGCM(_hkdf(data_key, head[len(MAGIC):], b"lampi-sse blob v1"))
        index, skip, left = first, offset - first * CHUNK, end - offset
        out = bytearray()
        while left > 0:
            piece = await _next(it, blob_id)
            if piece is not None:
                buf += piece
            pos = 0
            while index <= last:  # every whole sealed chunk in the buffer
                plen = CHUNK if index < total_chunks - 1 else plain_size - index * CHUNK
                if len(buf) - pos < plen + TAG:
                    break
                try:
                    plain = aead.decrypt(_nonce(index), bytes(buf[pos:pos + plen + TAG]),
                                         _aad(index, index == total_chunks - 1))
                except InvalidTag:
                    log.error("blob %s: chunk %d fails its integrity check (damaged, or not this object's)",
                              blob_id, index)
                    raise errors.DataUnavailable(f"blob {blob_id} fails its integrity check") from None
                pos += plen + TAG
                index += 1
                if skip:
                    plain, skip = plain[skip:], 0
                if len(plain) > left:
                    plain = plain[:left]
                left -= len(plain)
                out += plain
            del buf[:pos]
            if out and (len(out) >= READ_BATCH or left == 0 or piece is None):
                yield bytes(out)
                out.clear()
            if left and piece is None:
                raise errors.DataUnavailable(f"blob {blob_id} is shorter than its object (run lampi fsck)")
    finally:
        aclose = getattr(it, "aclose", None)
        if aclose is not None:
            await aclose()


async def _next(it: AsyncIterator[bytes], blob_id: str) -> bytes | None:
    try:
        return await anext(it, None)
    except (FileNotFoundError, KeyError):
        log.error("blob %s is missing (run lampi fsck)", blob_id)
        raise errors.DataUnavailable(f"blob {blob_id} is missing (run lampi fsck)") from None
