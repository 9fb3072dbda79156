"""HMAC-SHA256 under keys that sign many messages (RFC 2104), for S3's signatures: the
server's checks (lampi.s3.sigv4, lampi.s3.body, lampi.s3.post) and the bench's own signer.

OpenSSL 3 sets an HMAC up anew at each ``hmac.digest`` (~5 µs a call, ~3 of them the
set-up). A SigV4 signing key serves a day's requests, so its two pad blocks are hashed
once and the hashes copied per message (~2 µs)."""

from __future__ import annotations

import functools
import hashlib

_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


@functools.lru_cache(maxsize=1024)
def _pads(key: bytes):  # noqa: ANN202
    """The inner and outer hashes with ``key``'s pads already fed."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    block = key.ljust(64, b"\0")
    return hashlib.sha256(block.translate(_IPAD)), hashlib.sha256(block.translate(_OPAD))


def hmac_sha256_hex(key: bytes, msg: bytes) -> str:
    """HMAC-SHA256 of ``msg`` under ``key``, in hex (as ``hmac.digest(key, msg, "sha256").hex()``)."""
    inner, outer = _pads(key)
    i = inner.copy()
    i.update(msg)
    o = outer.copy()
    o.update(i.digest())
    return o.hexdigest()
