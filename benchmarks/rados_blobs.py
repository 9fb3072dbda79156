"""Write/read throughput of the RADOS BlobStore, straight through the BlobStore protocol
(no HTTP), against a throw-away one-node Ceph started here (BlueStore on a sparse file,
or memstore), or an existing pool (--url).

    python benchmarks/rados_blobs.py [--store bluestore|memstore] [--url rados://...]
                                     [--small 2000] [--large 8] [--concurrency 16]

Small blobs (4 KiB): ``--small`` of them, ``--concurrency`` writers (or readers) at a
time, each write a writer → write → commit → release. Large blobs (64 MiB): ``--large``
of them one after another, written in 1 MiB chunks as an upload arrives. The same for
the file store under a temp dir, for comparison. Prints one line per figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lampi.store.blob.fs import FSBlobStore  # noqa: E402
from lampi.store.blob.rados import RadosBlobStore  # noqa: E402

MiB = 1024 * 1024


async def write_one(store, data: bytes, chunk: int) -> str:
    w = store.writer(len(data))
    for i in range(0, len(data), chunk):
        await w.write(data[i : i + chunk])
    blob_id = await w.commit()
    store.release(blob_id)
    return blob_id


async def read_one(store, blob_id: str) -> int:
    n = 0
    async for c in store.read(blob_id):
        n += len(c)
    return n


async def bounded(n: int, conc: int, fn) -> list:
    sem = asyncio.Semaphore(conc)
    out: list = [None] * n

    async def one(i: int) -> None:
        async with sem:
            out[i] = await fn(i)

    await asyncio.gather(*(one(i) for i in range(n)))
    return out


async def run(name: str, store, small: int, large: int, conc: int) -> None:
    data4k = os.urandom(4096)
    t = time.perf_counter()
    ids = await bounded(small, conc, lambda i: write_one(store, data4k, 65536))
    w = time.perf_counter() - t
    t = time.perf_counter()
    await bounded(small, conc, lambda i: read_one(store, ids[i]))
    r = time.perf_counter() - t
    print(f"{name}: 4 KiB c{conc}: write {small / w:,.0f}/s, read {small / r:,.0f}/s")
    t = time.perf_counter()
    ids1 = [await write_one(store, data4k, 65536) for _ in range(min(small, 500))]
    w1 = time.perf_counter() - t
    t = time.perf_counter()
    for b in ids1:
        await read_one(store, b)
    r1 = time.perf_counter() - t
    print(f"{name}: 4 KiB c1: write {len(ids1) / w1:,.0f}/s, read {len(ids1) / r1:,.0f}/s")
    await bounded(len(ids + ids1), conc, lambda i: store.delete((ids + ids1)[i]))

    big = os.urandom(64 * MiB)
    t = time.perf_counter()
    bids = [await write_one(store, big, MiB) for _ in range(large)]
    w = time.perf_counter() - t
    t = time.perf_counter()
    for b in bids:
        assert await read_one(store, b) == len(big)
    r = time.perf_counter() - t
    mb = large * 64 * MiB / 1e6
    print(f"{name}: 64 MiB x{large}: write {mb / w:,.0f} MB/s, read {mb / r:,.0f} MB/s")
    for b in bids:
        await store.delete(b)
    await store.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", default="bluestore")
    ap.add_argument("--url", default="")
    ap.add_argument("--small", type=int, default=2000)
    ap.add_argument("--large", type=int, default=8)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--no-fs", action="store_true")
    a = ap.parse_args()
    cluster = None
    url = a.url
    if not url:
        from lampi.testing.ceph import CephCluster

        cluster = CephCluster(a.store).start()
        cluster.create_pool("lampi-bench", pgs=32)
        url = cluster.url("lampi-bench")
    try:
        asyncio.run(run(f"rados ({a.store if cluster else url})", RadosBlobStore.from_url(url),
                        a.small, a.large, a.concurrency))
        if not a.no_fs:
            with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as d:
                asyncio.run(run("files", FSBlobStore(d), a.small, a.large, a.concurrency))
    finally:
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    main()
