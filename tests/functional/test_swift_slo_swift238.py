"""Large objects as OpenStack Swift 2.38.3's slo / dlo / symlink middlewares behave, for
what its functional suite found missing or wrong (issue 11): inline ``data`` segments,
``?part-number=N``, ``HEAD ?multipart-manifest=get``, a manifest copy validated again at
its destination, a conditional manifest PUT, multi-range GETs of a DLO, DLO segments that
are symlinks, static links to an SLO, a symlink to a versioned SLO, and deletes of
segments with the caller's own authority (``?multipart-manifest=delete``, ``?bulk-delete``).

Real clients: python-swiftclient, the ``swift`` CLI, requests for raw HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess

import pytest
import requests

from tests.functional.conftest import LampiServer
from tests.functional.swift_helpers import Account, new_account


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


@pytest.fixture(scope="module")
def accounts(server: LampiServer) -> tuple[Account, Account]:
    """A: an account owner; C: a user of another project, with no rights in A until an
    ACL grants them."""
    return new_account(server), new_account(server)


@pytest.fixture
def a(accounts: tuple[Account, Account], unique: str) -> Account:
    acct = accounts[0]
    acct.conn.put_container(unique)
    acct.conn.put_container(unique + "-segs")
    return acct


def raw(acct: Account, method: str, path: str, token: str | None = "", **kw: object) -> requests.Response:
    headers = dict(kw.pop("headers", {}) or {})  # type: ignore[call-overload]
    tok = acct.token if token == "" else token
    if tok:
        headers["X-Auth-Token"] = tok
    return requests.request(method, f"{acct.url}/{path}", headers=headers, timeout=60, **kw)  # type: ignore[arg-type]


def put_segments(acct: Account, cont: str, parts: dict[str, bytes]) -> dict[str, str]:
    return {name: acct.conn.put_object(cont, name, data) for name, data in parts.items()}


def put_manifest(acct: Account, cont: str, name: str, manifest: list[dict[str, object]], **kw: object) -> dict:
    rd: dict = {}
    acct.conn.put_object(cont, name, json.dumps(manifest), query_string="multipart-manifest=put",
                         response_dict=rd, **kw)  # type: ignore[arg-type]
    return rd


# -- inline data segments ------------------------------------------------------------------


def test_inline_data_segments(a: Account, unique: str) -> None:
    """Swift's ``data`` segments: stored in the manifest, counted in the size and the ETag
    (MD5 of their bytes), read back whole and in ranges, nested, shown by
    ``?multipart-manifest=get`` and ``&format=raw`` and copied with the manifest."""
    segs = f"{unique}-segs"
    etags = put_segments(a, segs, {"a": b"a" * 1000, "b": b"b" * 2000})
    pre, mid, post = b"PRE-" * 8, b"MID" * 5, b"POST" * 16
    manifest = [{"data": b64(pre)}, {"path": f"/{segs}/a"}, {"data": b64(mid)},
                {"path": f"/{segs}/b", "range": "100-199"}, {"data": b64(post)}]
    whole = pre + b"a" * 1000 + mid + b"b" * 100 + post
    expect_etag = md5((md5(pre) + etags["a"] + md5(mid) + f"{etags['b']}:100-199;" + md5(post)).encode())
    rd = put_manifest(a, unique, "mixed", manifest)
    assert rd["status"] == 201
    assert rd["headers"]["etag"] == f'"{expect_etag}"'

    headers, body = a.conn.get_object(unique, "mixed")
    assert body == whole
    assert headers["etag"] == f'"{expect_etag}"'
    assert int(headers["content-length"]) == len(whole)
    assert a.conn.head_object(unique, "mixed")["content-length"] == str(len(whole))
    # ranges that start, end and lie inside inline segments
    for first, last in ((0, 9), (20, 1040), (1031, 1035), (len(whole) - 70, len(whole) - 1)):
        h, part = a.conn.get_object(unique, "mixed", headers={"Range": f"bytes={first}-{last}"})
        assert part == whole[first:last + 1], (first, last)
        assert h["content-range"] == f"bytes {first}-{last}/{len(whole)}"
    # listing: the large object's size
    listed = {o["name"]: o for o in a.conn.get_container(unique)[1]}
    assert listed["mixed"]["bytes"] == len(whole)

    # ?multipart-manifest=get shows the data segments as stored; format=raw as PUT
    stored = json.loads(a.conn.get_object(unique, "mixed", query_string="multipart-manifest=get")[1])
    assert stored[0] == {"data": b64(pre)} and stored[2] == {"data": b64(mid)}
    assert stored[1]["name"] == f"/{segs}/a" and stored[3]["range"] == "100-199"
    raw_body = a.conn.get_object(unique, "mixed", query_string="multipart-manifest=get&format=raw")[1]
    as_put = json.loads(raw_body)
    assert as_put[0] == {"data": b64(pre)}
    assert as_put[1] == {"path": f"/{segs}/a", "etag": etags["a"], "size_bytes": 1000}
    # ...which can be PUT back as it is
    put_manifest(a, unique, "again", as_put)
    assert a.conn.get_object(unique, "again")[1] == whole

    # nested: a manifest over the mixed one
    put_manifest(a, unique, "outer", [{"path": f"/{unique}/mixed"}, {"data": b64(b"!")}])
    assert a.conn.get_object(unique, "outer")[1] == whole + b"!"
    h, part = a.conn.get_object(unique, "outer", headers={"Range": "bytes=28-40"})
    assert part == whole[28:41]

    # copying the manifest keeps its data segments; copying the object writes the data
    r = raw(a, "COPY", f"{unique}/mixed?multipart-manifest=get", headers={"Destination": f"{unique}/copied-manifest"})
    assert r.status_code == 201, r.text
    copied = a.conn.get_object(unique, "copied-manifest", query_string="multipart-manifest=get")[1]
    assert json.loads(copied)[0] == {"data": b64(pre)}
    assert a.conn.get_object(unique, "copied-manifest")[1] == whole
    a.conn.copy_object(unique, "mixed", f"/{unique}/copied-data")
    h, body = a.conn.get_object(unique, "copied-data")
    assert body == whole and "x-static-large-object" not in h

    # multipart-manifest=delete deletes the object-backed segments only
    r = raw(a, "DELETE", f"{unique}/again?multipart-manifest=delete", headers={"Accept": "application/json"})
    out = r.json()
    assert out["Response Status"] == "200 OK" and out["Errors"] == [] and out["Number Deleted"] == 3


def test_inline_data_padding_is_normalized(a: Account, unique: str) -> None:
    """Swift re-encodes inline data: padding missing where base64 tolerates it is added."""
    segs = f"{unique}-segs"
    put_segments(a, segs, {"a": b"x"})
    put_manifest(a, unique, "m", [{"path": f"/{segs}/a"}, {"data": "YWJj"}, {"data": "YQ=="}])
    stored = json.loads(a.conn.get_object(unique, "m", query_string="multipart-manifest=get")[1])
    assert stored[1:] == [{"data": "YWJj"}, {"data": "YQ=="}]
    assert a.conn.get_object(unique, "m")[1] == b"xabca"


@pytest.mark.parametrize("case", ["not_base64", "bad_padding", "not_string", "empty", "extra_key", "only_data",
                                  "neither", "too_large"])
def test_bad_inline_data_is_refused(a: Account, unique: str, case: str) -> None:
    """Bad inline segments get Swift's 400 (413 past the manifest size) and store nothing."""
    segs = f"{unique}-segs"
    put_segments(a, segs, {"a": b"x"})
    good = {"path": f"/{segs}/a"}
    status, expect = 400, ""
    if case == "not_base64":
        manifest, expect = [good, {"data": "not*base64!"}], "Index 1: data must be valid base64\n"
    elif case == "bad_padding":
        manifest, expect = [good, {"data": "YWJjZ"}], "Index 1: data must be valid base64\n"
    elif case == "not_string":
        manifest, expect = [good, {"data": 12}], "Index 1: data must be valid base64\n"
    elif case == "empty":
        manifest, expect = [good, {"data": ""}], "Index 1: too small; each segment must be at least 1 byte.\n"
    elif case == "extra_key":
        manifest, expect = [{"data": "YQ==", "path": f"/{segs}/a"}], 'Index 0: extraneous keys "path"\n'
    elif case == "only_data":
        manifest = [{"data": "YQ=="}, {"data": "Yg=="}]
        expect = "Inline data segments require at least one object-backed segment.\n"
    elif case == "neither":
        manifest, expect = [good, {"etag": "x"}], "Index 1: expected keys to include one of 'data' or 'path'\n"
    else:  # inline data is bounded by the manifest's size limit (8 MiB)
        manifest, status = [good, {"data": b64(b"z" * (7 * 1024 * 1024))}], 413
        expect = "Manifest File > 8388608 bytes"
    r = raw(a, "PUT", f"{unique}/m?multipart-manifest=put", data=json.dumps(manifest))
    assert r.status_code == status, r.text
    assert expect in r.text
    assert raw(a, "HEAD", f"{unique}/m").status_code == 404


def test_inline_data_segments_do_not_count_as_segments(a: Account, unique: str) -> None:
    segs = f"{unique}-segs"
    put_segments(a, segs, {"a": b"x"})
    manifest = [{"path": f"/{segs}/a"}] * 1000 + [{"data": "YQ=="}] * 5
    assert put_manifest(a, unique, "m", manifest)["status"] == 201
    assert int(a.conn.head_object(unique, "m")["content-length"]) == 1005


# -- part-number ---------------------------------------------------------------------------


def test_part_number_get_head(a: Account, unique: str) -> None:
    segs = f"{unique}-segs"
    parts = {"a": b"a" * 300, "b": b"b" * 200}
    etags = put_segments(a, segs, parts)
    put_manifest(a, unique, "m", [{"path": f"/{segs}/a"}, {"data": b64(b"inline")}, {"path": f"/{segs}/b"}])
    total = 300 + 6 + 200
    slo_etag = f'"{md5((etags["a"] + md5(b"inline") + etags["b"]).encode())}"'
    manifest_etag = a.conn.head_object(unique, "m", query_string="multipart-manifest=get")["etag"]
    spans = [(0, 300, b"a" * 300), (300, 306, b"inline"), (306, total, b"b" * 200)]
    for n, (start, end, data) in enumerate(spans, 1):
        rd: dict = {}
        h, body = a.conn.get_object(unique, "m", query_string=f"part-number={n}", response_dict=rd)
        assert rd["status"] == 206 and body == data
        assert h["content-range"] == f"bytes {start}-{end - 1}/{total}"
        assert h["content-length"] == str(end - start)
        assert h["x-parts-count"] == "3" and h["etag"] == slo_etag
        assert h["x-manifest-etag"] == manifest_etag
        r = raw(a, "HEAD", f"{unique}/m?part-number={n}")
        assert r.status_code == 206
        assert r.headers["Content-Range"] == f"bytes {start}-{end - 1}/{total}"
        assert r.headers["Content-Length"] == str(end - start) and r.headers["X-Parts-Count"] == "3"
    # past the last part: 416 with the object's headers
    r = raw(a, "GET", f"{unique}/m?part-number=4")
    assert r.status_code == 416 and r.content == b"The requested part number is not satisfiable"
    assert r.headers["Content-Range"] == f"bytes */{total}" and r.headers["X-Parts-Count"] == "3"
    assert r.headers["ETag"] == slo_etag and r.headers["Content-Length"] == str(len(r.content))
    r = raw(a, "HEAD", f"{unique}/m?part-number=10001")
    assert r.status_code == 416 and r.headers["Content-Length"] == "0"
    # not a number > 0, or beside a Range: 400
    for bad in ("0", "-1", "x", "", "1.5"):
        r = raw(a, "GET", f"{unique}/m?part-number={bad}")
        assert (r.status_code, r.content) == (400, b"Part number must be an integer greater than 0"), bad
        assert raw(a, "HEAD", f"{unique}/m?part-number={bad}").status_code == 400
    r = raw(a, "GET", f"{unique}/m?part-number=1", headers={"Range": "bytes=0-1"})
    assert (r.status_code, r.content) == (400, b"Range requests are not supported with part number queries")
    # a plain object ignores it, as Swift does
    a.conn.put_object(unique, "plain", b"plain")
    r = raw(a, "GET", f"{unique}/plain?part-number=7")
    assert r.status_code == 200 and r.content == b"plain"
    # a copy with ?part-number copies that part's data
    r = raw(a, "COPY", f"{unique}/m?part-number=2", headers={"Destination": f"{unique}/part2"})
    assert r.status_code == 201, r.text
    h, body = a.conn.get_object(unique, "part2")
    assert body == b"inline" and "x-static-large-object" not in h
    # multipart-manifest=delete ignores it
    r = raw(a, "DELETE", f"{unique}/m?multipart-manifest=delete&part-number=2", headers={"Accept": "application/json"})
    assert r.json()["Number Deleted"] == 3


def test_head_manifest_get(a: Account, unique: str) -> None:
    """``HEAD ?multipart-manifest=get``: the manifest's headers (was a 500)."""
    segs = f"{unique}-segs"
    put_segments(a, segs, {"a": b"a" * 10})
    put_manifest(a, unique, "m", [{"path": f"/{segs}/a"}], content_type="text/x-mine")
    body = a.conn.get_object(unique, "m", query_string="multipart-manifest=get")[1]
    r = raw(a, "HEAD", f"{unique}/m?multipart-manifest=get")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    assert r.headers["Content-Length"] == str(len(body)) and r.headers["ETag"] == md5(body)
    assert r.headers["X-Static-Large-Object"] == "True"
    r = raw(a, "HEAD", f"{unique}/m?multipart-manifest=get&format=raw")
    assert r.status_code == 200 and r.headers["Content-Type"] == "text/x-mine"
    raw_body = raw(a, "GET", f"{unique}/m?multipart-manifest=get&format=raw").content
    assert r.headers["Content-Length"] == str(len(raw_body)) and r.headers["ETag"] == md5(raw_body)
    # conditionals on the manifest compare its own ETag
    r = raw(a, "GET", f"{unique}/m?multipart-manifest=get", headers={"If-None-Match": md5(body)})
    assert r.status_code == 304


# -- manifest PUT and copy -----------------------------------------------------------------


def test_conditional_manifest_put(a: Account, unique: str) -> None:
    segs = f"{unique}-segs"
    put_segments(a, segs, {"a": b"a"})
    manifest = json.dumps([{"path": f"/{segs}/a"}])
    r = raw(a, "PUT", f"{unique}/m?multipart-manifest=put", data=manifest, headers={"If-None-Match": '"x"'})
    assert r.status_code == 400
    r = raw(a, "PUT", f"{unique}/m?multipart-manifest=put", data=manifest, headers={"If-None-Match": "*"})
    assert r.status_code == 201
    r = raw(a, "PUT", f"{unique}/m?multipart-manifest=put", data=manifest, headers={"If-None-Match": "*"})
    assert r.status_code == 412


def test_manifest_copy_is_validated_at_the_destination(accounts: tuple[Account, Account], a: Account,
                                                       unique: str) -> None:
    """COPY ``?multipart-manifest=get`` PUTs the manifest again at the destination, as
    Swift's copy does: into another account (a write ACL there), the segments named in
    the manifest are those of that account, checked with the caller's authority."""
    _, c = accounts
    segs = f"{unique}-segs"
    put_segments(a, segs, {"a": b"a" * 10, "b": b"b" * 10})
    put_manifest(a, unique, "m", [{"path": f"/{segs}/a"}, {"data": b64(b"-")}, {"path": f"/{segs}/b"}])
    dest = unique + "-dest"
    c.conn.put_container(dest, headers={"X-Container-Write": f"{a.project_id}:*"})
    r = raw(a, "COPY", f"{unique}/m?multipart-manifest=get",
            headers={"Destination": f"{dest}/m", "Destination-Account": f"AUTH_{c.project_id}"})
    assert r.status_code == 400, r.text
    assert r.text.count("403 Forbidden") == 2  # A may not read C's segments
    assert c.conn.get_container(dest)[1] == []
    # the same account: copied, and it reads the same
    r = raw(a, "COPY", f"{unique}/m?multipart-manifest=get", headers={"Destination": f"{unique}/m2"})
    assert r.status_code == 201
    assert a.conn.get_object(unique, "m2")[1] == b"a" * 10 + b"-" + b"b" * 10
    # a segment changed since: the copy is refused, as a new PUT of the manifest would be
    a.conn.put_object(segs, "b", b"changed")
    r = raw(a, "PUT", f"{unique}/m3?multipart-manifest=get", headers={"X-Copy-From": f"{unique}/m"})
    assert r.status_code == 400 and f"/{segs}/b, Etag Mismatch" in r.text


# -- DLO -----------------------------------------------------------------------------------


def test_dlo_multiple_ranges_answer_the_whole_object(a: Account, unique: str) -> None:
    segs = f"{unique}-segs"
    put_segments(a, segs, {f"p/{i}": bytes([97 + i]) * 10 for i in range(3)})
    a.conn.put_object(unique, "dlo", b"", headers={"X-Object-Manifest": f"{segs}/p/"})
    whole = b"a" * 10 + b"b" * 10 + b"c" * 10
    r = raw(a, "GET", f"{unique}/dlo", headers={"Range": "bytes=0-4,10-14"})
    assert r.status_code == 200 and r.content == whole
    r = raw(a, "GET", f"{unique}/dlo", headers={"Range": "bytes=5-14"})
    assert r.status_code == 206 and r.content == whole[5:15]


def test_dlo_symlink_segments_are_followed(accounts: tuple[Account, Account], a: Account, unique: str) -> None:
    """A DLO segment that is a symlink reads as its target (was: 0 bytes); a dangling one
    is a 409; one into another account is refused."""
    _, c = accounts
    segs = f"{unique}-segs"
    put_segments(a, segs, {"p/1": b"one-", "p/3": b"-three"})
    a.conn.put_object(unique, "target", b"TWO")
    a.conn.put_object(segs, "p/2", b"", headers={"X-Symlink-Target": f"{unique}/target"})
    a.conn.put_object(unique, "dlo", b"", headers={"X-Object-Manifest": f"{segs}/p/"})
    h, body = a.conn.get_object(unique, "dlo")
    assert body == b"one-TWO-three" and h["content-length"] == "13"
    assert a.conn.head_object(unique, "dlo")["content-length"] == "13"
    h, body = a.conn.get_object(unique, "dlo", headers={"Range": "bytes=3-7"})
    assert body == b"-TWO-"
    a.conn.copy_object(unique, "dlo", f"/{unique}/flat")
    assert a.conn.get_object(unique, "flat")[1] == b"one-TWO-three"
    # a static link whose target changed, a dangling link: 409, never the link's 0 bytes
    a.conn.put_object(segs, "p/2", b"", headers={"X-Symlink-Target": f"{unique}/target",
                                                 "X-Symlink-Target-Etag": md5(b"TWO")})
    assert a.conn.get_object(unique, "dlo")[1] == b"one-TWO-three"
    a.conn.put_object(unique, "target", b"2")
    assert raw(a, "GET", f"{unique}/dlo").status_code == 409
    a.conn.delete_object(unique, "target")
    assert raw(a, "GET", f"{unique}/dlo").status_code == 409
    # a link into another account (readable by A) is not followed as a segment
    other = unique + "-c"
    c.conn.put_container(other, headers={"X-Container-Read": f"{a.project_id}:*"})
    c.conn.put_object(other, "x", b"C's bytes")
    a.conn.put_object(segs, "p/2", b"", headers={"X-Symlink-Target": f"{other}/x",
                                                 "X-Symlink-Target-Account": f"AUTH_{c.project_id}"})
    r = raw(a, "GET", f"{unique}/dlo")
    assert r.status_code == 403 and b"C's bytes" not in r.content


def test_dlo_and_slo_referer_on_the_segment_container(accounts: tuple[Account, Account], a: Account,
                                                      unique: str) -> None:
    """A referrer ACL on the manifest's container alone does not open the segments (a
    DLO's listing 403 for a user without rights, 401 anonymous; an SLO 409, as Swift's
    test_slo_referer_on_segment_container); on both containers it does."""
    _, c = accounts
    segs = f"{unique}-segs"
    put_segments(a, segs, {"p/1": b"11", "p/2": b"22"})
    a.conn.put_object(unique, "dlo", b"", headers={"X-Object-Manifest": f"{segs}/p/"})
    put_manifest(a, unique, "slo", [{"path": f"/{segs}/p/1"}, {"path": f"/{segs}/p/2"}])
    ref = {"Referer": "http://blah.example.com"}
    for token, denied in ((c.token, 403), (None, 401)):
        assert raw(a, "GET", f"{unique}/dlo", token=token, headers=ref).status_code == denied
        assert raw(a, "GET", f"{unique}/slo", token=token, headers=ref).status_code == denied
    acl = {"X-Container-Read": ".r:*.example.com,.rlistings"}
    a.conn.post_container(unique, acl)
    for token, denied in ((c.token, 403), (None, 401)):
        assert raw(a, "GET", f"{unique}/dlo", token=token, headers=ref).status_code == denied
        assert raw(a, "GET", f"{unique}/slo", token=token, headers=ref).status_code == 409
    a.conn.post_container(segs, acl)
    for token in (c.token, None):
        assert raw(a, "GET", f"{unique}/dlo", token=token, headers=ref).content == b"1122"
        assert raw(a, "GET", f"{unique}/slo", token=token, headers=ref).content == b"1122"


# -- symlinks to SLOs ----------------------------------------------------------------------


def test_static_link_to_slo_uses_the_manifest_etag(a: Account, unique: str) -> None:
    segs = f"{unique}-segs"
    put_segments(a, segs, {"a": b"a" * 5})
    put_manifest(a, unique, "m", [{"path": f"/{segs}/a"}])
    slo = a.conn.head_object(unique, "m")
    manifest_etag = a.conn.head_object(unique, "m", query_string="multipart-manifest=get")["etag"]
    for wrong in (slo["etag"], slo["etag"].strip('"')):  # the SLO's ETag is not the target's
        r = raw(a, "PUT", f"{unique}/link", data=b"", headers={"X-Symlink-Target": f"{unique}/m",
                                                               "X-Symlink-Target-Etag": wrong})
        assert r.status_code == 409
    a.conn.put_object(unique, "link", b"", headers={"X-Symlink-Target": f"{unique}/m",
                                                    "X-Symlink-Target-Etag": manifest_etag})
    assert a.conn.get_object(unique, "link")[1] == b"a" * 5
    listed = {o["name"]: o for o in a.conn.get_container(unique)[1]}["link"]
    assert listed["symlink_etag"] == manifest_etag and listed["symlink_bytes"] == 5
    assert listed["slo_etag"] == slo["etag"] and listed["bytes"] == 0
    h = a.conn.head_object(unique, "link", query_string="symlink=get")
    assert not any("slo" in k for k in h)  # the kept SLO ETag is no header


def test_symlink_to_versioned_slo_gives_its_version(a: Account, unique: str) -> None:
    segs = f"{unique}-segs"
    put_segments(a, segs, {"a": b"a" * 5})
    vers = unique + "-v"
    a.conn.put_container(vers, headers={"X-Versions-Enabled": "true"})
    rd = put_manifest(a, vers, "m", [{"path": f"/{segs}/a"}])
    vid = rd["headers"]["x-object-version-id"]
    slo = a.conn.head_object(vers, "m")
    assert slo["x-object-version-id"] == vid
    a.conn.put_object(vers, "link", b"", headers={"X-Symlink-Target": f"{vers}/m"})
    link = a.conn.head_object(vers, "link")
    for k in ("etag", "content-length", "x-manifest-etag", "x-object-version-id", "last-modified"):
        assert link[k] == slo[k], k

    # DELETE ?multipart-manifest=delete&version-id: that version and its segments
    rd = put_manifest(a, vers, "m", [{"path": f"/{segs}/a"}])
    r = raw(a, "DELETE", f"{vers}/m?multipart-manifest=delete&version-id={vid}", headers={"Accept": "application/json"})
    out = r.json()
    assert out["Response Status"] == "200 OK" and out["Number Deleted"] == 2, out
    assert a.conn.get_container(segs)[1] == []
    assert raw(a, "GET", f"{vers}/m?version-id={vid}").status_code == 404
    assert raw(a, "GET", f"{vers}/m").status_code == 409  # the current version's segment is gone


# -- deleting segments with the caller's authority -----------------------------------------


def test_multipart_delete_checks_authority_on_each_segment(accounts: tuple[Account, Account], a: Account,
                                                           unique: str) -> None:
    """SECURITY: C may write (and so delete) in A's drop box and read A's segments, but
    may not delete them: ``?multipart-manifest=delete`` by C deletes the manifest and
    reports each segment as 403 in "Errors", deleting none (was: all deleted)."""
    _, c = accounts
    segs = f"{unique}-segs"
    put_segments(a, segs, {"s1": b"1" * 10, "s2": b"2" * 10})
    a.conn.post_container(segs, {"X-Container-Read": f"{c.project_id}:*"})
    a.conn.post_container(unique, {"X-Container-Write": f"{c.project_id}:*", "X-Container-Read": f"{c.project_id}:*"})
    put_manifest(a, unique, "m", [{"path": f"/{segs}/s1"}, {"path": f"/{segs}/s2"}])
    r = raw(a, "DELETE", f"{unique}/m?multipart-manifest=delete", token=c.token,
            headers={"Accept": "application/json"})
    assert r.status_code == 200
    out = r.json()
    assert out["Response Status"] == "400 Bad Request"
    assert sorted(out["Errors"]) == [[f"/{segs}/s1", "403 Forbidden"], [f"/{segs}/s2", "403 Forbidden"]]
    assert out["Number Deleted"] == 1  # the manifest, which C may delete
    assert sorted(o["name"] for o in a.conn.get_container(segs)[1]) == ["s1", "s2"]
    # anonymous (a public write would be needed): 401 for each
    put_manifest(a, unique, "m", [{"path": f"/{segs}/s1"}])
    a.conn.post_container(unique, {"X-Container-Read": ".r:*"})
    r = raw(a, "DELETE", f"{unique}/m?multipart-manifest=delete", token=None)
    assert r.status_code == 401  # the DELETE itself needs authority
    # once C may write the segments container too, everything goes
    a.conn.post_container(segs, {"X-Container-Write": f"{c.project_id}:*"})
    r = raw(a, "DELETE", f"{unique}/m?multipart-manifest=delete", token=c.token,
            headers={"Accept": "application/json"})
    assert r.json()["Number Deleted"] == 2 and r.json()["Errors"] == []


def test_swift_cli_delete_of_a_manifest_keeps_segments_the_user_may_not_delete(
        accounts: tuple[Account, Account], a: Account, unique: str) -> None:
    """The ``swift`` CLI deletes an SLO with ``?multipart-manifest=delete``: the segment
    C may not delete stays."""
    _, c = accounts
    segs = f"{unique}-segs"
    put_segments(a, segs, {"s1": b"1" * 10})
    a.conn.post_container(segs, {"X-Container-Read": f"{c.project_id}:*"})
    a.conn.post_container(unique, {"X-Container-Write": f"{c.project_id}:*", "X-Container-Read": f"{c.project_id}:*"})
    put_manifest(a, unique, "m", [{"path": f"/{segs}/s1"}])
    out = subprocess.run(["swift", "--os-auth-token", c.token, "--os-storage-url", a.url, "delete", unique, "m"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr  # (the CLI does not show the body's "Errors")
    assert [o["name"] for o in a.conn.get_container(unique)[1]] == []  # the manifest, C may delete
    assert [o["name"] for o in a.conn.get_container(segs)[1]] == ["s1"]
    assert a.conn.get_object(segs, "s1")[1] == b"1" * 10


def test_bulk_delete_checks_authority_on_each_name(accounts: tuple[Account, Account], a: Account,
                                                   unique: str) -> None:
    """SECURITY: ``?bulk-delete`` sent to an object C may delete deleted any name of the
    account (was); each is now a sub-request with C's authority."""
    _, c = accounts
    a.conn.put_object(unique + "-segs", "private", b"A's")
    drop = unique + "-drop"
    a.conn.put_container(drop, headers={"X-Container-Write": f"{c.project_id}:*"})
    a.conn.put_object(drop, "mine", b"x")
    body = f"/{unique}-segs/private\n/{drop}/mine\n/{unique}-segs\n"
    r = raw(a, "DELETE", f"{drop}/anything?bulk-delete", token=c.token, data=body,
            headers={"Accept": "application/json", "Content-Type": "text/plain"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["Number Deleted"] == 1  # drop/mine
    assert sorted(out["Errors"]) == [[f"/{unique}-segs", "403 Forbidden"],
                                     [f"/{unique}-segs/private", "403 Forbidden"]]
    assert a.conn.get_object(unique + "-segs", "private")[1] == b"A's"
    # the owner's bulk delete still deletes
    r = raw(a, "POST", "?bulk-delete", data=f"/{unique}-segs/private\n",
            headers={"Accept": "application/json", "Content-Type": "text/plain"})
    assert r.json()["Number Deleted"] == 1
