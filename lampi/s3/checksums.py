"""Streaming checksums S3 clients send: x-amz-checksum-crc32|crc32c|crc64nvme|sha1|sha256.

Values travel base64-encoded big-endian (CRCs) or as raw digests (SHA). CRC64/NVME is
computed with awscrt when installed, else with a table in pure Python (slow but right).
"""

from __future__ import annotations

import base64
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
