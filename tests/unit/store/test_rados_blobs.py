"""What the RADOS BlobStore does beyond the common contract (test_blob_contract.py): its
layout in the pool, stripes written with several in flight, ranged reads that touch only
the stripes they need, deletes and aborts that leave nothing, locks that another gateway
(another store, another process) respects, a crashed writer's leftovers, storage policies
on pools. Against a throw-away one-node Ceph (tests/conftest.py ``ceph``)."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from lampi.config import load_settings
from lampi.store.blob.policies import open_policy_stores
from lampi.store.blob.rados import PACK, RadosBlobStore, pack, parse_url, stripe_name
from tests.conftest import CEPH_POOL

STRIPE = 64 * 1024


def payload(n: int, seed: int = 3) -> bytes:
    return bytes((i * 7 + seed) % 256 for i in range(n))


@pytest.fixture
def ns() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def store(ceph: Any, ns: str) -> RadosBlobStore:
    return RadosBlobStore(CEPH_POOL, str(ceph.conf), "admin", ns, stripe_size=STRIPE, in_flight=3)


def objects(store: RadosBlobStore) -> dict[str, int]:
    io = store._io()
    return {o.key: io.stat(o.key)[0] for o in io.list_objects()}


async def put(store: RadosBlobStore, data: bytes, chunk: int = 10_000) -> str:
    w = store.writer()
    for i in range(0, len(data), chunk):
        await w.write(data[i : i + chunk])
    return await w.commit()


async def read_all(store: RadosBlobStore, blob_id: str, offset: int = 0, length: int | None = None) -> bytes:
    return b"".join([c async for c in store.read(blob_id, offset, length)])


async def test_layout_stripes_and_delete(store: RadosBlobStore) -> None:
    data = payload(5 * STRIPE + 10)
    blob_id = await put(store, data)
    want = {stripe_name(blob_id, i): STRIPE for i in range(5)} | {stripe_name(blob_id, 5): 10}
    assert objects(store) == want
    assert store._io().get_xattr(blob_id, "lampi.blob") == f"{len(data)}:{STRIPE}".encode()
    store.release(blob_id)
    await store.delete(blob_id)
    assert objects(store) == {}
    assert store.blob_size(blob_id) is None


async def test_stripe_writes_in_flight_are_bounded(store: RadosBlobStore) -> None:
    w = store.writer()
    data = payload(20 * STRIPE)
    await w.write(data)  # one big chunk: every stripe ready at once, only 3 sent at a time
    assert w.peak_in_flight == 3
    blob_id = await w.commit()
    assert await read_all(store, blob_id) == data


async def test_exact_stripe_multiple_and_single_stripe(store: RadosBlobStore) -> None:
    for n in (STRIPE, 2 * STRIPE, STRIPE - 1, STRIPE + 1):
        data = payload(n, seed=n % 251)
        blob_id = await put(store, data, chunk=STRIPE)
        assert await read_all(store, blob_id) == data
        assert len([k for k in objects(store) if k.startswith(blob_id)]) == -(-n // STRIPE)


async def test_chunks_of_any_size_and_kind_make_the_same_stripes(store: RadosBlobStore) -> None:
    """Chunks gathered into stripes without a copy of their own (``write`` keeps them,
    or views of them, until a stripe is full): straddling stripes, longer than several,
    bytes, bytearray and memoryview alike."""
    data = payload(4 * STRIPE + 777)
    sizes = [1, STRIPE - 1, 2, 2 * STRIPE + 3, 5, STRIPE, 10**9]
    kinds = [bytes, bytearray, memoryview]
    w = store.writer()
    pos = i = 0
    while pos < len(data):
        n = sizes[i % len(sizes)]
        await w.write(kinds[i % len(kinds)](data[pos : pos + n]))
        pos += n
        i += 1
    blob_id = await w.commit()
    assert w.size == len(data)
    assert await read_all(store, blob_id) == data
    stripes = {k: v for k, v in objects(store).items() if k.startswith(blob_id)}
    assert sorted(stripes.values()) == [777] + [STRIPE] * 4


async def test_ranged_reads_touch_only_their_stripes(store: RadosBlobStore) -> None:
    data = payload(4 * STRIPE)
    blob_id = await put(store, data)
    store._io().remove_object(stripe_name(blob_id, 2))  # stripe 2 (bytes 2S..3S) lost
    # ranges that do not need stripe 2 are served, ranges that do are not
    assert await read_all(store, blob_id, 10, STRIPE) == data[10 : STRIPE + 10]
    assert await read_all(store, blob_id, 3 * STRIPE + 5, 100) == data[3 * STRIPE + 5 : 3 * STRIPE + 105]
    assert await read_all(store, blob_id, STRIPE, STRIPE) == data[STRIPE : 2 * STRIPE]
    with pytest.raises(FileNotFoundError):
        await read_all(store, blob_id, 2 * STRIPE - 1, 2)


async def test_nothing_is_committed_before_every_stripe_is(store: RadosBlobStore) -> None:
    w = store.writer()
    await w.write(payload(3 * STRIPE + 1))
    await w._drain()  # the full stripes are in the pool, the tail still buffered
    assert len(objects(store)) == 3
    assert list(store.iter_blobs()) == []
    assert w.blob_id in {p for p, _ in store.iter_partials()}
    with pytest.raises(FileNotFoundError):
        await read_all(store, w.blob_id)
    await w.commit()
    assert store.blob_size(w.blob_id) == 3 * STRIPE + 1


async def test_abort_removes_every_stripe(store: RadosBlobStore) -> None:
    w = store.writer()
    await w.write(payload(7 * STRIPE + 3))
    await w.abort()
    assert objects(store) == {}
    assert list(store.iter_partials()) == []


async def test_another_gateway_respects_the_writer_lock(ceph: Any, store: RadosBlobStore, ns: str) -> None:
    other = RadosBlobStore(CEPH_POOL, str(ceph.conf), "admin", ns, stripe_size=STRIPE)
    w = store.writer()
    await w.write(payload(2 * STRIPE))
    await w._drain()
    with other.claim_partial(w.blob_id) as free:
        assert not free
    assert other.remove_partial(w.blob_id) is False
    blob_id = await w.commit()
    with other.claim_blob(blob_id) as free:  # committed, not released: still held
        assert not free
    store.release(blob_id)
    await store.close()  # the release's unlock has gone out
    with other.claim_blob(blob_id) as free:
        assert free
        with store.claim_blob(blob_id) as again:  # the claim itself excludes others
            assert not again
    # a one-stripe blob: lock, bytes and mark went in one operation; the lock holds too,
    # and outlives the release until its lease runs out (no unlock operation is sent)
    small = await put(store, b"tiny")
    with other.claim_blob(small) as free:
        assert not free
    store.release(small)
    await store.close()
    with other.claim_blob(small) as free:
        assert not free


async def test_a_one_stripe_blobs_lock_lapses_with_its_lease(ceph: Any, ns: str) -> None:
    store = RadosBlobStore(CEPH_POOL, str(ceph.conf), "admin", ns, stripe_size=STRIPE, lease=2)
    other = RadosBlobStore(CEPH_POOL, str(ceph.conf), "admin", ns, stripe_size=STRIPE)
    small = await put(store, b"tiny")
    store.release(small)
    with other.claim_blob(small) as free:
        assert not free
    deadline = time.monotonic() + 30  # the lease is 2 s; the OSD may be slow to notice
    while True:
        with other.claim_blob(small) as free:
            if free:
                break
        assert time.monotonic() < deadline, "the lock never lapsed"
        await asyncio.sleep(0.5)
    assert await read_all(store, small) == b"tiny"  # the blob itself untouched
    await store.close()
    await other.close()


def _write_and_hang(conf: str, ns: str, ready: Any, ident: Any) -> None:
    async def go() -> None:
        s = RadosBlobStore(CEPH_POOL, conf, "admin", ns, stripe_size=STRIPE, in_flight=2, lease=3)
        w = s.writer()
        ident.value = w.blob_id.encode()
        await w.write(payload(9 * STRIPE))
        await w._drain()
        ready.set()
        await asyncio.sleep(3600)

    asyncio.run(go())


async def test_crashed_writer_leaves_a_partial_removed_once_its_lease_ran_out(ceph: Any, store: RadosBlobStore,
                                                                           ns: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    ready, ident = ctx.Event(), ctx.Array("c", 32)
    proc = ctx.Process(target=_write_and_hang, args=(str(ceph.conf), ns, ready, ident), daemon=True)
    proc.start()
    try:
        assert await asyncio.to_thread(ready.wait, 120)
        blob_id = ident.value.decode()
        assert [p for p, _ in store.iter_partials()] == [blob_id]
        assert store.remove_partial(blob_id) is False  # its writer holds it
    finally:
        proc.kill()
        proc.join(60)
    assert len(objects(store)) == 9
    deadline = time.monotonic() + 60
    while not store.remove_partial(blob_id):  # the lease (3 s) runs out: a leftover
        assert time.monotonic() < deadline
        await asyncio.sleep(0.5)
    assert objects(store) == {}  # every stripe, found without knowing how many


async def test_policies_on_pools(ceph: Any, tmp_path: Path) -> None:
    base_ns, gold_ns = uuid.uuid4().hex, uuid.uuid4().hex
    url = ceph.url(CEPH_POOL)
    settings = load_settings({"data_dir": str(tmp_path / "d"), "blob_url": f"{url}&namespace={base_ns}",
                              "storage_policies": f"default-placement,gold={url}&namespace={gold_ns},silver=silver"})
    stores = open_policy_stores(settings)
    plain = await put(stores.for_policy(None), b"plain")  # type: ignore[arg-type]
    gold = await put(stores.for_policy("GOLD"), b"gold")  # type: ignore[arg-type]
    silver = await put(stores.for_policy("silver"), b"silver")  # type: ignore[arg-type]
    assert ":" not in plain and gold.startswith("gold:") and silver.startswith("silver:")
    for b in (plain, gold, silver):
        stores.release(b)
    assert {k for k, _, _ in stores.iter_blobs()} == {plain, gold, silver}
    assert (tmp_path / "d" / "silver" / "blobs").is_dir()  # a directory policy beside pools
    gold_store = RadosBlobStore(CEPH_POOL, str(ceph.conf), "admin", gold_ns)
    assert list(objects(gold_store)) == [gold.partition(":")[2]]
    assert b"".join([c async for c in stores.read(gold)]) == b"gold"  # type: ignore[arg-type]
    for b in (plain, gold, silver):
        await stores.delete(b)
    assert list(stores.iter_blobs()) == []


def test_parse_url() -> None:
    assert parse_url("rados://p?conf=/etc/ceph/ceph.conf&id=lampi") == {
        "pool": "p", "conf": "/etc/ceph/ceph.conf", "client": "lampi", "namespace": ""}
    assert parse_url("rados://p")["client"] == "admin"
    for bad in ("rados://", "file:///x", "rados://p/x", "rados://p?bogus=1"):
        with pytest.raises(ValueError):
            parse_url(bad)


def test_blob_url_setting(tmp_path: Path) -> None:
    url = "rados://lampi?conf=/etc/ceph/ceph.conf&id=gw"
    assert load_settings(environ={"LAMPI_BLOB_URL": url}).blob_url == url
    toml = tmp_path / "l.toml"
    toml.write_text(f'blob_url = "{url}"\n')
    assert load_settings(config_file=str(toml), environ={}).blob_url == url
    assert load_settings({"blob_url": url}, environ={}).blob_url == url
    assert load_settings(environ={}).blob_url == ""
    with pytest.raises(ValueError, match="blob_url"):
        load_settings({"blob_url": "s3://x"}, environ={})
    with pytest.raises(ValueError, match="share"):
        load_settings({"storage_policies": f"a={url},b={url}"}, environ={})
    (spec,) = [p for p in load_settings({"storage_policies": f"a,b={url}"}, environ={}).policies() if p.url]
    assert spec.name == "b" and spec.url == url and not spec.in_data_dir


def count_heads(store: RadosBlobStore, monkeypatch) -> list[int]:  # noqa: ANN001
    """Counts the look-ups of blobs' commit marks (``_head``) from now on: ``[n]``."""
    heads = [0]
    real = store._head

    def counting(blob_id: str):  # noqa: ANN202
        heads[0] += 1
        return real(blob_id)

    monkeypatch.setattr(store, "_head", counting)
    return heads


async def test_a_range_within_the_first_stripe_is_one_read(store: RadosBlobStore, monkeypatch) -> None:  # noqa: ANN001
    """A range within the head that comes back whole needs no look-up of the blob's mark
    (a small object's GET: one RADOS read); a range past the blob's end, or a blob of
    several stripes, still goes by the mark, and a read past the end is empty (librados'
    binding hands a read of 0 bytes its whole unfilled buffer)."""
    heads = count_heads(store, monkeypatch)
    small = payload(1000)
    blob = await put(store, small)
    assert await read_all(store, blob, 0, 1000) == small
    assert await read_all(store, blob, 10, 90) == small[10:100]
    assert heads[0] == 0
    assert await read_all(store, blob, 990, 50) == small[990:]  # past the end: by the mark
    assert await read_all(store, blob, 1000, 10) == b""
    assert await read_all(store, blob, 0, None) == small  # the length unknown: by the mark
    assert heads[0] == 3
    big = payload(store.stripe_size * 2 + 5)
    blob = await put(store, big)
    assert await read_all(store, blob, 0, len(big)) == big  # beyond the first stripe
    assert await read_all(store, blob, 3, store.stripe_size - 3) == big[3:store.stripe_size]
    assert heads[0] == 4
    await store.delete(blob)
    with pytest.raises(FileNotFoundError):
        await read_all(store, blob, 0, 10)


async def test_a_delete_with_the_size_known_removes_a_one_object_blob_without_its_mark(
        store: RadosBlobStore, monkeypatch) -> None:  # noqa: ANN001
    """``delete(blob_id, size)``: a head holding the whole blob is removed without looking
    its mark up; a size that does not match (a blob of several stripes, a wrong size)
    goes by the mark and still removes every stripe."""
    heads = count_heads(store, monkeypatch)
    small = await put(store, payload(1000))
    await store.delete(small, 1000)
    assert heads[0] == 0 and small not in objects(store)
    await store.delete(small, 1000)  # gone already: fine (by the mark)
    assert heads[0] == 1
    big = await put(store, payload(STRIPE * 2 + 5))
    await store.delete(big, STRIPE)  # wrong: the head holds one stripe of three
    assert heads[0] == 2
    assert not [k for k in objects(store) if k.startswith(big)]


def test_a_stripes_chunks_go_to_librados_as_they_are_tiny_ones_joined() -> None:
    """``pack``: chunks of at least ``PACK`` bytes are passed on as the same objects (no
    copy); runs of smaller ones are joined into pieces of at least ``PACK`` (a stripe of
    thousands of tiny chunks is a few writes, not thousands); views and bytearrays become
    bytes, the only kind librados' binding takes; the bytes and their order are kept."""
    big = bytes(range(256)) * (PACK // 256)
    tiny = [bytes([i % 256]) * 100 for i in range(2000)]
    parts: list[Any] = [*tiny[:10], big, *tiny, bytearray(big), memoryview(big)[5:], b"", b"x"]
    out = pack(parts)
    assert all(type(p) is bytes for p in out)
    assert b"".join(out) == b"".join(bytes(p) for p in parts)
    assert out[1] is big  # passed on, not copied
    run = -(-PACK // 100) * 100  # tiny chunks joined until a piece reaches PACK
    # the view is 5 bytes short of PACK: joined with what follows
    assert [len(p) for p in out] == [1000, PACK, run, run, run, 200_000 - 3 * run, PACK, PACK - 4]
    assert pack([]) == [] and pack([big]) == [big] and pack([b"a", b"b"]) == [b"ab"]


async def test_a_body_of_tiny_chunks_reads_back_whole(store: RadosBlobStore) -> None:
    data = payload(3 * STRIPE + 5)
    blob_id = await put(store, data, chunk=7)
    assert await read_all(store, blob_id) == data
    assert objects(store)[stripe_name(blob_id, 3)] == 5
