"""Where the issue-4 features meet: large objects × ACLs (segment access), quotas on
manifests/copies/archives, versioning × manifests, symlinks × POST/COPY/listings,
cross-account copies through ACLs, anonymous listings. Real swift CLI,
python-swiftclient, curl and raw HTTP."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile

import pytest
import requests
import swiftclient

from tests.functional.conftest import LampiServer
from tests.functional.swift_helpers import Raw, new_account


def _env(server: LampiServer, acct) -> dict[str, str]:  # noqa: ANN001
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update({
        "OS_AUTH_URL": server.auth_url, "OS_IDENTITY_API_VERSION": "3", "OS_AUTH_TYPE": "password",
        "OS_USERNAME": acct.user, "OS_PASSWORD": acct.password, "OS_PROJECT_NAME": acct.project,
        "OS_USER_DOMAIN_NAME": "Default", "OS_PROJECT_DOMAIN_NAME": "Default",
    })
    return env


def swift_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["swift", *args], env=env, capture_output=True, text=True, timeout=120, check=True)


def curl(url: str, *extra: str) -> tuple[int, bytes]:
    """Anonymous curl: (status, body)."""
    out = subprocess.run(["curl", "-s", "-o", "-", "-w", "\n%{http_code}", *extra, url],
                         capture_output=True, check=True, timeout=60).stdout
    body, _, code = out.rpartition(b"\n")
    return int(code), body


@pytest.fixture(scope="module")
def owner(server: LampiServer):  # noqa: ANN201
    return new_account(server)


@pytest.fixture(scope="module")
def other(server: LampiServer):  # noqa: ANN201
    return new_account(server)


# -- 1. segment access ----------------------------------------------------------------


def test_large_objects_need_read_on_segment_container(server: LampiServer, owner, other, unique: str,  # noqa: ANN001
                                                      tmp_path) -> None:
    """A public manifest over a private _segments container does not leak the segments
    (an SLO 409, as Swift answers a segment its sub-request may not read; a DLO, listed
    at read time, 401 anonymous and 403 for another project); once the _segments
    container is public too (Allas's a-publish), anonymous curl downloads the whole SLO
    and DLO."""
    env = _env(server, owner)
    data = os.urandom(2 * 1024 * 1024 + 12345)
    f = tmp_path / "big.bin"
    f.write_bytes(data)
    md5 = hashlib.md5(data).hexdigest()
    swift_cli(env, "upload", unique, str(f), "--object-name", "slo.bin", "--use-slo", "-S", "1M")
    swift_cli(env, "upload", unique, str(f), "--object-name", "dlo.bin", "--use-dlo", "-S", "1M")
    segs = unique + "_segments"
    assert owner.conn.head_object(unique, "slo.bin").get("x-static-large-object") == "True"
    assert "x-object-manifest" in owner.conn.head_object(unique, "dlo.bin")
    swift_cli(env, "post", "-r", ".r:*,.rlistings", unique)
    slo_url, dlo_url = f"{owner.url}/{unique}/slo.bin", f"{owner.url}/{unique}/dlo.bin"
    # the manifests are public, the segments are not: no data leaks
    for url, want in ((slo_url, 409), (dlo_url, 401)):
        code, body = curl(url)
        assert code == want and data[:1000] not in body, (url, code)
        code, body = curl(url, "-H", "Range: bytes=1048570-1048590")
        assert code == want and data[1048570:1048591] not in body
    # the manifest itself stays readable (it is public)
    r = requests.get(slo_url + "?multipart-manifest=get", timeout=10)
    assert r.status_code == 200 and len(r.json()) == 3
    # another project granted the manifest container only: 403 for the segments
    owner.conn.post_container(unique, {"X-Container-Read": f".r:*,.rlistings,{other.project_id}:*"})
    for url, want in ((slo_url, 409), (dlo_url, 403)):
        r = requests.get(url, headers={"X-Auth-Token": other.token}, timeout=10)
        assert r.status_code == want and data[:1000] not in r.content
    # segments readable but not listable: the SLO works, the DLO (listed at read time) does not
    swift_cli(env, "post", "-r", ".r:*", segs)
    code, body = curl(slo_url)
    assert code == 200 and hashlib.md5(body).hexdigest() == md5
    assert curl(dlo_url)[0] == 401
    # both public, as a-publish does: anonymous curl gets the whole large objects
    swift_cli(env, "post", "-r", ".r:*,.rlistings", segs)
    for url in (slo_url, dlo_url):
        code, body = curl(url)
        assert code == 200 and hashlib.md5(body).hexdigest() == md5, url
        code, body = curl(url, "-H", "Range: bytes=1048570-1048590")
        assert code == 206 and body == data[1048570:1048591]
    # and at Allas's public link
    code, body = curl(f"{server.url}/{unique}/slo.bin")
    assert code == 200 and hashlib.md5(body).hexdigest() == md5
    # the grantee of another project now reads them too
    r = requests.get(dlo_url, headers={"X-Auth-Token": other.token}, timeout=30)
    assert r.status_code == 200 and hashlib.md5(r.content).hexdigest() == md5


def test_copy_of_large_object_checks_segment_access(server: LampiServer, owner, other, unique: str) -> None:  # noqa: ANN001
    """A grantee copying a shared SLO into its own account needs read on the segments."""
    segs = unique + "_s"
    owner.conn.put_container(segs)
    owner.conn.put_object(segs, "1", b"a" * 10)
    owner.conn.put_object(segs, "2", b"b" * 5)
    owner.conn.put_container(unique, headers={"X-Container-Read": f"{other.project_id}:*"})
    manifest = [{"path": f"/{segs}/1"}, {"path": f"/{segs}/2"}]
    owner.conn.put_object(unique, "slo", json.dumps(manifest), query_string="multipart-manifest=put")
    dest = unique + "_dst"
    other.conn.put_container(dest)
    raw = Raw(other.token, other.url)
    copy_hdrs = {"X-Copy-From": f"/{unique}/slo", "X-Copy-From-Account": f"AUTH_{owner.project_id}"}
    r = raw("PUT", f"/{dest}/copy", headers=dict(copy_hdrs, **{"Content-Length": "0"}))
    assert r.status_code == 409, r.text  # Swift's copy answers its source GET's 409
    assert other.conn.get_container(dest)[1] == []
    owner.conn.post_container(segs, {"X-Container-Read": f"{other.project_id}:*"})
    r = raw("PUT", f"/{dest}/copy", headers=dict(copy_hdrs, **{"Content-Length": "0"}))
    assert r.status_code == 201, r.text
    assert other.conn.get_object(dest, "copy")[1] == b"a" * 10 + b"b" * 5


# -- 7. anonymous listing at the Swift path -------------------------------------------------


def test_anonymous_listing_of_public_container(owner, unique: str) -> None:  # noqa: ANN001
    owner.conn.put_container(unique, headers={"X-Container-Read": ".r:*,.rlistings"})
    owner.conn.put_object(unique, "a/b.txt", b"x")
    owner.conn.put_object(unique, "c.txt", b"yy")
    base = f"{owner.url}/{unique}"
    r = requests.get(base, timeout=10)
    assert r.status_code == 200 and r.text.split() == ["a/b.txt", "c.txt"]
    r = requests.get(base + "?format=json&delimiter=/", timeout=10)
    assert r.status_code == 200
    assert [i.get("name", i.get("subdir")) for i in r.json()] == ["a/", "c.txt"]
    r = requests.get(base, headers={"Accept": "application/xml"}, timeout=10)
    assert r.status_code == 200 and "<name>c.txt</name>" in r.text
    assert requests.head(base, timeout=10).status_code == 204
    # the account stays private, and .r:* alone does not list
    assert requests.get(owner.url, timeout=10).status_code == 401
    owner.conn.post_container(unique, {"X-Container-Read": ".r:*"})
    assert requests.get(base, timeout=10).status_code == 401
    assert requests.get(base + "/c.txt", timeout=10).content == b"yy"


# -- 2. quotas on manifests, copies and archives --------------------------------------------


def test_quota_counts_slo_manifest_put_not_segments(owner, unique: str) -> None:  # noqa: ANN001
    """As Swift's container_quotas (before slo in the pipeline): the manifest PUT's own
    Content-Length and one more object count, not the segments' total."""
    segs = unique + "_s"
    owner.conn.put_container(segs)
    owner.conn.put_object(segs, "1", b"a" * 4000)
    owner.conn.put_object(segs, "2", b"b" * 4000)
    manifest = json.dumps([{"path": f"/{segs}/1"}, {"path": f"/{segs}/2"}])
    # count quota: the manifest is one more object
    owner.conn.put_container(unique, headers={"X-Container-Meta-Quota-Count": "1"})
    owner.conn.put_object(unique, "first", b"x")
    with pytest.raises(swiftclient.ClientException) as ei:
        owner.conn.put_object(unique, "slo", manifest, query_string="multipart-manifest=put")
    assert ei.value.http_status == 413 and "Upload exceeds quota." in ei.value.http_response_content.decode()
    # bytes quota: bigger than the manifest body (and the first object), smaller than the segments
    owner.conn.post_container(unique, {"X-Container-Meta-Quota-Count": "", "X-Container-Meta-Quota-Bytes": "2000"})
    owner.conn.put_object(unique, "slo", manifest, query_string="multipart-manifest=put")
    assert owner.conn.head_object(unique, "slo")["content-length"] == "8000"
    # a manifest body over what is left is refused before it is read
    owner.conn.post_container(unique, {"X-Container-Meta-Quota-Bytes": "10"})
    with pytest.raises(swiftclient.ClientException) as ei:
        owner.conn.put_object(unique, "slo2", manifest, query_string="multipart-manifest=put")
    assert ei.value.http_status == 413
    names = [o["name"] for o in owner.conn.get_container(unique)[1]]
    assert names == ["first", "slo"]


def test_copy_honours_quotas(owner, unique: str, token_and_url) -> None:  # noqa: ANN001
    """X-Copy-From and COPY count the bytes written: a large object's data, its manifest
    with ?multipart-manifest=get; a refused copy stores nothing."""
    src = unique + "_src"
    owner.conn.put_container(src)
    owner.conn.put_object(src, "plain", b"p" * 3000)
    owner.conn.put_object(src, "seg/1", b"a" * 3000)
    owner.conn.put_object(src, "seg/2", b"b" * 3000)
    owner.conn.put_object(src, "dlo", b"", headers={"X-Object-Manifest": f"{src}/seg/"})
    owner.conn.put_container(unique, headers={"X-Container-Meta-Quota-Bytes": "4000"})
    raw = Raw(owner.token, owner.url)
    r = raw("PUT", f"/{unique}/a", headers={"X-Copy-From": f"/{src}/plain", "Content-Length": "0"})
    assert r.status_code == 201
    r = raw("COPY", f"/{src}/plain", headers={"Destination": f"/{unique}/b"})
    assert r.status_code == 413 and "Upload exceeds quota." in r.text
    # a DLO's data is 6000 bytes although its manifest object is empty
    r = raw("PUT", f"/{unique}/d", headers={"X-Copy-From": f"/{src}/dlo", "Content-Length": "0"})
    assert r.status_code == 413, r.text
    owner.conn.post_container(unique, {"X-Container-Meta-Quota-Bytes": "8999"})  # 3000 used + 6000
    r = raw("COPY", f"/{src}/dlo", headers={"Destination": f"/{unique}/d"})
    assert r.status_code == 413
    names = sorted(o["name"] for o in owner.conn.get_container(unique)[1])
    assert names == ["a"]
    # the manifest alone (0 bytes) fits
    r = raw("COPY", f"/{src}/dlo?multipart-manifest=get", headers={"Destination": f"/{unique}/dm"})
    assert r.status_code == 201
    assert owner.conn.head_object(unique, "dm")["x-object-manifest"] == f"{src}/seg/"


def test_extract_archive_honours_container_quota(owner, unique: str) -> None:  # noqa: ANN001
    owner.conn.put_container(unique, headers={"X-Container-Meta-Quota-Count": "2"})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for i in range(4):
            info = tarfile.TarInfo(f"f{i}")
            info.size = 3
            tar.addfile(info, io.BytesIO(b"abc"))
    r = requests.put(f"{owner.url}/{unique}?extract-archive=tar", data=buf.getvalue(),
                     headers={"X-Auth-Token": owner.token, "Accept": "application/json"}, timeout=30)
    body = r.json()
    assert r.status_code == 200 and body["Number Files Created"] == 2
    assert [e[1] for e in body["Errors"]] == ["413 Request Entity Too Large"] * 2
    assert len(owner.conn.get_container(unique)[1]) == 2


# -- 3. versioning × manifests ---------------------------------------------------------------


def test_versioned_slo_archives_and_restores_the_manifest(owner, unique: str) -> None:  # noqa: ANN001
    arch = unique + "_v"
    segs = unique + "_s"
    owner.conn.put_container(arch)
    owner.conn.put_container(segs)
    owner.conn.put_container(unique, headers={"X-Versions-Location": arch})
    for n, b in (("p/1", b"a" * 2000), ("p/2", b"b" * 2000), ("p/3", b"c" * 10)):
        owner.conn.put_object(segs, n, b)
    m1 = json.dumps([{"path": f"/{segs}/p/1"}, {"path": f"/{segs}/p/2"}])
    owner.conn.put_object(unique, "obj", m1, query_string="multipart-manifest=put")
    etag1 = owner.conn.head_object(unique, "obj")["etag"]
    owner.conn.put_object(unique, "obj", b"plain new version")
    # the archive holds the manifest (its JSON body, a few hundred bytes), not 4000 bytes of data
    listing = owner.conn.get_container(arch)[1]
    assert len(listing) == 1 and listing[0]["bytes"] == 4000 and "slo_etag" in listing[0]
    assert owner.conn.head_container(arch)["x-container-bytes-used"] != "4000"
    archived = listing[0]["name"]
    h = owner.conn.head_object(arch, archived)
    assert h["x-static-large-object"] == "True" and h["etag"] == etag1
    got = owner.conn.get_object(arch, archived, query_string="multipart-manifest=get")[1]
    assert [s["name"] for s in json.loads(got)] == [f"/{segs}/p/1", f"/{segs}/p/2"]
    # DELETE restores the SLO as an SLO
    owner.conn.delete_object(unique, "obj")
    h = owner.conn.head_object(unique, "obj")
    assert h["x-static-large-object"] == "True" and h["etag"] == etag1
    assert owner.conn.get_object(unique, "obj")[1] == b"a" * 2000 + b"b" * 2000
    assert owner.conn.get_container(arch)[1] == []
    # a DLO is archived as its manifest too
    owner.conn.put_object(unique, "dlo", b"", headers={"X-Object-Manifest": f"{segs}/p/"})
    owner.conn.put_object(unique, "dlo", b"new")
    archived = owner.conn.get_container(arch)[1][0]["name"]
    assert owner.conn.head_object(arch, archived)["x-object-manifest"] == f"{segs}/p/"
    owner.conn.delete_object(unique, "dlo")
    assert owner.conn.get_object(unique, "dlo")[1] == b"a" * 2000 + b"b" * 2000 + b"c" * 10


# -- 4. symlinks -----------------------------------------------------------------------------


def test_symlink_post_copy_and_listing(owner, unique: str) -> None:  # noqa: ANN001
    c = owner.conn
    c.put_container(unique)
    c.put_object(unique, "target", b"target data", headers={"X-Object-Meta-Color": "blue"},
                 content_type="text/plain")
    c.put_object(unique, "link", b"", headers={"X-Symlink-Target": f"{unique}/target"})
    tetag = c.head_object(unique, "target")["etag"]
    c.put_object(unique, "static", b"", headers={"X-Symlink-Target": f"{unique}/target",
                                                 "X-Symlink-Target-Etag": tetag})
    raw = Raw(owner.token, owner.url)
    # POST to a link: applied to the link, 307 to the target
    r = raw("POST", f"/{unique}/link", headers={"X-Object-Meta-Fruit": "apple"}, allow_redirects=False)
    assert r.status_code == 307, r.text
    assert r.headers["Location"] == f"/v1/AUTH_{owner.project_id}/{unique}/target"
    assert "The requested POST was applied to a symlink" in r.text
    assert c.head_object(unique, "link", query_string="symlink=get")["x-object-meta-fruit"] == "apple"
    assert "x-object-meta-fruit" not in c.head_object(unique, "target")
    r = raw("POST", f"/{unique}/static", allow_redirects=False)
    assert r.status_code == 307 and r.headers["X-Symlink-Target-Etag"] == tetag
    r = raw("POST", f"/{unique}/target", headers={"X-Symlink-Target": f"{unique}/x"})
    assert r.status_code == 400 and "A PUT request is required to set a symlink target" in r.text
    # COPY of a link copies the target's data (and metadata); ?symlink=get copies the link
    r = raw("COPY", f"/{unique}/link", headers={"Destination": f"/{unique}/copy"})
    assert r.status_code == 201
    h, body = c.get_object(unique, "copy", query_string="symlink=get")
    assert body == b"target data" and "x-symlink-target" not in h and h["x-object-meta-color"] == "blue"
    r = raw("PUT", f"/{unique}/copy2", headers={"X-Copy-From": f"/{unique}/link", "Content-Length": "0"})
    assert r.status_code == 201 and c.get_object(unique, "copy2")[1] == b"target data"
    r = raw("COPY", f"/{unique}/link?symlink=get", headers={"Destination": f"/{unique}/link2"})
    assert r.status_code == 201
    h = c.head_object(unique, "link2", query_string="symlink=get")
    assert h["x-symlink-target"] == f"{unique}/target" and h["content-length"] == "0"
    assert c.get_object(unique, "link2")[1] == b"target data"
    # listings: symlink_path (and a static link's etag and bytes)
    items = {o["name"]: o for o in c.get_container(unique)[1]}
    path = f"/v1/AUTH_{owner.project_id}/{unique}/target"
    assert items["link"]["symlink_path"] == path and items["link2"]["symlink_path"] == path
    assert items["static"]["symlink_path"] == path
    assert items["static"]["symlink_etag"] == tetag and items["static"]["symlink_bytes"] == 11
    assert "symlink_path" not in items["target"] and "symlink_path" not in items["copy"]
    assert items["link"]["bytes"] == 0


def test_symlink_to_public_target_followed_anonymously(owner, unique: str) -> None:  # noqa: ANN001
    """A link is followed with the caller's authority: anonymous readers of a public
    container follow a link into another public container, not into a private one."""
    pub, priv = unique, unique + "_priv"
    owner.conn.put_container(pub, headers={"X-Container-Read": ".r:*"})
    owner.conn.put_container(priv)
    owner.conn.put_container(pub + "_t", headers={"X-Container-Read": ".r:*"})
    owner.conn.put_object(priv, "secret", b"secret")
    owner.conn.put_object(pub + "_t", "o", b"public")
    owner.conn.put_object(pub, "to-secret", b"", headers={"X-Symlink-Target": f"{priv}/secret"})
    owner.conn.put_object(pub, "to-public", b"", headers={"X-Symlink-Target": f"{pub}_t/o"})
    r = requests.get(f"{owner.url}/{pub}/to-public", timeout=10)
    assert r.status_code == 200 and r.content == b"public"
    r = requests.get(f"{owner.url}/{pub}/to-secret", timeout=10)
    assert r.status_code == 401 and b"secret" not in r.content


# -- 6. cross-account copy through ACLs --------------------------------------------------------


def test_cross_account_copy_with_acls(owner, other, unique: str) -> None:  # noqa: ANN001
    """X-Copy-From-Account / Destination-Account need read on the source container and
    write on the destination container, granted by ACLs (not only to owners)."""
    shared, inbox, mine = unique, unique + "_in", unique + "_mine"
    owner.conn.put_container(shared)
    owner.conn.put_object(shared, "doc", b"shared document")
    owner.conn.put_container(inbox)
    other.conn.put_container(mine)
    other.conn.put_object(mine, "note", b"from other")
    oraw = Raw(other.token, other.url)
    src_hdrs = {"X-Copy-From": f"/{shared}/doc", "X-Copy-From-Account": f"AUTH_{owner.project_id}",
                "Content-Length": "0"}
    # no grant: 403, nothing written
    assert oraw("PUT", f"/{mine}/doc", headers=src_hdrs).status_code == 403
    acct_path = f"{owner.url}/{shared}/doc"
    r = requests.request("COPY", acct_path, headers={"X-Auth-Token": other.token,
                                                      "Destination": f"/{mine}/doc2",
                                                      "Destination-Account": f"AUTH_{other.project_id}"},
                         timeout=10)
    assert r.status_code == 403
    dst_hdrs = {"Destination": f"/{inbox}/note", "Destination-Account": f"AUTH_{owner.project_id}"}
    assert oraw("COPY", f"/{mine}/note", headers=dst_hdrs).status_code == 403
    assert [o["name"] for o in other.conn.get_container(mine)[1]] == ["note"]
    assert owner.conn.get_container(inbox)[1] == []
    # read ACL on the source: X-Copy-From-Account and COPY (from the owner's URL) work
    owner.conn.post_container(shared, {"X-Container-Read": f"{other.project_id}:*"})
    r = oraw("PUT", f"/{mine}/doc", headers=src_hdrs)
    assert r.status_code == 201 and r.headers["X-Copied-From-Account"] == f"AUTH_{owner.project_id}"
    assert other.conn.get_object(mine, "doc")[1] == b"shared document"
    r = requests.request("COPY", acct_path, headers={"X-Auth-Token": other.token,
                                                      "Destination": f"/{mine}/doc2",
                                                      "Destination-Account": f"AUTH_{other.project_id}"},
                         timeout=10)
    assert r.status_code == 201 and other.conn.get_object(mine, "doc2")[1] == b"shared document"
    # read does not give write: the grantee cannot copy into the shared container
    r = oraw("COPY", f"/{mine}/note", headers={"Destination": f"/{shared}/x",
                                               "Destination-Account": f"AUTH_{owner.project_id}"})
    assert r.status_code == 403
    # write ACL on the destination: Destination-Account works
    owner.conn.post_container(inbox, {"X-Container-Write": f"{other.project_id}:*"})
    assert oraw("COPY", f"/{mine}/note", headers=dst_hdrs).status_code == 201
    assert owner.conn.get_object(inbox, "note")[1] == b"from other"
    r = requests.put(f"{owner.url}/{inbox}/n2", headers={
        "X-Auth-Token": other.token, "X-Copy-From": f"/{mine}/note",
        "X-Copy-From-Account": f"AUTH_{other.project_id}", "Content-Length": "0"}, timeout=10)
    assert r.status_code == 201 and owner.conn.get_object(inbox, "n2")[1] == b"from other"
