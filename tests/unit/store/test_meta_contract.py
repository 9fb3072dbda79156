"""The MetaStore contract: every implementation (``meta_backend`` params) must pass."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from lampi.core import errors
from lampi.core.models import Domain, ListParams, ObjectRecord, Project, User


def uid() -> str:
    return uuid.uuid4().hex


async def setup_project(meta, name: str = "p1", domain: Domain | None = None) -> Project:
    if domain is None:
        domain = await meta.get_domain("default") or await meta.create_domain(Domain("default", "Default"))
    return await meta.create_project(Project(uid(), name, domain.id, f"{name} project"))


def rec(container: str, name: str, size: int = 3, **kw) -> ObjectRecord:
    now = time.time()
    return ObjectRecord(
        container=container,
        name=name,
        blob_id=kw.pop("blob_id", uid()),
        size=size,
        etag=kw.pop("etag", "d41d8cd98f00b204e9800998ecf8427e"),
        content_type=kw.pop("content_type", "application/octet-stream"),
        last_modified=kw.pop("last_modified", now),
        data_timestamp=kw.pop("data_timestamp", now),
        **kw,
    )


async def counters(meta, project_id: str, container: str) -> tuple[int, int, int, int, int]:
    acct = await meta.get_account(project_id)
    cont = await meta.get_container(container)
    assert cont is not None
    return (acct.container_count, acct.object_count, acct.bytes_used, cont.object_count, cont.bytes_used)


# -- identity ---------------------------------------------------------------------


async def test_domains(meta):
    d = await meta.create_domain(Domain("default", "Default"))
    assert await meta.get_domain("default") == d
    assert await meta.get_domain("Default") == d
    assert await meta.get_domain("nope") is None
    with pytest.raises(errors.Conflict):
        await meta.create_domain(Domain("other-id", "Default"))
    # an id that equals another domain's name resolves to the domain with that id
    d2 = await meta.create_domain(Domain("Default2", "x"))
    d3 = await meta.create_domain(Domain("y", "Default2"))
    assert await meta.get_domain("Default2") == d2
    assert await meta.get_domain("y") == d3


async def test_projects(meta):
    p = await setup_project(meta, "alpha")
    other = await meta.create_domain(Domain("d2", "Other"))
    assert await meta.get_project(p.id) == p
    assert await meta.find_project("alpha", "default") == p
    assert await meta.find_project("alpha", "d2") is None
    assert await meta.get_project(uid()) is None
    with pytest.raises(errors.Conflict):
        await meta.create_project(Project(uid(), "alpha", "default"))
    # the same name in another domain is a different project
    p2 = await meta.create_project(Project(uid(), "alpha", other.id))
    p3 = await setup_project(meta, "beta")
    assert {x.id for x in await meta.list_projects()} == {p.id, p2.id, p3.id}
    assert [x.name for x in await meta.list_projects()] == ["alpha", "alpha", "beta"]

    # every project has an (empty) account
    acct = await meta.get_account(p.id)
    assert (acct.project_id, acct.container_count, acct.object_count, acct.bytes_used) == (p.id, 0, 0, 0)

    # a project with containers cannot be deleted
    await meta.create_container(p.id, "c-" + uid(), {}, time.time())
    with pytest.raises(errors.Conflict):
        await meta.delete_project(p.id)
    await meta.delete_project(p3.id)
    assert await meta.get_project(p3.id) is None
    with pytest.raises(errors.AccountNotFound):
        await meta.get_account(p3.id)
    with pytest.raises(errors.NotFound):
        await meta.delete_project(p3.id)


async def test_users_and_assignments(meta):
    p1 = await setup_project(meta, "one")
    p2 = await setup_project(meta, "two")
    u = await meta.create_user(User(uid(), "alice", "default", "hash1", True, p1.id))
    assert await meta.get_user(u.id) == u
    assert (await meta.get_user(u.id)).password_hash == "hash1"
    assert await meta.find_user("alice", "default") == u
    assert await meta.find_user("alice", "elsewhere") is None
    with pytest.raises(errors.Conflict):
        await meta.create_user(User(uid(), "alice", "default", "h"))
    bob = await meta.create_user(User(uid(), "bob", "default", "h", enabled=False))
    assert (await meta.get_user(bob.id)).enabled is False
    assert [x.name for x in await meta.list_users()] == ["alice", "bob"]

    await meta.set_password_hash(u.id, "hash2")
    assert (await meta.get_user(u.id)).password_hash == "hash2"
    with pytest.raises(errors.NotFound):
        await meta.set_password_hash(uid(), "x")

    await meta.grant_role(u.id, p1.id, "member")
    await meta.grant_role(u.id, p1.id, "member")  # idempotent
    await meta.grant_role(u.id, p1.id, "admin")
    await meta.grant_role(u.id, p2.id, "reader")
    assert await meta.roles_for(u.id, p1.id) == ["admin", "member"]
    assert await meta.roles_for(u.id, p2.id) == ["reader"]
    assert await meta.roles_for(bob.id, p1.id) == []
    assert [p.name for p in await meta.projects_for_user(u.id)] == ["one", "two"]
    await meta.revoke_role(u.id, p1.id, "admin")
    assert await meta.roles_for(u.id, p1.id) == ["member"]
    with pytest.raises(errors.NotFound):
        await meta.revoke_role(u.id, p1.id, "admin")

    # deleting a project or user removes their assignments
    await meta.delete_project(p2.id)
    assert [p.name for p in await meta.projects_for_user(u.id)] == ["one"]
    await meta.delete_user(u.id)
    assert await meta.get_user(u.id) is None
    assert await meta.roles_for(u.id, p1.id) == []
    with pytest.raises(errors.NotFound):
        await meta.delete_user(u.id)


async def test_revocations_shared_between_instances(meta_backend):
    a = meta_backend.open()
    b = meta_backend.open()
    later = time.time() + 3600
    assert await a.revoked_tokens() == set()
    assert await b.revoked_tokens() == set()  # b has now cached an empty set
    await a.revoke_token("audit-1", later)
    assert "audit-1" in await a.revoked_tokens()
    assert await b.revoked_tokens() == {"audit-1"}
    await b.revoke_token("audit-2", later)
    assert await a.revoked_tokens() == {"audit-1", "audit-2"}
    assert await b.revoked_tokens() == {"audit-1", "audit-2"}
    # a third instance opened later (a worker started after the revocation) sees both
    c = meta_backend.open()
    assert await c.revoked_tokens() == {"audit-1", "audit-2"}


async def test_revocation_seen_from_another_thread_and_loop(meta_backend):
    """Worker processes each run their own loop: revocations cross loops too."""
    a = meta_backend.open()
    b = meta_backend.open()
    assert await b.revoked_tokens() == set()

    def other_loop() -> None:
        asyncio.run(a.revoke_token("audit-x", time.time() + 60))

    await asyncio.to_thread(other_loop)
    assert await b.revoked_tokens() == {"audit-x"}


# -- accounts and containers -------------------------------------------------------


async def test_account_meta(meta):
    p = await setup_project(meta)
    await meta.update_account_meta(p.id, {"color": "blue", "size": "xl"})
    assert (await meta.get_account(p.id)).meta == {"color": "blue", "size": "xl"}
    await meta.update_account_meta(p.id, {"color": None, "size": "", "new": "1"})
    assert (await meta.get_account(p.id)).meta == {"new": "1"}
    with pytest.raises(errors.AccountNotFound):
        await meta.update_account_meta(uid(), {"a": "b"})
    with pytest.raises(errors.AccountNotFound):
        await meta.get_account(uid())


async def test_containers(meta):
    p = await setup_project(meta, "one")
    q = await setup_project(meta, "two")
    t = time.time()
    assert await meta.create_container(p.id, "Bucket_1", {"a": "1"}, t) is True
    c = await meta.get_container("Bucket_1")
    assert (c.name, c.project_id, c.meta, c.object_count, c.bytes_used) == ("Bucket_1", p.id, {"a": "1"}, 0, 0)
    assert c.put_timestamp == pytest.approx(t)
    # PUT again: not new, metadata merged, counters untouched
    assert await meta.create_container(p.id, "Bucket_1", {"b": "2"}, t + 1) is False
    assert (await meta.get_container("Bucket_1")).meta == {"a": "1", "b": "2"}
    assert (await meta.get_account(p.id)).container_count == 1
    # names are unique across the service
    with pytest.raises(errors.ContainerNameTaken):
        await meta.create_container(q.id, "Bucket_1", {}, t)
    assert (await meta.get_container("Bucket_1")).project_id == p.id
    assert (await meta.get_account(q.id)).container_count == 0
    # case matters
    assert await meta.create_container(q.id, "bucket_1", {}, t) is True
    with pytest.raises(errors.AccountNotFound):
        await meta.create_container(uid(), "orphan", {}, t)
    assert await meta.get_container("orphan") is None

    await meta.update_container_meta("Bucket_1", {"a": None, "c": "3"})
    assert (await meta.get_container("Bucket_1")).meta == {"b": "2", "c": "3"}
    with pytest.raises(errors.ContainerNotFound):
        await meta.update_container_meta("nope", {"a": "b"})

    listing = await meta.list_containers(p.id, ListParams())
    assert [e.name for e in listing] == ["Bucket_1"]
    assert [e.name for e in await meta.list_containers(q.id, ListParams())] == ["bucket_1"]

    # another project cannot delete it
    with pytest.raises(errors.ContainerNotFound):
        await meta.delete_container(q.id, "Bucket_1")
    with pytest.raises(errors.ContainerNotFound):
        await meta.delete_container(p.id, "absent")
    await meta.delete_container(p.id, "Bucket_1")
    assert await meta.get_container("Bucket_1") is None
    assert (await meta.get_account(p.id)).container_count == 0
    # and the name is free for anyone again
    assert await meta.create_container(q.id, "Bucket_1", {}, t) is True
    assert (await meta.get_account(q.id)).container_count == 2


async def test_container_not_empty(meta):
    p = await setup_project(meta)
    await meta.create_container(p.id, "c", {}, time.time())
    await meta.put_object(rec("c", "o"))
    with pytest.raises(errors.ContainerNotEmpty):
        await meta.delete_container(p.id, "c")
    assert await meta.get_object("c", "o", time.time()) is not None
    assert (await meta.get_account(p.id)).container_count == 1
    await meta.delete_object("c", "o")
    await meta.delete_container(p.id, "c")


async def test_container_stats_in_listing(meta):
    p = await setup_project(meta)
    await meta.create_container(p.id, "a", {}, 100.0)
    await meta.create_container(p.id, "b", {}, 200.0)
    await meta.put_object(rec("a", "x", size=10))
    await meta.put_object(rec("a", "y", size=5))
    rows = await meta.list_containers(p.id, ListParams())
    assert [(r.name, r.count, r.bytes, r.is_subdir) for r in rows] == [("a", 2, 15, False), ("b", 0, 0, False)]
    assert rows[1].last_modified == pytest.approx(200.0)


# -- objects ------------------------------------------------------------------------


async def test_objects_sysmeta(meta):
    p = await setup_project(meta)
    await meta.create_container(p.id, "c", {}, time.time())
    await meta.put_object(rec("c", "a", 0, sysmeta={"x-symlink-target": "c/b"}))
    await meta.put_object(rec("c", "b", 0))
    await meta.put_object(rec("c", "gone", 0, sysmeta={"k": "v"}, delete_at=int(time.time()) - 1))
    names = ["a", "b", "gone", "absent"] + [f"n{i}" for i in range(600)]
    assert await meta.objects_sysmeta("c", names, time.time()) == {"a": {"x-symlink-target": "c/b"}, "b": {}}
    assert await meta.objects_sysmeta("other", ["a"], time.time()) == {}


async def test_object_roundtrip(meta):
    p = await setup_project(meta)
    await meta.create_container(p.id, "c", {}, time.time())
    r = rec(
        "c", "dir/ö 名前.txt", size=7, etag="e" * 32, content_type="text/plain",
        meta={"color": "blue"}, sysmeta={"content-disposition": "inline"},
        delete_at=int(time.time()) + 3600, last_modified=1000.5, data_timestamp=999.25,
    )
    assert await meta.put_object(r) == []
    got = await meta.get_object("c", r.name, time.time())
    assert got == r
    assert await meta.get_object("c", "other", time.time()) is None
    assert await meta.get_object("other", r.name, time.time()) is None

    await meta.update_object_meta("c", r.name, {"new": "1"}, {}, "text/csv", None, 2000.0)
    got = await meta.get_object("c", r.name, time.time())
    assert (got.meta, got.sysmeta, got.content_type, got.delete_at, got.last_modified) == (
        {"new": "1"}, {}, "text/csv", None, 2000.0
    )
    # POST leaves the bytes and the data timestamp alone
    assert (got.blob_id, got.size, got.etag, got.data_timestamp) == (r.blob_id, 7, "e" * 32, 999.25)
    with pytest.raises(errors.ObjectNotFound):
        await meta.update_object_meta("c", "absent", {}, {}, "text/plain", None, 1.0)

    with pytest.raises(errors.ContainerNotFound):
        await meta.put_object(rec("absent", "o"))


async def test_counters_exact(meta):
    p = await setup_project(meta)
    await meta.create_container(p.id, "c", {}, time.time())
    await meta.create_container(p.id, "d", {}, time.time())
    assert await counters(meta, p.id, "c") == (2, 0, 0, 0, 0)

    first = rec("c", "a", size=100)
    assert await meta.put_object(first) == []
    assert await counters(meta, p.id, "c") == (2, 1, 100, 1, 100)
    assert await meta.put_object(rec("c", "b", size=50)) == []
    assert await counters(meta, p.id, "c") == (2, 2, 150, 2, 150)
    await meta.put_object(rec("d", "a", size=7))
    assert await counters(meta, p.id, "c") == (2, 3, 157, 2, 150)

    # overwrite: count unchanged, bytes adjusted, the replaced blob returned
    second = rec("c", "a", size=30)
    assert await meta.put_object(second) == [first.blob_id]
    assert await counters(meta, p.id, "c") == (2, 3, 87, 2, 80)
    assert (await meta.get_object("c", "a", time.time())).blob_id == second.blob_id

    assert await meta.delete_object("c", "a") == second.blob_id
    assert await counters(meta, p.id, "c") == (2, 2, 57, 1, 50)
    assert await meta.delete_object("c", "a") is None  # already gone: nothing changes
    assert await counters(meta, p.id, "c") == (2, 2, 57, 1, 50)
    assert await meta.get_object("c", "a", time.time()) is None

    assert await meta.blob_refs() == {
        (await meta.get_object("c", "b", time.time())).blob_id,
        (await meta.get_object("d", "a", time.time())).blob_id,
    }
    assert [(c, n, s) for c, n, _b, s in await meta.objects_with_blobs()] == [("c", "b", 50), ("d", "a", 7)]


async def test_manifest_record_counts_its_stored_body(meta):
    """A manifest (SLO) lists its total size but counts, and fsck checks, its body's."""
    from lampi.core.models import ManifestInfo, ListParams

    p = await setup_project(meta)
    await meta.create_container(p.id, "c", {}, time.time())
    m = rec("c", "m", size=5000, manifest=ManifestInfo("slo", body_size=120, body_etag="e" * 32, parts=3))
    assert await meta.put_object(m) == []
    got = await meta.get_object("c", "m", time.time())
    assert got.manifest == m.manifest and got.size == 5000 and got.stored_size == 120
    assert await counters(meta, p.id, "c") == (1, 1, 120, 1, 120)
    [entry] = await meta.list_objects("c", ListParams(), time.time())
    assert entry.bytes == 5000 and entry.extra["manifest"]["body_etag"] == "e" * 32
    assert [(n, s) for _c, n, _b, s in await meta.objects_with_blobs()] == [("m", 120)]
    # overwritten by a plain object, then deleted: counters stay exact
    assert await meta.put_object(rec("c", "m", size=7)) == [m.blob_id]
    assert await counters(meta, p.id, "c") == (1, 1, 7, 1, 7)
    await meta.delete_object("c", "m")
    assert await counters(meta, p.id, "c") == (1, 0, 0, 0, 0)


async def test_counters_exact_under_concurrent_writers(meta_backend):
    """Two store instances (two workers) writing the same container at once."""
    a = meta_backend.open()
    b = meta_backend.open()
    p = await setup_project(a)
    await a.create_container(p.id, "c", {}, time.time())

    async def writer(store, tag: str) -> None:
        for i in range(15):
            await store.put_object(rec("c", f"{tag}-{i}", size=i + 1))
            await store.put_object(rec("c", f"shared-{i % 5}", size=10))  # overwrites race
            if i % 3 == 0:
                await store.delete_object("c", f"{tag}-{i}")

    await asyncio.gather(writer(a, "a"), writer(b, "b"))
    names = await a.list_objects("c", ListParams(), time.time())
    expected_bytes = sum(e.bytes for e in names)
    assert len(names) == 2 * 10 + 5
    for store in (a, b):
        acct = await store.get_account(p.id)
        cont = await store.get_container("c")
        assert (cont.object_count, cont.bytes_used) == (len(names), expected_bytes)
        assert (acct.object_count, acct.bytes_used) == (len(names), expected_bytes)


async def test_expired_objects_invisible(meta):
    p = await setup_project(meta)
    await meta.create_container(p.id, "c", {}, time.time())
    now = time.time()
    await meta.put_object(rec("c", "past", delete_at=int(now) - 10))
    await meta.put_object(rec("c", "now", delete_at=int(now)))
    await meta.put_object(rec("c", "future", delete_at=int(now) + 1000))
    await meta.put_object(rec("c", "never"))
    assert await meta.get_object("c", "past", now) is None
    assert await meta.get_object("c", "now", float(int(now))) is None  # delete_at <= now
    assert await meta.get_object("c", "future", now) is not None
    assert await meta.get_object("c", "never", now) is not None
    listing = await meta.list_objects("c", ListParams(), now)
    assert [e.name for e in listing] == ["future", "never"]
    # once its time comes, the future one disappears too
    assert await meta.get_object("c", "future", now + 1000) is None
    assert [e.name for e in await meta.list_objects("c", ListParams(), now + 1000)] == ["never"]
    # expired ones are hidden from delimiter folding and markers as well
    await meta.put_object(rec("c", "gone/x", delete_at=int(now) - 1))
    assert [e.name for e in await meta.list_objects("c", ListParams(delimiter="/"), now)] == ["future", "never"]
    # a new PUT over an expired object makes it visible again
    await meta.put_object(rec("c", "past"))
    assert await meta.get_object("c", "past", now) is not None


async def test_object_listing_fields(meta):
    p = await setup_project(meta)
    await meta.create_container(p.id, "c", {}, time.time())
    await meta.put_object(rec("c", "x", size=12, etag="a" * 32, content_type="text/plain", last_modified=1234.5))
    (e,) = await meta.list_objects("c", ListParams(), time.time())
    assert (e.name, e.bytes, e.hash, e.content_type, e.last_modified, e.is_subdir) == (
        "x", 12, "a" * 32, "text/plain", 1234.5, False
    )


# -- EC2 credentials (S3 keys) ---------------------------------------------------------


async def test_credentials(meta):
    from lampi.core.models import Credential

    p = await setup_project(meta)
    u = await meta.create_user(User(uid(), "carol", "default", "h"))
    v = await meta.create_user(User(uid(), "dave", "default", "h"))
    c1 = await meta.create_credential(Credential("AK1", "secret1", u.id, p.id, 10.0))
    await meta.create_credential(Credential("AK2", "secret2", u.id, p.id, 20.0))
    await meta.create_credential(Credential("AK3", "secret3", v.id, p.id, 30.0))
    got = await meta.get_credential("AK1")
    assert got == c1 and got.secret == "secret1"
    assert await meta.get_credential("nope") is None
    with pytest.raises(errors.Conflict):
        await meta.create_credential(Credential("AK1", "x", u.id, p.id, 1.0))
    with pytest.raises(errors.Conflict):  # unknown user
        await meta.create_credential(Credential("AK9", "x", uid(), p.id, 1.0))
    assert [c.access for c in await meta.list_credentials(u.id)] == ["AK1", "AK2"]
    assert [c.access for c in await meta.list_credentials()] == ["AK1", "AK2", "AK3"]
    await meta.delete_credential("AK2")
    assert await meta.get_credential("AK2") is None
    with pytest.raises(errors.NotFound):
        await meta.delete_credential("AK2")
    # a deleted user's keys go with them
    await meta.delete_user(v.id)
    assert await meta.get_credential("AK3") is None


async def test_credential_key_rotation(meta):
    """rotate_credential_key re-seals every secret with a new key (the re-seal loop both
    stores share) and removes the keys no row needs; the secrets read back unchanged."""
    from lampi.core.models import Credential

    p = await setup_project(meta)
    u = await meta.create_user(User(uid(), "erin", "default", "h"))
    for i in range(3):
        await meta.create_credential(Credential(f"AKROT{i}", f"secret-{i}", u.id, p.id, float(i)))
    before = meta.credential_keys.key_ids()
    report = await meta.rotate_credential_key()
    assert report.sealed == 3 and report.unopenable == ()
    after = meta.credential_keys.key_ids()
    assert report.primary in after and report.primary not in before
    assert not set(before) & set(after)  # the old key, no longer used, is removed
    for i in range(3):
        assert (await meta.get_credential(f"AKROT{i}")).secret == f"secret-{i}"
    again = await meta.rotate_credential_key()
    assert again.sealed == 3 and again.primary != report.primary


async def test_reap_expired(meta):
    p = await setup_project(meta)
    await meta.create_container(p.id, "c", {}, time.time())
    now = time.time()
    await meta.put_object(rec("c", "old1", size=5, blob_id="b1", delete_at=int(now) - 10))
    await meta.put_object(rec("c", "old2", size=7, blob_id="b2", delete_at=int(now) - 5))
    await meta.put_object(rec("c", "later", size=11, delete_at=int(now) + 1000))
    await meta.put_object(rec("c", "never", size=13))
    assert await counters(meta, p.id, "c") == (1, 4, 36, 4, 36)
    assert await meta.reap_expired(now, 1) == ["b1"]  # oldest first, at most `limit`
    assert await meta.reap_expired(now, 100) == ["b2"]
    assert await meta.reap_expired(now, 100) == []  # idempotent
    assert await counters(meta, p.id, "c") == (1, 2, 24, 2, 24)
    assert [e.name for e in await meta.list_objects("c", ListParams(), now)] == ["later", "never"]


async def test_reap_expired_concurrent_reapers_count_once(meta_backend):
    a, b = meta_backend.open(), meta_backend.open()
    p = await setup_project(a)
    await a.create_container(p.id, "c", {}, time.time())
    now = time.time()
    for i in range(40):
        await a.put_object(rec("c", f"o{i}", size=2, delete_at=int(now) - 1))
    got = await asyncio.gather(*[m.reap_expired(now, 7) for m in (a, b) for _ in range(5)])
    assert sum(len(g) for g in got) == 40
    assert len({x for g in got for x in g}) == 40
    assert await counters(a, p.id, "c") == (1, 0, 0, 0, 0)


async def test_project_quota(meta):
    p = await setup_project(meta)
    assert await meta.get_project_quota(p.id) == {"bytes": None, "containers": None, "objects_per_container": None}
    await meta.set_project_quota(p.id, {"bytes": 100, "containers": 3})
    assert await meta.get_project_quota(p.id) == {"bytes": 100, "containers": 3, "objects_per_container": None}
    await meta.set_project_quota(p.id, {"bytes": None, "objects_per_container": 9})
    assert await meta.get_project_quota(p.id) == {"bytes": None, "containers": 3, "objects_per_container": 9}
    with pytest.raises(errors.NotFound):
        await meta.set_project_quota("nope", {"bytes": 1})


# -- S3 multipart uploads -------------------------------------------------------------


async def test_multipart_uploads_parts_complete_abort(meta):
    from lampi.core.models import ManifestInfo, MultipartUpload, UploadPart

    p = await setup_project(meta)
    await meta.create_container(p.id, "mpu", {}, time.time())
    ups = [MultipartUpload(f"{i:04d}" + uid(), "mpu", name, p.id, time.time(), "text/plain", {"a": "1"},
                           {"s3-tags": "t=v"}, "crc32", "COMPOSITE", "u1")
           for i, name in enumerate(["k", "k", "a/x", "b"])]
    for u in ups:
        await meta.create_upload(u)
    assert await meta.get_upload(ups[0].upload_id) == ups[0]
    assert await meta.get_upload("nope") is None
    with pytest.raises(errors.ContainerNotFound):
        await meta.create_upload(MultipartUpload(uid(), "nope", "k", p.id, time.time()))
    # S3's order: by key, then upload id (creation order); markers page through it
    order = [(u.name, u.upload_id) for u in await meta.list_uploads("mpu", "", "", "", 100)]
    assert order == sorted((u.name, u.upload_id) for u in ups)
    assert [u.name for u in await meta.list_uploads("mpu", "a/", "", "", 100)] == ["a/x"]
    assert [u.upload_id for u in await meta.list_uploads("mpu", "", "k", ups[0].upload_id, 100)] == [ups[1].upload_id]
    assert [u.name for u in await meta.list_uploads("mpu", "", "b", "", 100)] == ["k", "k"]
    assert len(await meta.list_uploads("mpu", "", "", "", 2)) == 2
    # parts: replacing one returns the old blob; a part of a missing upload is refused
    u = ups[0]
    parts = [UploadPart(u.upload_id, n, uid(), 10 * n, f"{n:032x}", time.time(), None) for n in (1, 2, 3)]
    for part in parts:
        assert await meta.put_part(part) is None
    newer = UploadPart(u.upload_id, 2, uid(), 20, "f" * 32, time.time(), "AAAAAA==")
    assert await meta.put_part(newer) == parts[1].blob_id
    parts[1] = newer
    with pytest.raises(errors.NotFound):
        await meta.put_part(UploadPart("nope", 1, uid(), 1, "0" * 32, time.time()))
    assert await meta.list_parts(u.upload_id) == parts
    assert await meta.list_parts(u.upload_id, 1, 1) == [parts[1]]
    refs = await meta.blob_refs()
    assert {x.blob_id for x in parts} <= refs  # in-progress parts count as referenced
    stray = uid()
    assert await meta.referenced_blobs([parts[0].blob_id, stray]) == {parts[0].blob_id}  # fsck's re-check
    # complete with parts 1 and 3: part 2 is handed back unused; the manifest owns 1 and 3
    body = uid()
    record = rec("mpu", "k", size=40, blob_id=body, etag="e" * 32 + "-2",
                 manifest=ManifestInfo("mpu", body_size=100, body_etag="b" * 32, parts=2))
    before = await counters(meta, p.id, "mpu")
    old, unused = await meta.complete_upload(u.upload_id, record, [parts[0].blob_id, parts[2].blob_id])
    assert old == [] and unused == [parts[1].blob_id]
    after = await counters(meta, p.id, "mpu")
    assert after[1] - before[1] == 1 and after[2] - before[2] == 40  # a multipart object counts its whole size
    assert await meta.get_upload(u.upload_id) is None and await meta.list_parts(u.upload_id) == []
    assert (await meta.get_object("mpu", "k", time.time())).manifest.kind == "mpu"
    refs = await meta.blob_refs()
    assert {body, parts[0].blob_id, parts[2].blob_id} <= refs and parts[1].blob_id not in refs
    assert ("mpu", "k", body, 100) in await meta.objects_with_blobs()  # fsck checks the body's size
    assert await meta.objects_with_blobs(only=[body, stray]) == [("mpu", "k", body, 100)]
    # the manifest's parts, its body (an object) are referenced; the unused part is not
    assert await meta.referenced_blobs([body, parts[0].blob_id, parts[1].blob_id, parts[2].blob_id, stray]) == \
        {body, parts[0].blob_id, parts[2].blob_id}
    with pytest.raises(errors.NotFound):
        await meta.complete_upload(u.upload_id, record, [])
    # the owner is still an object: nothing to release
    assert await meta.release_manifest(body) == []
    # replaced: the manifest's parts are released once, and no longer referenced
    assert await meta.put_object(rec("mpu", "k", size=5)) == [body]
    assert sorted(await meta.release_manifest(body)) == sorted([parts[0].blob_id, parts[2].blob_id])
    assert await meta.release_manifest(body) == []
    assert parts[0].blob_id not in await meta.blob_refs()
    assert await meta.referenced_blobs([parts[0].blob_id, parts[2].blob_id, body]) == set()
    assert (await counters(meta, p.id, "mpu"))[2] == before[2] + 5
    # abort hands back the part blobs; a second abort finds nothing
    pb = UploadPart(ups[1].upload_id, 1, uid(), 1, "0" * 32, time.time())
    await meta.put_part(pb)
    assert await meta.abort_upload(ups[1].upload_id) == [pb.blob_id]
    assert await meta.abort_upload(ups[1].upload_id) is None
    assert pb.blob_id not in await meta.blob_refs()
    # deleting the (object-empty) bucket drops its uploads in progress
    await meta.delete_object("mpu", "k")
    await meta.delete_container(p.id, "mpu")
    assert await meta.get_upload(ups[2].upload_id) is None


# -- object versions (lampi/core/versions.py) --------------------------------------------


async def test_versioned_writes_keep_versions_and_count_bytes_once(meta):
    from lampi.core.versions import DELETE_MARKER, version_id

    p = await setup_project(meta)
    await meta.create_container(p.id, "c", {}, time.time())
    t = 1700000000.0
    null = rec("c", "o", size=10, last_modified=t, data_timestamp=t)
    assert await meta.put_object(null) == []
    # a versioned write keeps the unversioned object as a version (id = its timestamp)
    v1 = rec("c", "o", size=20, last_modified=t + 1, data_timestamp=t + 1, version_id=version_id(t + 1),
             delete_at=int(t + 10**9))
    assert await meta.put_object(v1) == []  # nothing released
    assert await counters(meta, p.id, "c") == (1, 1, 30, 1, 30)
    cur = await meta.get_object("c", "o", time.time())
    assert cur.version_id == version_id(t + 1) and cur.blob_id == v1.blob_id and cur.delete_at == v1.delete_at
    kept = await meta.get_version("c", "o", version_id(t))
    assert kept.blob_id == null.blob_id and kept.size == 10
    assert (await meta.get_version("c", "o", version_id(t + 1))).delete_at is None  # expiry: the current's own
    with pytest.raises(errors.Conflict):  # a taken version id
        await meta.put_object(rec("c", "o", last_modified=t + 1, version_id=version_id(t + 1)))
    v2 = rec("c", "o", size=5, last_modified=t + 2, data_timestamp=t + 2, version_id=version_id(t + 2))
    assert await meta.put_object(v2) == []
    assert await counters(meta, p.id, "c") == (1, 1, 35, 1, 35)
    assert await meta.blob_refs() >= {null.blob_id, v1.blob_id, v2.blob_id}
    assert sorted(s for _c, _n, _b, s in await meta.objects_with_blobs()) == [5, 10, 20]
    assert await meta.objects_with_blobs(only=[null.blob_id]) == [("c", f"o?version-id={version_id(t)}",
                                                                   null.blob_id, 10)]
    assert await meta.referenced_blobs([null.blob_id, v2.blob_id, uid()]) == {null.blob_id, v2.blob_id}

    # a POST to the current object updates its version too
    await meta.update_object_meta("c", "o", {"k": "v"}, {}, "text/plain", None, t + 3)
    assert (await meta.get_version("c", "o", version_id(t + 2))).meta == {"k": "v"}

    # DELETE: a delete marker; the versions stay
    existed, marker, released = await meta.delete_current("c", "o", t + 4, time.time())
    assert existed and marker == version_id(t + 4) and released == []
    assert await meta.get_object("c", "o", time.time()) is None
    assert (await meta.get_version("c", "o", marker)).content_type == DELETE_MARKER
    assert await counters(meta, p.id, "c") == (1, 0, 35, 0, 35)
    rows = await meta.list_versions("c", ListParams(), None, time.time())
    assert [(r.extra["version_id"], r.extra["is_latest"]) for r in rows] == [
        (marker, True), (version_id(t + 2), False), (version_id(t + 1), False), (version_id(t), False)]

    # restore an old version: it becomes current (shares the blob)
    got, released = await meta.restore_version("c", "o", version_id(t + 1), keep_current=True)
    assert got.blob_id == v1.blob_id and released is None
    assert (await meta.get_object("c", "o", time.time())).version_id == version_id(t + 1)
    assert await counters(meta, p.id, "c") == (1, 1, 35, 1, 35)
    assert await meta.restore_version("c", "o", marker, keep_current=True) == (None, None)  # a marker
    assert await meta.restore_version("c", "o", version_id(t + 9), keep_current=True) == (None, None)

    # deleting a non-current version releases its blob only
    assert await meta.delete_version("c", "o", version_id(t)) == (True, null.blob_id, version_id(t + 1))
    assert await counters(meta, p.id, "c") == (1, 1, 25, 1, 25)
    assert await meta.delete_version("c", "o", version_id(t)) == (False, None, version_id(t + 1))
    # deleting the current version removes the current object too (as Swift)
    assert await meta.delete_version("c", "o", version_id(t + 1)) == (True, v1.blob_id, "null")
    assert await meta.get_object("c", "o", time.time()) is None
    assert await counters(meta, p.id, "c") == (1, 0, 5, 0, 5)

    # an unversioned write over a pointer (suspended) releases nothing; the version stays
    await meta.restore_version("c", "o", version_id(t + 2), keep_current=True)
    assert await meta.put_object(rec("c", "o", size=3)) == []
    assert await counters(meta, p.id, "c") == (1, 1, 8, 1, 8)
    # a delete of a pointer releases nothing ("" = present, no blob of its own)
    null2 = (await meta.get_object("c", "o", time.time())).blob_id
    assert (await meta.restore_version("c", "o", version_id(t + 2), keep_current=False))[1] == null2
    assert await counters(meta, p.id, "c") == (1, 1, 5, 1, 5)  # suspended: the null one is released
    assert await meta.delete_object("c", "o") == ""
    assert await counters(meta, p.id, "c") == (1, 0, 5, 0, 5)

    # the container cannot go while versions remain
    with pytest.raises(errors.ContainerNotEmpty):
        await meta.delete_container(p.id, "c")
    for r in await meta.list_versions("c", ListParams(), None, time.time()):
        await meta.delete_version("c", "o", r.extra["version_id"])
    assert await counters(meta, p.id, "c") == (1, 0, 0, 0, 0)
    assert await meta.blob_refs() == set()
    await meta.delete_container(p.id, "c")


async def test_version_listing_order_markers_and_delimiter(meta):
    from lampi.core.versions import version_id

    p = await setup_project(meta)
    await meta.create_container(p.id, "c", {}, time.time())
    t = 1700000000.0
    for i, name in enumerate(["a", "b", "d/x", "d/y", "e"]):
        await meta.put_object(rec("c", name, last_modified=t + i, version_id=version_id(t + i)))
        await meta.put_object(rec("c", name, last_modified=t + 10 + i, version_id=version_id(t + 10 + i)))
    await meta.put_object(rec("c", "c0", last_modified=t + 30))  # an unversioned object
    now = time.time()

    def keys(rows):
        return [(r.name, r.extra["version_id"]) if not r.is_subdir else r.name for r in rows]

    rows = await meta.list_versions("c", ListParams(), None, now)
    assert keys(rows)[:5] == [("a", version_id(t + 10)), ("a", version_id(t)), ("b", version_id(t + 11)),
                              ("b", version_id(t + 1)), ("c0", "null")]
    assert len(rows) == 11 and all(r.extra["is_latest"] == (r.extra["version_id"] in (
        "null", *(version_id(t + 10 + i) for i in range(5)))) for r in rows)
    # limit + marker/version_marker pages through, as swiftclient's full listing does
    got, marker, vm = [], "", None
    while True:
        page = await meta.list_versions("c", ListParams(limit=3, marker=marker), vm, now)
        if not page:
            break
        got += keys(page)
        marker, vm = page[-1].name, page[-1].extra["version_id"]
    assert got == keys(rows)
    # version_marker "null": from the marker's versions; a marker alone skips all of them
    assert keys(await meta.list_versions("c", ListParams(marker="b"), "null", now))[:2] == [
        ("b", version_id(t + 11)), ("b", version_id(t + 1))]
    assert keys(await meta.list_versions("c", ListParams(marker="b"), None, now))[0] == ("c0", "null")
    # prefix and delimiter
    assert keys(await meta.list_versions("c", ListParams(prefix="d/"), None, now)) == [
        ("d/x", version_id(t + 12)), ("d/x", version_id(t + 2)), ("d/y", version_id(t + 13)),
        ("d/y", version_id(t + 3))]
    assert keys(await meta.list_versions("c", ListParams(delimiter="/"), None, now)) == [
        ("a", version_id(t + 10)), ("a", version_id(t)), ("b", version_id(t + 11)), ("b", version_id(t + 1)),
        ("c0", "null"), "d/", ("e", version_id(t + 14)), ("e", version_id(t + 4))]
    # reverse: names descending, each name's versions oldest first (Swift's merge)
    assert keys(await meta.list_versions("c", ListParams(reverse=True, limit=3), None, now)) == [
        ("e", version_id(t + 4)), ("e", version_id(t + 14)), ("d/y", version_id(t + 3))]


async def test_conditional_delete(meta):
    """delete_object(if_blob=...): only the version that was judged, atomically."""
    p = await setup_project(meta)
    await meta.create_container(p.id, "c", {}, time.time())
    first = rec("c", "o")
    await meta.put_object(first)
    second = rec("c", "o", size=5)
    assert await meta.put_object(second) == [first.blob_id]  # replaced
    assert await meta.delete_object("c", "o", if_blob=first.blob_id) is None  # not that version any more
    assert (await meta.get_object("c", "o", time.time())).blob_id == second.blob_id
    assert await meta.delete_object("c", "o", if_blob=second.blob_id) == second.blob_id
    assert await meta.get_object("c", "o", time.time()) is None
    assert await counters(meta, p.id, "c") == (1, 0, 0, 0, 0)  # counted once, no more


async def test_leases(meta):
    """take_lease: one holder at a time; renewable by its holder; free once expired."""
    assert await meta.take_lease("expirer", "a", 10, 100.0)
    assert not await meta.take_lease("expirer", "b", 10, 105.0)  # a holds it until 110
    assert await meta.take_lease("other-pass", "b", 10, 105.0)  # leases are by name
    assert await meta.take_lease("expirer", "a", 10, 108.0)  # renewed: now until 118
    assert not await meta.take_lease("expirer", "b", 10, 115.0)
    assert await meta.take_lease("expirer", "b", 10, 118.5)  # a stopped renewing: b takes over
    assert not await meta.take_lease("expirer", "a", 10, 119.0)


async def test_s3_null_versions_promotion_and_conditions(meta):
    """S3's view of the versions (lampi/s3/versioning.py): the null version, promotion of
    the previous version, suspended writes and deletes, conditional writes."""
    from lampi.core.models import WriteCondition
    from lampi.core.versions import DELETE_MARKER, version_id

    p = await setup_project(meta)
    await meta.create_container(p.id, "c", {}, time.time())
    t = 1700000000.0
    null = rec("c", "o", size=10, last_modified=t, data_timestamp=t)
    assert await meta.put_object(null) == []
    assert await meta.null_version("c", "o") is None  # the unversioned current object is the null version
    v1 = rec("c", "o", size=20, last_modified=t + 1, version_id=version_id(t + 1))
    await meta.put_object(v1)
    assert await meta.null_version("c", "o") == version_id(t)  # kept as a version: still the null one
    rows = await meta.list_versions("c", ListParams(), None, time.time())
    assert [(r.extra["version_id"], r.extra["null"]) for r in rows] == [(version_id(t + 1), False),
                                                                         (version_id(t), True)]
    # S3: deleting the current version makes the previous one current
    assert await meta.delete_version("c", "o", version_id(t + 1), promote=True) == \
        (True, v1.blob_id, version_id(t))
    cur = await meta.get_object("c", "o", time.time())
    assert cur.version_id == version_id(t) and cur.blob_id == null.blob_id
    assert await counters(meta, p.id, "c") == (1, 1, 10, 1, 10)
    # the null version by its S3 name: current or not, it goes
    assert await meta.delete_null("c", "o", promote=True) == (True, null.blob_id, False)
    assert await meta.get_object("c", "o", time.time()) is None and await meta.null_version("c", "o") is None
    assert await counters(meta, p.id, "c") == (1, 0, 0, 0, 0)
    assert await meta.delete_null("c", "o") == (False, None, False)

    # suspended writes: null_write replaces the null version wherever it is
    await meta.put_object(rec("c", "s", size=1, last_modified=t))  # null
    await meta.put_object(rec("c", "s", size=2, last_modified=t + 1, version_id=version_id(t + 1)))
    kept_null = await meta.null_version("c", "s")
    n2 = rec("c", "s", size=3, last_modified=t + 2)
    released = await meta.put_object(n2, null_write=True)
    assert len(released) == 1 and await meta.get_version("c", "s", kept_null) is None
    assert await counters(meta, p.id, "c") == (1, 1, 5, 1, 5)
    # without null_write (Swift's suspended write) an older null version stays, as a plain version
    await meta.put_object(rec("c", "w", size=1, last_modified=t))
    await meta.put_object(rec("c", "w", size=1, last_modified=t + 1, version_id=version_id(t + 1)))
    assert await meta.put_object(rec("c", "w", size=1, last_modified=t + 2)) == []
    assert await meta.null_version("c", "w") is None and await meta.get_version("c", "w", version_id(t))
    # suspended DELETE: the null version goes, the marker is the new null version
    existed, marker, released = await meta.delete_current("c", "s", t + 3, time.time(), suspended=True)
    assert existed and released == [n2.blob_id] and await meta.null_version("c", "s") == marker
    assert (await meta.get_version("c", "s", marker)).content_type == DELETE_MARKER
    assert (await meta.latest_version("c", "s")).version_id == marker
    assert await meta.delete_null("c", "s", promote=True) == (True, None, True)  # the null marker
    assert (await meta.get_object("c", "s", time.time())).version_id == version_id(t + 1)  # promoted

    # conditional writes, in the committing transaction
    await meta.put_object(rec("c", "k", etag="a" * 32))
    with pytest.raises(errors.PreconditionFailed):
        await meta.put_object(rec("c", "k", etag="b" * 32), cond=WriteCondition(if_none_match=("*",)))
    with pytest.raises(errors.PreconditionFailed):
        await meta.put_object(rec("c", "k"), cond=WriteCondition(if_match=("c" * 32,)))
    with pytest.raises(errors.ObjectNotFound):
        await meta.put_object(rec("c", "nope"), cond=WriteCondition(if_match=("*",)))
    assert (await meta.get_object("c", "k", time.time())).etag == "a" * 32
    await meta.put_object(rec("c", "k", etag="b" * 32), cond=WriteCondition(if_match=("a" * 32,)))
    await meta.put_object(rec("c", "new"), cond=WriteCondition(if_none_match=("*",)))

    # update_version_sysmeta: one version (and the current pointing at it)
    vid = (await meta.get_object("c", "s", time.time())).version_id
    await meta.update_version_sysmeta("c", "s", vid, lambda r: {**r.sysmeta, "s3-x": "1"})
    assert (await meta.get_version("c", "s", vid)).sysmeta["s3-x"] == "1"
    assert (await meta.get_object("c", "s", time.time())).sysmeta["s3-x"] == "1"
    with pytest.raises(errors.ObjectNotFound):
        await meta.update_version_sysmeta("c", "s", version_id(t + 99), lambda r: r.sysmeta)


async def test_object_lock_is_enforced_by_the_store(meta):
    """Object lock (lampi/core/objectlock.py): no transaction releases a locked version."""
    from lampi.core import objectlock
    from lampi.core.versions import version_id

    p = await setup_project(meta)
    await meta.create_container(p.id, "c", {}, time.time())
    far = time.time() + 3600
    gov = objectlock.retention("GOVERNANCE", far)
    t = 1700000000.0
    v = rec("c", "o", last_modified=t, version_id=version_id(t), sysmeta=dict(gov))
    await meta.put_object(v)
    with pytest.raises(errors.ObjectLocked):
        await meta.delete_version("c", "o", version_id(t))
    assert await meta.get_version("c", "o", version_id(t)) is not None
    assert (await meta.delete_version("c", "o", version_id(t), bypass_governance=True))[0]
    # COMPLIANCE and legal hold: never, bypass or not; the unversioned object too
    await meta.put_object(rec("c", "u", sysmeta={**objectlock.retention("COMPLIANCE", far)}))
    for call in (lambda: meta.delete_object("c", "u", bypass_governance=True),
                 lambda: meta.put_object(rec("c", "u")),
                 lambda: meta.delete_null("c", "u", bypass_governance=True),
                 lambda: meta.delete_current("c", "u", time.time(), time.time(), suspended=True)):
        with pytest.raises(errors.ObjectLocked):
            await call()
    assert await meta.get_object("c", "u", time.time()) is not None
    await meta.put_object(rec("c", "h", sysmeta={objectlock.HOLD_KEY: "ON"}))
    with pytest.raises(errors.ObjectLocked):
        await meta.delete_object("c", "h", bypass_governance=True)
    # the expirer leaves a locked object alone, and takes it once the lock is gone
    await meta.put_object(rec("c", "e", sysmeta=dict(gov), delete_at=int(time.time()) - 10))
    await meta.put_object(rec("c", "x", delete_at=int(time.time()) - 10))
    assert len(await meta.reap_expired(time.time(), 100)) == 1
    assert await meta.get_object("c", "e", time.time() - 3600) is not None
    await meta.update_version_sysmeta("c", "e", None, lambda r: {})
    assert len(await meta.reap_expired(time.time(), 100)) == 1
    # an expired retention no longer protects
    await meta.put_object(rec("c", "old", sysmeta=objectlock.retention("COMPLIANCE", time.time() - 1)))
    assert await meta.delete_object("c", "old") is not None


async def test_ping_and_usage_by_project(meta):
    """Readiness and the per-project usage gauges (issue 14)."""
    await meta.ping()
    pid = "p" + uuid.uuid4().hex[:8]
    await meta.ensure_account(pid)
    await meta.create_container(pid, "u-" + uuid.uuid4().hex[:8], {}, time.time())
    rows = {r[0]: r[1:] for r in await meta.usage_by_project()}
    assert rows[pid] == (0, 0, 1)  # bytes, objects, containers


# -- keys sealed with a master key (lampi/store/keyring.py StoredKeys) -------------------


def _master(meta, value: str):  # noqa: ANN001, ANN202
    """``meta`` with its keys in its keys table, sealed with master key ``value``."""
    from lampi.store.keyring import MasterKeySource

    meta.use_keys(MasterKeySource(value=value, default_file=str(meta.path.parent / "master.key")))
    return meta


async def test_key_table_rows(meta):
    """insert_key_rows is all or nothing; a fresh-check insertion adds the rest only when
    its first row is new; rows come back by number; deletes by number."""
    t = meta
    assert await asyncio.to_thread(t.key_rows, "fernet") == []
    assert await asyncio.to_thread(t.insert_key_rows, [("fernet", 0, "k0", "s0"), ("fernet", 1, "k1", "s1")])
    assert await asyncio.to_thread(t.insert_key_rows, [("fernet", 2, "k2", "s2"), ("fernet", 1, "kx", "sx")]) is False
    assert await asyncio.to_thread(t.key_rows, "fernet") == [(0, "k0", "s0"), (1, "k1", "s1")]  # k2 not inserted
    assert await asyncio.to_thread(t.insert_key_rows, [("master", 0, "check", "c"), ("sse", 0, "s", "x")],
                                   fresh_check=True)
    assert await asyncio.to_thread(t.insert_key_rows, [("master", 0, "check", "other"), ("sse", 1, "s", "y")],
                                   fresh_check=True) is False
    assert await asyncio.to_thread(t.key_rows, "sse") == [(0, "s", "x")]
    assert await asyncio.to_thread(t.key_rings) == ["fernet", "master", "sse"]
    assert await asyncio.to_thread(t.delete_key_rows, "fernet", [0, 7]) == 1
    assert await asyncio.to_thread(t.key_rows, "fernet") == [(1, "k1", "s1")]


async def test_stored_keys_shared_by_two_stores(meta_backend):
    """Two stores over one database (two gateways) with the same master key: a secret
    sealed, a token signed, a credential made or re-sealed by one is opened by the other,
    also after a rotation the other has not seen yet."""
    from cryptography.fernet import Fernet

    from lampi.core.models import Credential
    from lampi.core.tokens import TokenCodec

    key = Fernet.generate_key().decode()
    a, b = _master(meta_backend.open(), key), _master(meta_backend.open(), key)
    await asyncio.to_thread(a.keys.check)
    await asyncio.to_thread(b.keys.check)
    ca, cb = TokenCodec(a.keys.ring("fernet")), TokenCodec(b.keys.ring("fernet"))
    token, _ = ca.issue("u", "p", ("admin",), ("password",), 60)
    assert cb.decode(token).user_id == "u"
    a.keys.ring("fernet").add_key()  # rotated on a: b meets a token of a key it never loaded
    ca2 = TokenCodec(a.keys.ring("fernet"))
    token2, _ = ca2.issue("u2", "p", ("admin",), ("password",), 60)
    assert cb.decode(token2).user_id == "u2"
    assert len(b.keys.ring("fernet").key_ids()) == 2
    # EC2 secrets
    p = await setup_project(a)
    u = await a.create_user(User(uid(), "kim", "default", "h"))
    await a.create_credential(Credential("AKSHARED", "s3cret", u.id, p.id, 1.0))
    assert (await b.get_credential("AKSHARED")).secret == "s3cret"
    rep = await a.rotate_credential_key()
    assert rep.sealed == 1 and rep.removed_keys  # the old key's row is gone
    assert (await b.get_credential("AKSHARED")).secret == "s3cret"
    # SSE: a data key wrapped on a unwrapped on b
    from lampi.core.sse import Encryption, KeyService

    data_key, sysmeta = KeyService(a.keys).new_data_key(Encryption("AES256"))
    assert KeyService(b.keys).data_key(sysmeta) == data_key
    KeyService(a.keys).kms_create("lab")
    assert KeyService(b.keys).kms_names() == ["lab"]
    # nothing of it in files
    assert not (a.path.parent / "keys").exists()


async def test_master_key_wrong_or_missing_is_refused(meta_backend):
    from cryptography.fernet import Fernet

    from lampi.store.keyring import MasterKeyError, MasterKeySource

    a = _master(meta_backend.open(), Fernet.generate_key().decode())
    await asyncio.to_thread(a.keys.ring("credential").primary)
    wrong = _master(meta_backend.open(), Fernet.generate_key().decode())
    with pytest.raises(MasterKeyError, match="is not the master key"):
        await asyncio.to_thread(wrong.keys.check)
    none = meta_backend.open()
    none.use_keys(MasterKeySource(default_file=str(none.path.parent / "absent" / "master.key")))
    if not isinstance(none.keys, type(a.keys)):
        return  # SQLite without a master key: its keys are files of its own (nothing to refuse)
    with pytest.raises(MasterKeyError, match="was not given"):
        await asyncio.to_thread(none.keys.check)
    bad = meta_backend.open()
    bad.use_keys(MasterKeySource(value="not a key"))
    with pytest.raises(MasterKeyError, match="is not a master key"):
        await asyncio.to_thread(bad.keys.check)


async def test_master_key_rotation_reseals_every_row_in_one_transaction(meta_backend):
    """``StoredKeys.rotate_master`` ("new,old"): every row the old key sealed is re-sealed
    with the new one, what was sealed still opens, a second run re-seals nothing; a row
    that opens with none of the keys refuses the whole rotation, nothing written."""
    from cryptography.fernet import Fernet

    from lampi.core.sse import Encryption, KeyService
    from lampi.store.keyring import MasterKeyError

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    a = _master(meta_backend.open(), old)
    await asyncio.to_thread(a.keys.check)
    data_key, sysmeta = KeyService(a.keys).new_data_key(Encryption("AES256"))
    kid, sealed = await asyncio.to_thread(a.keys.ring("credential").seal, b"hello")
    table = await asyncio.to_thread(lambda: {r: a.key_rows(r) for r in a.key_rings()})
    rows = sum(len(v) for v in table.values())
    assert rows >= 3  # master check, sse, credential
    b = _master(meta_backend.open(), f"{new},{old}")
    assert await asyncio.to_thread(b.keys.rotate_master) == (rows, rows)
    assert await asyncio.to_thread(b.keys.rotate_master) == (0, rows)  # idempotent
    for ring in table:
        for _n, _kid, s in await asyncio.to_thread(a.key_rows, ring):
            Fernet(new.encode()).decrypt(s.encode())
    c = _master(meta_backend.open(), new)  # the new key alone opens everything
    assert KeyService(c.keys).data_key(sysmeta) == data_key
    assert await asyncio.to_thread(c.keys.ring("credential").open, kid, sealed) == b"hello"
    with pytest.raises(MasterKeyError, match="is not the master key"):
        await asyncio.to_thread(_master(meta_backend.open(), old).keys.check)
    # a row sealed with a third key: refused, nothing changed
    third = Fernet(Fernet.generate_key())
    await asyncio.to_thread(a.insert_key_rows, [("kms/odd", 0, "x", third.encrypt(b"[]").decode())])
    before = await asyncio.to_thread(lambda: {r: a.key_rows(r) for r in a.key_rings()})
    d = _master(meta_backend.open(), f"{Fernet.generate_key().decode()},{new}")
    with pytest.raises(MasterKeyError, match="row kms/odd-0 .* opens with none"):
        await asyncio.to_thread(d.keys.rotate_master)
    assert await asyncio.to_thread(lambda: {r: a.key_rows(r) for r in a.key_rings()}) == before


async def test_key_files_imported_into_a_fresh_table(meta_backend):
    """A store from before keys moved into the database: its keys/ files are copied into
    the table (same numbers, same ids) at the first use, so what they sealed still opens."""
    from cryptography.fernet import Fernet

    from lampi.store.keyring import KeyRing, key_id

    meta = meta_backend.open()
    key_dir = meta.path.parent / "keys"
    old = {"fernet": KeyRing(key_dir, "fernet"), "credential": KeyRing(key_dir, "credential"),
           "sse": KeyRing(key_dir, "sse"), "kms/lab": KeyRing(key_dir / "kms", "lab")}
    for ring in old.values():
        ring.primary(create=True)
    old["sse"].add_key()
    kid, sealed = old["credential"].seal(b"hello")
    _master(meta, Fernet.generate_key().decode())
    await asyncio.to_thread(meta.keys.check)
    assert sorted(meta.keys.imported) == ["credential-0", "fernet-0", "kms/lab-0", "sse-0", "sse-1"]
    for name, ring in old.items():
        assert meta.keys.ring(name).key_ids() == ring.key_ids()
    assert meta.keys.ring("credential").open(kid, sealed) == b"hello"
    assert key_id((key_dir / "fernet-0").read_bytes()) == meta.keys.ring("fernet").key_ids()[0]


# -- whole tables (lampi migrate) -------------------------------------------------------------


async def _all_rows(store) -> dict[str, list[tuple]]:
    from lampi.store.meta.base import MIGRATED_TABLES

    out = {}
    for table, _pk in MIGRATED_TABLES:
        cols = await store.table_columns(table)
        rows, after = [], None
        idx = [cols.index(k) for k in _pk]
        while True:  # small pages: the paging by primary key is what is tested
            page = await store.export_rows(table, after, 2)
            if not page:
                break
            rows += page
            after = tuple(page[-1][i] for i in idx)
        out[table] = sorted(tuple(sorted(zip(cols, r, strict=True))) for r in rows)
    return out


async def test_rows_export_import_round_trip(meta, tmp_path):
    """Every table exported row by row (paged by primary key) and imported into a fresh
    SQLite store gives the same rows; importing them again changes nothing."""
    from lampi.core.models import Credential, MultipartUpload, UploadPart
    from lampi.store.meta.base import MIGRATED_TABLES, NOT_MIGRATED
    from lampi.store.meta.sqlite import SQLiteMetaStore

    p = await setup_project(meta)
    u = await meta.create_user(User(uid(), "alice", p.domain_id, "hash$x", default_project_id=p.id))
    await meta.grant_role(u.id, p.id, "member")
    await meta.create_role(uid(), "auditor")
    await meta.create_credential(Credential("AK" + uid(), "s3cret", u.id, p.id, time.time()))
    await meta.set_project_quota(p.id, {"bytes": 1000})
    await meta.update_account_meta(p.id, {"temp-url-key": "k"})
    await meta.create_container(p.id, "c", {"read": ".r:*"}, time.time())
    for i in range(5):
        await meta.put_object(rec("c", f"o{i}", size=i + 1))
    await meta.put_object(rec("c", "v", version_id="1700000000.00001"))
    up = MultipartUpload(uid(), "c", "big", p.id, time.time())
    await meta.create_upload(up)
    await meta.put_part(UploadPart(up.upload_id, 1, uid(), 5, "0" * 32, time.time()))
    await meta.revoke_token("audit-" + uid(), time.time() + 3600)
    known = {t for t, _ in MIGRATED_TABLES} | set(NOT_MIGRATED)
    assert set(await meta.table_names()) <= known
    rows = await _all_rows(meta)
    assert len(rows["objects"]) == 6 and rows["object_versions"] and rows["mpu_parts"] and rows["revoked"]

    other = SQLiteMetaStore(tmp_path / "other" / "meta.db")
    try:
        assert set(await other.table_names()) <= known
        for _round in range(2):
            for table, _pk in MIGRATED_TABLES:
                cols = await meta.table_columns(table)
                await other.import_rows(table, cols, await meta.export_rows(table, None, 10_000))
            assert await _all_rows(other) == rows
        # the secrets are sealed: with the keys (lampi.store.keyring) they open in the copy:
        # key files copied beside it, or (keys in the table, copied with the rows) the
        # same master key
        from lampi.store.keyring import MasterKeySource, StoredKeys, install_store_keys, store_keys

        if isinstance(meta.keys, StoredKeys):
            src = meta.keys.source
            other.use_keys(MasterKeySource(value=src.value, file=src.file or src.default_file))
        else:
            install_store_keys(tmp_path / "other" / "keys", store_keys(meta.path.parent / "keys"))
        access = (await meta.list_credentials())[0].access
        assert (await other.get_credential(access)).secret == "s3cret"
        assert (await other.get_account(p.id)).object_count == (await meta.get_account(p.id)).object_count
        with pytest.raises(ValueError):
            await other.import_rows("objects", ["nope"], [("x",)])
        with pytest.raises(ValueError):
            await other.export_rows("leases", None, 10)
    finally:
        await other.close()
