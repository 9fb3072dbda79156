"""PostgreSQL MetaStore specifics (the shared behaviour is test_meta_contract.py's):
statement translation, listings as few index range scans, exact counters under many
concurrent writers on several store instances, the versioned schema."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid

import pytest

from lampi.core.models import Domain, ListParams, ObjectRecord, Project
from lampi.store.meta.postgres import dialect

pytestmark = pytest.mark.usefixtures("pg_cluster")


@pytest.fixture
def pg_url(pg_cluster) -> str:  # noqa: ANN001
    cluster, template = pg_cluster
    return cluster.create_db(template)


@pytest.fixture
def open_store(pg_url, tmp_path):  # noqa: ANN001, ANN201
    from lampi.store.meta.postgres import PostgresMetaStore

    stores = []

    def opener(**kw):  # noqa: ANN003, ANN202
        s = PostgresMetaStore(pg_url, tmp_path, **kw)
        stores.append(s)
        return s

    yield opener

    async def close() -> None:
        for s in stores:
            await s.close()

    asyncio.run(close())


def rec(container: str, name: str, size: int = 3) -> ObjectRecord:
    now = time.time()
    return ObjectRecord(container=container, name=name, blob_id=uuid.uuid4().hex, size=size, etag="e" * 32,
                        content_type="application/octet-stream", last_modified=now, data_timestamp=now)


def test_translate_placeholders_quotes_and_upserts() -> None:
    sql, named = dialect.translate("SELECT name || '?version-id=' || v FROM t WHERE a = ? AND b LIKE '%x'")
    assert sql == "SELECT name || '?version-id=' || v FROM t WHERE a = %s AND b LIKE '%%x'" and not named
    sql, named = dialect.translate("SELECT value FROM json_each(?1) WHERE x = ?1")
    assert named and sql == "SELECT value FROM jsonb_array_elements_text(%(p1)s::jsonb) WHERE x = %(p1)s"
    sql, _ = dialect.translate("INSERT OR REPLACE INTO leases (name, holder, expires_at) VALUES (?, ?, ?)")
    assert sql.endswith("ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at")
    sql, _ = dialect.translate("INSERT OR IGNORE INTO accounts (project_id, created_at) VALUES (?, ?)")
    assert sql.endswith("VALUES (%s, %s) ON CONFLICT DO NOTHING")
    sql, _ = dialect.translate("SELECT 1 FROM t WHERE json_extract(sysmeta, '$.\"s3-owner\"') = ? AND v IS ?")
    assert sql == "SELECT 1 FROM t WHERE (sysmeta::jsonb ->> 's3-owner') = %s AND v IS NOT DISTINCT FROM %s"


async def _fill(url: str, container: str, names: list[str]) -> None:
    import psycopg

    async with await psycopg.AsyncConnection.connect(url) as conn:
        async with conn.cursor() as cur:
            async with cur.copy("COPY objects (container, name, blob_id, size, etag, content_type, last_modified, "
                                "data_timestamp) FROM STDIN") as copy:
                for n in names:
                    await copy.write_row((container, n, uuid.uuid4().hex, 1, "e" * 32, "text/plain", 1.0, 1.0))


class _Counting:
    """Counts the statements the store sends (every one goes through Adapter.execute)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from lampi.store.meta.postgres import conn

        self.n = 0
        orig = conn.Adapter.execute

        def execute(adapter, sql, args=()):  # noqa: ANN001, ANN202
            self.n += 1
            return orig(adapter, sql, args)

        monkeypatch.setattr(conn.Adapter, "execute", execute)


async def test_listing_of_10000_objects_is_one_index_range_scan(open_store, pg_url, monkeypatch) -> None:  # noqa: ANN001
    store = open_store()
    p = await store.create_project(Project(uuid.uuid4().hex, "p", (await store.create_domain(Domain("d", "D"))).id))
    await store.create_container(p.id, "c", {}, time.time())
    names = [f"obj-{i:05d}" for i in range(10_000)] + [f"dir{d}/o{i}" for d in range(20) for i in range(100)]
    await _fill(pg_url, "c", names)
    async with await __import__("psycopg").AsyncConnection.connect(pg_url, autocommit=True) as conn:
        await conn.execute("ANALYZE objects")
    counting = _Counting(monkeypatch)
    listing = await store.list_objects("c", ListParams(prefix="obj-", limit=10_000), time.time(), raw=True)
    assert [r[0] for r in listing] == names[:10_000]
    assert counting.n == 1, f"a 10,000-object listing took {counting.n} queries"
    # with a delimiter: one query per 1,000-row page and one per folded subdir
    counting.n = 0
    folded = await store.list_objects("c", ListParams(delimiter="/", limit=10_000), time.time())
    assert [e.name for e in folded[:20]] == sorted(f"dir{d}/" for d in range(20))
    assert len(folded) == 10_000 and folded[20].name == "obj-00000"  # the limit: 20 subdirs + 9,980
    print(f"queries: 10,000-object listing with delimiter (20 subdirs): {counting.n}")
    assert counting.n <= 20 + 11 + 2, counting.n
    # the statement is an index range scan of the primary key, never a table scan
    from lampi.store.meta.postgres import conn as pgconn

    sql, _ = dialect.translate(
        "SELECT name, size FROM objects WHERE container = ? AND (delete_at IS NULL OR delete_at > ?) "
        "AND name >= ? AND name < ? ORDER BY name LIMIT ?")
    plan = store.run_sync(lambda c: c.conn.execute("EXPLAIN " + sql, ("c", time.time(), "obj-", "obj.", 10_000))
                          .fetchall())
    text = "\n".join(r[0] for r in plan)
    assert "Index Scan using objects_pkey" in text and "Seq Scan" not in text, text
    assert isinstance(pgconn.POOL_SIZE, int)


async def test_counters_exact_with_many_concurrent_writers_on_three_stores(open_store) -> None:  # noqa: ANN001
    stores = [open_store(pool_size=6) for _ in range(3)]
    a = stores[0]
    p = await a.create_project(Project(uuid.uuid4().hex, "p", (await a.create_domain(Domain("d", "D"))).id))
    await a.create_container(p.id, "c", {}, time.time())

    async def writer(store, tag: int) -> None:  # noqa: ANN001
        for i in range(12):
            await store.put_object(rec("c", f"shared-{i % 4}", size=10 + tag))  # the same names from everyone
            await store.put_object(rec("c", f"own-{tag}-{i}", size=i + 1))
            if i % 3 == 0:
                await store.delete_object("c", f"own-{tag}-{i}")

    await asyncio.gather(*(writer(s, t) for t, s in enumerate(stores * 4)))  # 12 writers, 3 stores
    rows = await a.list_objects("c", ListParams(), time.time())
    assert len(rows) == 4 + 12 * 8
    cont = await stores[2].get_container("c")
    acct = await stores[1].get_account(p.id)
    assert (cont.object_count, cont.bytes_used) == (len(rows), sum(e.bytes for e in rows))
    assert (acct.object_count, acct.bytes_used) == (len(rows), sum(e.bytes for e in rows))


async def test_schema_older_than_the_code_is_refused_until_upgraded(open_store, pg_url, monkeypatch) -> None:  # noqa: ANN001
    import psycopg

    from lampi.store.meta.postgres import schema

    cur = schema.SCHEMA_VERSION
    open_store()  # the current version: opens
    monkeypatch.setattr(schema, "SCHEMA_VERSION", cur + 1)
    monkeypatch.setitem(schema.MIGRATIONS, cur + 1, "ALTER TABLE objects ADD COLUMN v2_test TEXT")
    with pytest.raises(schema.SchemaError,
                       match=f"version {cur}, older than this lampi's .{cur + 1}.: run `lampi db upgrade`"):
        open_store()
    with pytest.raises(schema.SchemaError, match="older"):
        open_store(create=True)  # serve does not upgrade behind the operator's back
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert schema.upgrade(conn) == (cur, cur + 1)
        assert schema.upgrade(conn) == (cur + 1, cur + 1)  # idempotent
        assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == cur + 1
    store = open_store()
    await store.ensure_account("x")
    assert json.loads(json.dumps((await store.get_account("x")).object_count)) == 0


async def test_a_version_3_database_with_objects_upgrades_to_inline_blobs(pg_cluster, tmp_path,  # noqa: ANN001
                                                                           monkeypatch) -> None:
    """`lampi db upgrade` of a store written by a lampi of schema version 3 (before
    inline blobs): its objects, written by the version 3 function, stay readable and
    deletable, and inline writes work after it."""
    import psycopg

    from lampi.store.meta.postgres import PostgresMetaStore, schema
    from lampi.store.meta.sqlite.objects import ObjectsMixin

    cluster, _template = pg_cluster
    url = cluster.create_db()
    with monkeypatch.context() as m:
        m.setattr(schema, "SCHEMA_VERSION", 3)
        with psycopg.connect(url, autocommit=True) as conn:
            assert schema.upgrade(conn) == (None, 3)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO accounts (project_id, created_at) VALUES ('p', 1)")
        conn.execute("INSERT INTO containers (ckey, name, project_id, created_at, put_timestamp, updated_at) "
                     "VALUES ('c', 'c', 'p', 1, 1, 1)")
        r = rec("c", "old", size=5)
        values = ObjectsMixin._values(r)[:12]  # the record as the version 3 function's arguments
        assert conn.execute("SELECT lampi_put_object(" + ", ".join(["%s"] * 14) + ")",
                            (*values, 5, False)).fetchone()[0] == ""
        assert schema.upgrade(conn) == (3, 4)
    store = PostgresMetaStore(url, tmp_path)
    try:
        got = await store.get_object("c", "old", time.time())
        assert got is not None and got.blob_id == r.blob_id
        new = rec("c", "new", size=2)
        await store.put_object(dataclasses.replace(new, blob_id="~" + new.blob_id, inline=b"hi"))
        assert await store.read_inline("~" + new.blob_id) == b"hi"
        assert await store.delete_object("c", "old") == r.blob_id  # a blob-store blob: the caller's to delete
        assert await store.delete_object("c", "new") == ""  # inline: deleted with the row
        assert (await store.get_container("c")).object_count == 0
    finally:
        await store.close()


async def test_nul_in_listing_bounds_compares_as_a_character(open_store) -> None:  # noqa: ANN001
    """PostgreSQL text cannot hold NUL; names never do, so a marker/prefix with one is cut
    there and its comparison adjusted: the same listing as SQLite's."""
    store = open_store()
    p = await store.create_project(Project(uuid.uuid4().hex, "p", (await store.create_domain(Domain("d", "D"))).id))
    await store.create_container(p.id, "c", {}, time.time())
    for n in ["B2x", "a", "b1x", "c"]:
        await store.put_object(rec("c", n))
    now = time.time()

    async def names(**kw) -> list[str]:  # noqa: ANN003
        return [e.name for e in await store.list_objects("c", ListParams(**kw), now)]

    assert await names(marker="b1x\0", end_marker="B2w", reverse=True) == ["b1x", "a", "B2x"]
    assert await names(marker="a\0") == ["b1x", "c"]
    assert await names(end_marker="b1x\0") == ["B2x", "a", "b1x"]
    assert await names(prefix="\0") == []
    assert await names(prefix="b\0") == []


async def test_writes_in_one_line_share_a_transaction_and_a_failing_one_is_rolled_back_alone(open_store) -> None:  # noqa: ANN001
    """Writes of one container's line that wait together run in one transaction (one
    commit for many): a body that raises after writing is rolled back alone (the batch
    rolled back and run again, each body under a savepoint), its caller gets its
    exception, the others commit (PGBase._tx)."""
    store = open_store(pool_size=4)
    await store._tx(lambda c: c.execute("CREATE TABLE batch_probe (k TEXT PRIMARY KEY, tx TEXT)"))

    class Refused(Exception):
        pass

    def body(i: int):  # noqa: ANN202
        def fn(c):  # noqa: ANN001, ANN202
            tx = c.execute("SELECT txid_current()::text").fetchone()[0]
            c.execute("INSERT INTO batch_probe (k, tx) VALUES (?, ?)", (f"k{i}", tx))
            if i % 5 == 0:
                raise Refused(i)
            return i
        return fn

    results = await asyncio.gather(*(store._tx(body(i), queue="c") for i in range(40)), return_exceptions=True)
    for i, r in enumerate(results):
        if i % 5 == 0:
            assert isinstance(r, Refused) and r.args == (i,)
        else:
            assert r == i
    rows = await store._run(lambda c: c.execute("SELECT k, tx FROM batch_probe").fetchall())
    assert sorted(k for k, _ in rows) == sorted(f"k{i}" for i in range(40) if i % 5)
    assert len({tx for _, tx in rows}) <= 40 // 4, rows  # commits shared (one each before)
    # a write alone in its line, and one outside any line, still work as before
    assert await store._tx(body(1001), queue="c") == 1001
    with pytest.raises(Refused):
        await store._tx(body(1000))
    assert await store._run(lambda c: c.execute("SELECT COUNT(*) FROM batch_probe WHERE k = 'k1000'").fetchone()[0]) == 0


async def test_object_put_and_delete_are_one_statement_each_unless_object_lock_decides(
        open_store, monkeypatch) -> None:  # noqa: ANN001
    """An unversioned PUT or DELETE is one statement in its transaction (the schema's
    lampi_put_object / lampi_delete_object) with the shared bodies' results: counters,
    the released blob; an object that may be under object lock goes the shared way."""
    from dataclasses import replace

    from lampi.core import errors, objectlock

    store = open_store()
    p = await store.create_project(Project(uuid.uuid4().hex, "p", (await store.create_domain(Domain("d", "D"))).id))
    await store.create_container(p.id, "c", {}, time.time())
    counting = _Counting(monkeypatch)
    first = rec("c", "o", size=10)
    assert await store.put_object(first) == []
    assert counting.n == 1
    second = rec("c", "o", size=7)
    assert await store.put_object(second) == [first.blob_id]  # the replaced object's blob
    other = rec("c", "p", size=5)
    assert await store.put_object(other) == []
    assert counting.n == 3
    cont, acct = await store.get_container("c"), await store.get_account(p.id)
    assert (cont.object_count, cont.bytes_used, acct.object_count, acct.bytes_used) == (2, 12, 2, 12)
    counting.n = 0
    assert await store.delete_object("c", "o", if_blob=first.blob_id) is None  # not that blob any more
    assert await store.delete_object("c", "o") == second.blob_id
    assert await store.delete_object("c", "o") is None
    assert counting.n == 3
    cont = await store.get_container("c")
    assert (cont.object_count, cont.bytes_used) == (1, 5)
    with pytest.raises(errors.ContainerNotFound):
        await store.put_object(rec("nope", "o"))
    # under a retention: the shared bodies refuse (and the fast statements wrote nothing)
    locked = replace(rec("c", "l", size=4), sysmeta={objectlock.MODE_KEY: "COMPLIANCE",
                                                      objectlock.UNTIL_KEY: objectlock.iso(time.time() + 3600)})
    await store.put_object(locked)
    counting.n = 0
    with pytest.raises(errors.ObjectLocked):
        await store.put_object(rec("c", "l"))
    with pytest.raises(errors.ObjectLocked):
        await store.delete_object("c", "l")
    with pytest.raises(errors.ObjectLocked):  # the lock is checked first, whatever the blob (as the shared body)
        await store.delete_object("c", "l", if_blob="0" * 32)
    assert counting.n > 2  # the shared bodies' statements ran after the function declined
    assert (await store.get_object("c", "l", time.time())).blob_id == locked.blob_id
    cont = await store.get_container("c")
    assert (cont.object_count, cont.bytes_used) == (2, 9)


async def test_container_and_account_reads_shared_by_requests_that_arrived_before_them(
        open_store, monkeypatch) -> None:  # noqa: ANN001
    """Requests of one process share container and account reads that began after they
    arrived (lampi.store.meta.memo.Shared): 16 at once make one read; a change committed
    through another gateway before a request arrived is seen; so is the request's own
    write, and a request without a stamp or a memo scope reads for itself."""
    from lampi.store.meta import arrival, memo

    here, there = open_store(), open_store()  # two gateways
    p = await there.create_project(Project(uuid.uuid4().hex, "p", (await there.create_domain(Domain("d", "D"))).id))
    await there.create_container(p.id, "c", {"x-container-read": "a"}, time.time())
    reads = [0]
    real = here._read

    async def counting(fn):  # noqa: ANN001, ANN202
        reads[0] += 1
        await asyncio.sleep(0.01)  # a slow round trip: the others arrive meanwhile
        return await real(fn)

    monkeypatch.setattr(here, "_read", counting)

    async def request(stamp: int | None, then=None):  # noqa: ANN001, ANN202
        async def handle():  # noqa: ANN202
            if stamp is not None:
                arrival.set_stamp(stamp)
            with memo.scope():
                if then is not None:
                    await then()
                return await here.find_container("c", p.id), await here.get_account(p.id)
        return await asyncio.create_task(handle())

    early = arrival.now()
    got = await asyncio.gather(*(request(early) for _ in range(16)))
    assert reads[0] == 2 and {g[0].meta["x-container-read"] for g in got} == {"a"}
    assert await request(early) == got[0]  # arrived before those reads began: shared
    assert reads[0] == 2
    await there.update_container_meta("c", {"x-container-read": "b"}, time.time())
    late = arrival.now()  # arrived after the change committed: reads anew
    cont, _ = await request(late)
    assert cont.meta["x-container-read"] == "b" and reads[0] == 4
    await there.update_container_meta("c", {"x-container-read": "c"}, time.time())
    cont, _ = await request(None)  # not stamped: its own read
    assert cont.meta["x-container-read"] == "c" and reads[0] == 6

    async def own_write() -> None:  # the request writes, then reads: after its write
        await here.put_object(rec("c", "o", size=5))

    cont, acct = await request(arrival.now(), own_write)
    assert (cont.object_count, acct.bytes_used) == (1, 5)


async def test_object_read_with_its_container_in_one_statement(open_store, monkeypatch) -> None:  # noqa: ANN001
    """A GET or HEAD of an object names it when the container is looked up
    (``find_container(..., obj)``): the container and the object are read in one
    statement and the request's ``get_object`` reads nothing more. A missing object, a
    missing container and an expired object read as they would apart; outside a request
    (no memo scope) the hint is ignored."""
    from lampi.store.meta import arrival, memo

    store = open_store()
    p = await store.create_project(Project(uuid.uuid4().hex, "p", (await store.create_domain(Domain("d", "D"))).id))
    await store.create_container(p.id, "c", {"x-container-read": "a"}, time.time())
    await store.put_object(rec("c", "o", size=5))
    await store.put_object(dataclasses.replace(rec("c", "gone", size=1), delete_at=int(time.time()) - 10))
    statements = []
    real = store._read_rows

    async def counting(sql, args):  # noqa: ANN001, ANN202
        statements.append(sql)
        return await real(sql, args)

    monkeypatch.setattr(store, "_read_rows", counting)

    async def request(container: str, obj: str):  # noqa: ANN202
        async def handle():  # noqa: ANN202
            arrival.set_stamp(arrival.now())
            with memo.scope():
                c = await store.find_container(container, p.id, obj)
                return c, (None if c is None else await store.get_object(c.key, obj, time.time()))
        return await asyncio.create_task(handle())

    c, o = await request("c", "o")
    assert c.meta == {"x-container-read": "a"} and (o.name, o.size) == ("o", 5)
    assert len(statements) == 1 and "JOIN" in statements[0]
    c, o = await request("c", "missing")
    assert c.name == "c" and o is None and len(statements) == 2
    c, o = await request("c", "gone")
    assert c.name == "c" and o is None and len(statements) == 3  # expired: as get_object alone
    c, o = await request("nope", "o")
    assert c is None and len(statements) == 4
    c = await store.find_container("c", p.id, "o")  # no request: the container alone
    assert c.name == "c" and len(statements) == 5 and "JOIN" not in statements[-1]


async def test_inline_bytes_read_with_a_get_in_its_one_statement_by_index(open_store, pg_url,  # noqa: ANN001
                                                                            monkeypatch) -> None:
    """A GET's one statement (``find_container(..., obj, body=True)``) reads an inline
    blob's bytes with the record, through inline_blobs' primary key (a collation other
    than the objects' "C" made PostgreSQL read the whole table for each GET); a HEAD's
    reads the record without them."""
    import psycopg

    from lampi.store.meta import arrival, memo

    store = open_store()
    p = await store.create_project(Project(uuid.uuid4().hex, "p", (await store.create_domain(Domain("d", "D"))).id))
    await store.create_container(p.id, "c", {}, time.time())
    for i in range(300):
        r = rec("c", f"o{i}", size=4000)  # a page each: a scan of them costs what it would
        await store.put_object(dataclasses.replace(r, blob_id="~" + r.blob_id, inline=b"%04d" % i + bytes(3996)))

    async def request(body: bool):  # noqa: ANN202
        async def handle():  # noqa: ANN202
            arrival.set_stamp(arrival.now())
            with memo.scope():
                c = await store.find_container("c", p.id, "o7", body)
                return await store.get_object(c.key, "o7", time.time())
        return await asyncio.create_task(handle())

    assert (await request(True)).inline == b"0007" + bytes(3996)
    assert (await request(False)).inline is None  # (a reader of the bytes would ask read_inline)
    assert (await store.read_inline((await request(False)).blob_id))[:4] == b"0007"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("ANALYZE")
        plan = "\n".join(r[0] for r in conn.execute(
            "EXPLAIN SELECT o.name, " + store._DATA_COL.format(t="o") + " FROM objects o WHERE o.container = 'c'"))
        assert "inline_blobs_pkey" in plan and "Seq Scan on inline_blobs" not in plan, plan
        plan = "\n".join(r[0] for r in conn.execute(
            "EXPLAIN DELETE FROM inline_blobs WHERE blob_id = (SELECT blob_id FROM objects LIMIT 1)"))
        assert "inline_blobs_pkey" in plan, plan


async def test_write_statements_stay_prepared_through_rollbacks(open_store) -> None:  # noqa: ANN001
    """The transaction bodies' statements are prepared once per pooled connection
    (postgres/conn.py ``_lean_execute``) and must stay so through rollbacks. psycopg,
    had it prepared statements of its own on the connection (it does at a statement's
    sixth execution), answers a rollback with DEALLOCATE ALL, which took the bodies'
    statements too ("prepared statement lampi_w9 does not exist" under concurrent
    reapers): the pooled connections are configured so that it prepares none."""
    from lampi.store.meta.postgres.conn import _lean_execute

    store = open_store()
    with store._pool.connection() as conn:
        for _ in range(8):
            conn.execute("SELECT 1")  # psycopg's own statements
        assert _lean_execute(conn, "SELECT 2", None).fetchone() == (2,)
        with pytest.raises(ValueError):
            with conn.transaction():
                raise ValueError("a body's own error: rolled back")
        conn.execute("SELECT 1")  # where psycopg would run its DEALLOCATE ALL
        assert _lean_execute(conn, "SELECT 2", None).fetchone() == (2,)

    def fails(c):  # noqa: ANN001, ANN202
        c.execute("SELECT COUNT(*) FROM containers WHERE name = ?", ("x",)).fetchone()
        raise ValueError("the body's own error")

    def works(c):  # noqa: ANN001, ANN202
        return c.execute("SELECT COUNT(*) FROM containers WHERE name = ?", ("x",)).fetchone()[0]

    for _ in range(3):  # the same through the store's queued and plain transactions
        for _ in range(8):
            assert await store._tx(works, queue="q") == 0
        with pytest.raises(ValueError):
            await store._tx(fails, queue="q")
        assert await store._tx(works, queue="q") == 0
        with pytest.raises(ValueError):
            await store._tx(fails)
        assert await store._tx(works) == 0


async def test_point_read_on_a_connection_cut_under_it_is_retried(pg_url) -> None:  # noqa: ANN001
    """A point read's connection cut by the network (no FATAL message from the server,
    unlike ``pg_terminate_backend`` in the test above) is a lost connection: dropped, and
    the read made again on a new one, not an error for the request."""
    import urllib.parse

    from lampi.store.meta.postgres.conn import _LoopReads

    target = urllib.parse.urlsplit(pg_url)
    links: list[asyncio.StreamWriter] = []

    async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            w.close()

    async def link(cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        sr, sw = await asyncio.open_connection(target.hostname, target.port)
        links.extend((cw, sw))
        await asyncio.gather(pipe(cr, sw), pipe(sr, cw))

    proxy = await asyncio.start_server(link, "127.0.0.1", 0)
    port = proxy.sockets[0].getsockname()[1]
    reads = _LoopReads(pg_url.replace(f"{target.hostname}:{target.port}", f"127.0.0.1:{port}", 1))
    try:
        assert await reads.run("SELECT 41 + 1", None) == [(42,)]
        for w in links:  # the network drops the connection: no word from the server
            w.transport.abort()
        links.clear()
        await asyncio.sleep(0.1)
        assert await reads.run("SELECT 6 * 7", None) == [(42,)]  # on a new connection
        assert len(links) == 2
    finally:
        reads.hang_up()
        proxy.close()
        await proxy.wait_closed()


async def test_revocation_read_shared_by_requests_that_arrived_before_it(open_store, monkeypatch) -> None:  # noqa: ANN001
    """The revocation check (one row read per request with a token) is shared: a request
    uses the last read if it began after the request arrived (lampi.store.meta.arrival),
    so a revocation committed before a request arrived, on any gateway, is still seen."""
    from lampi.store.meta import arrival

    here, there = open_store(), open_store()  # two gateways
    reads = [0]
    real = here._read

    async def counting(fn):  # noqa: ANN001, ANN202
        reads[0] += 1
        return await real(fn)

    monkeypatch.setattr(here, "_read", counting)

    async def request(stamp: int) -> set[str]:  # a request handled in a task of its own, stamped
        async def handle() -> set[str]:
            arrival.set_stamp(stamp)
            return await here.revoked_tokens()
        return await asyncio.create_task(handle())

    early = arrival.now()
    assert await request(early) == set()
    assert reads[0] == 1
    assert await request(early) == set()  # arrived before that read began: shared
    assert await asyncio.gather(*(request(early) for _ in range(8))) == [set()] * 8
    assert reads[0] == 1
    await there.revoke_token("gone", time.time() + 600)  # revoked through the other gateway
    late = arrival.now()  # a request arriving after the revocation committed
    assert await request(late) == {"gone"}
    assert reads[0] == 2
    assert await request(late) == {"gone"}
    assert reads[0] == 2
    assert await here.revoked_tokens() == {"gone"}  # unstamped (no request): always read
    assert reads[0] == 3


async def test_point_reads_on_the_loop_survive_a_statement_error_and_a_restarted_connection(open_store) -> None:  # noqa: ANN001
    """``_read`` (the event loop's connections, postgres/conn.py _LoopReads): a statement's
    own error reaches the caller and leaves the connections usable; a connection the
    server closed is dropped and the read made once more on a new one."""
    import psycopg

    store = open_store()
    assert await store._read(lambda c: c.execute("SELECT 41 + 1").fetchone()[0]) == 42
    # one statement text, parameters of other types each time (prepared per type): the
    # values come back as a cursor gives them
    for arg in (None, 7, 2**40, "x", b"\x00b", 1.5, True):
        def body(c, arg=arg):  # noqa: ANN001, ANN202
            return c.execute("SELECT ?::text, ?::text IS NULL, ?", (arg, arg, arg)).fetchone()
        got = await store._read(body)
        assert got == await store._run(body) and got[1] is (arg is None) and got[2] == arg, (arg, got)
    with pytest.raises(psycopg.errors.DivisionByZero):
        await store._read(lambda c: c.execute("SELECT 1 / 0").fetchone())
    pid = await store._read(lambda c: c.execute("SELECT pg_backend_pid()").fetchone()[0])
    await store._run(lambda c: c.execute("SELECT pg_terminate_backend(?)", (pid,)).fetchone())
    assert await store._read(lambda c: c.execute("SELECT 6 * 7").fetchone()[0]) == 42
    assert await store._read(lambda c: c.execute("SELECT pg_backend_pid()").fetchone()[0]) != pid
