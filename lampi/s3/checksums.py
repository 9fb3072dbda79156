"""Streaming checksums S3 clients send: x-amz-checksum-crc32|crc32c|crc64nvme|sha1|sha256.

Values travel base64-encoded big-endian (CRCs) or as raw digests (SHA). CRC64/NVME is
computed with awscrt when installed, else with a table in pure Python (slow but right).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import zlib
from typing import Protocol

ALGORITHMS = ("crc32", "crc32c", "crc64nvme", "sha1", "sha256")
_LENGTHS = {"crc32": 4, "crc32c": 4, "crc64nvme": 8, "sha1": 20, "sha256": 32}


class Checksum(Protocol):
    def update(self, data: bytes) -> None: ...
    def digest(self) -> bytes: ...


class _CRC32:
    def __init__(self) -> None:
        self.v = 0

    def update(self, data: bytes) -> None:
        self.v = zlib.crc32(data, self.v)

    def digest(self) -> bytes:
        return self.v.to_bytes(4, "big")


class _CRC32C:
    def __init__(self) -> None:
        import google_crc32c

        self.v = 0
        self._extend = google_crc32c.extend

    def update(self, data: bytes) -> None:
        self.v = self._extend(self.v, data)

    def digest(self) -> bytes:
        return self.v.to_bytes(4, "big")


def _crc64_table() -> list[int]:
    poly = 0x9A6C9329AC4BC9B5  # CRC-64/NVME, reflected
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_CRC64_TABLE: list[int] | None = None


class _CRC64NVME:
    def __init__(self) -> None:
        self.v = 0
        try:
            from awscrt import checksums as crt  # type: ignore[import-not-found]

            self._crt = crt.crc64nvme
        except ImportError:
            self._crt = None

    def update(self, data: bytes) -> None:
        global _CRC64_TABLE
        if self._crt is not None:
            self.v = self._crt(data, self.v)
            return
        if _CRC64_TABLE is None:
            _CRC64_TABLE = _crc64_table()
        t = _CRC64_TABLE
        c = self.v ^ 0xFFFFFFFFFFFFFFFF
        for b in data:
            c = t[(c ^ b) & 0xFF] ^ (c >> 8)
        self.v = c ^ 0xFFFFFFFFFFFFFFFF

    def digest(self) -> bytes:
        return self.v.to_bytes(8, "big")


def new(algorithm: str) -> Checksum:
    match algorithm:
        case "crc32":
            return _CRC32()
        case "crc32c":
            return _CRC32C()
        case "crc64nvme":
            return _CRC64NVME()
        case "sha1":
            return hashlib.sha1(usedforsecurity=False)
        case "sha256":
            return hashlib.sha256()
    raise ValueError(algorithm)


def encode(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def valid_value(algorithm: str, value: str) -> bool:
    try:
        raw = base64.b64decode(value, validate=True)
    except (ValueError, TypeError):
        return False
    return len(raw) == _LENGTHS[algorithm]


# -- FULL_OBJECT checksums of multipart uploads: the parts' CRCs combined -------------------
# A CRC of A+B follows from crc(A), crc(B) and len(B) (zlib's crc32_combine, generalised
# to the three reflected CRCs S3 uses, all with init and final XOR of all ones): multiply
# crc(A) by x^(8·len(B)) modulo the polynomial, XOR crc(B).

_CRCS = {"crc32": (0xEDB88320, 32), "crc32c": (0x82F63B78, 32), "crc64nvme": (0x9A6C9329AC4BC9B5, 64)}
CRC_ALGORITHMS = tuple(_CRCS)


def _multmodp(a: int, b: int, poly: int, width: int) -> int:
    """a(x)·b(x) mod p(x), reflected bit order (the most significant bit is x^0)."""
    m = 1 << (width - 1)
    p = 0
    while a:
        if a & m:
            p ^= b
            a ^= m
        m >>= 1
        b = (b >> 1) ^ poly if b & 1 else b >> 1
    return p


@functools.lru_cache(maxsize=256)  # parts mostly share one size: one power per size
def _x8nmodp(n: int, poly: int, width: int) -> int:
    """x^(8·n) mod p(x): square-and-multiply over n's bits."""
    result = 1 << (width - 1)  # x^0
    power = 1 << (width - 1 - 8)  # x^8
    while n:
        if n & 1:
            result = _multmodp(power, result, poly, width)
        power = _multmodp(power, power, poly, width)
        n >>= 1
    return result


def combine(algorithm: str, parts: list[tuple[bytes, int]]) -> bytes:
    """The CRC of the concatenation of parts given as (digest, length) pairs."""
    poly, width = _CRCS[algorithm]
    crc = 0
    for digest, length in parts:
        crc = _multmodp(_x8nmodp(length, poly, width), crc, poly, width) ^ int.from_bytes(digest, "big")
    return crc.to_bytes(width // 8, "big")


def checksum_type(value: str) -> str:
    """A stored checksum's S3 type: COMPOSITE values end in ``-<parts>``."""
    return "COMPOSITE" if "-" in value else "FULL_OBJECT"
