"""The machine's limits, measured in the same run as the load.

- sequential write with fsync: ``size`` bytes written in 1 MiB blocks to a new file in
  ``directory`` (the filesystem the servers store on), then fsync; MB/s includes the fsync.
  The median of three runs: on a virtual disk the same write measured 755–3,064 MB/s
  in five runs in a row (the host's cache), so one run is not a limit to judge by.
  The size should be the large objects' size: below the kernel's dirty-page limit a
  write only fills the page cache, above it the writer is throttled to the disk.
- 4 KiB write+fsync rate: for ``seconds``, append 4 KiB and fsync, repeatedly (what
  one small durable write costs; an object PUT needs at least one).
- MD5 on one core: what an ETag costs per byte; an upload cannot be acknowledged
  faster than its MD5 is computed, whatever the disk (informative, not a target).
- loopback TCP: ``size`` bytes sent over 127.0.0.1 to a receiving process (the same
  path as a GET from a server to a client on this machine); MB/s.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from lampi.bench.util import MB

BLOCK = 1 << 20


def seq_write_fsync(directory: str | Path, size: int) -> dict[str, Any]:
    block = memoryview(os.urandom(BLOCK))
    fd, path = tempfile.mkstemp(prefix=".lampi-bench-seq-", dir=directory)
    try:
        t = time.monotonic()
        left = size
        while left > 0:
            left -= os.write(fd, block[: min(left, BLOCK)])
        os.fsync(fd)
        secs = time.monotonic() - t
    finally:
        os.close(fd)
        os.unlink(path)
    return {"bytes": size, "seconds": round(secs, 3), "mb_per_s": round(size / secs / MB, 1)}


def small_write_fsync(directory: str | Path, seconds: float = 2.0, size: int = 4096) -> dict[str, Any]:
    data = os.urandom(size)
    fd, path = tempfile.mkstemp(prefix=".lampi-bench-fsync-", dir=directory)
    n = 0
    try:
        t = time.monotonic()
        end = t + seconds
        while time.monotonic() < end:
            os.write(fd, data)
            os.fsync(fd)
            n += 1
        secs = time.monotonic() - t
    finally:
        os.close(fd)
        os.unlink(path)
    return {"ops": n, "seconds": round(secs, 3), "ops_per_s": round(n / secs, 1),
            "avg_ms": round(secs / max(n, 1) * 1000, 3)}


def _sink(conn: Any) -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        conn.send(srv.getsockname()[1])
        s, _ = srv.accept()
        buf = bytearray(BLOCK)
        total = 0
        with s:
            while n := s.recv_into(buf):
                total += n
        conn.send(total)


def loopback_tcp(size: int) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    p = ctx.Process(target=_sink, args=(child,), daemon=True)
    p.start()
    try:
        port = parent.recv()
        block = memoryview(os.urandom(BLOCK))
        with socket.create_connection(("127.0.0.1", port)) as s:
            t = time.monotonic()
            left = size
            while left > 0:
                s.sendall(block[: min(left, BLOCK)])
                left -= min(left, BLOCK)
            s.shutdown(socket.SHUT_WR)
            got = parent.recv()
            secs = time.monotonic() - t
    finally:
        p.join(10)
        if p.is_alive():
            p.kill()
    return {"bytes": got, "seconds": round(secs, 3), "mb_per_s": round(got / secs / MB, 1)}


def seq_write_fsync_median(directory: str | Path, size: int, runs: int = 3) -> dict[str, Any]:
    results = sorted((seq_write_fsync(directory, size) for _ in range(runs)), key=lambda r: r["mb_per_s"])
    return dict(results[len(results) // 2], runs=[r["mb_per_s"] for r in results])


def md5_rate(size: int = 512 * MB) -> dict[str, Any]:
    import hashlib

    block = os.urandom(BLOCK)
    h = hashlib.md5(usedforsecurity=False)
    t = time.monotonic()
    for _ in range(max(1, size // BLOCK)):
        h.update(block)
    secs = time.monotonic() - t
    return {"bytes": max(1, size // BLOCK) * BLOCK, "seconds": round(secs, 3),
            "mb_per_s": round(max(1, size // BLOCK) * BLOCK / secs / MB, 1)}


def measure(directory: str | Path, size: int, fsync_seconds: float = 2.0) -> dict[str, Any]:
    return {
        "directory": str(directory),
        "seq_write_fsync": seq_write_fsync_median(directory, size),
        "small_write_fsync_4k": small_write_fsync(directory, fsync_seconds),
        "md5_one_core": md5_rate(),
        "loopback_tcp": loopback_tcp(size),
    }
