"""Swift container API: PUT/HEAD/GET/POST/DELETE, listings, names, global
uniqueness (Allas), and exact stats under concurrent writers."""

from __future__ import annotations

import hashlib
import re
import threading
import xml.etree.ElementTree as ET

import pytest
import swiftclient
from swiftclient.exceptions import ClientException

from tests.functional.conftest import LampiServer
from tests.functional.swift_helpers import Raw, new_account

ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$")


def _status(fn, *a, **kw) -> int:  # noqa: ANN001
    try:
        fn(*a, **kw)
    except ClientException as exc:
        return exc.http_status
    return 0


def test_put_201_then_202(swift_conn: swiftclient.Connection, token_and_url, unique: str) -> None:  # noqa: ANN001
    raw = Raw(*token_and_url)
    r = raw("PUT", f"/{unique}")
    assert r.status_code == 201
    assert r.headers["Content-Type"] == "text/html; charset=UTF-8" and r.text == ""
    r = raw("PUT", f"/{unique}", headers={"X-Container-Meta-A": "1"})
    assert r.status_code == 202
    assert swift_conn.head_container(unique)["x-container-meta-a"] == "1"
    swift_conn.delete_container(unique)


def test_names_underscore_uppercase_and_limits(swift_conn: swiftclient.Connection, token_and_url, unique: str) -> None:  # noqa: ANN001
    for name in (unique + "_Under_Score", unique.upper(), unique + "-ä€"):
        swift_conn.put_container(name)
        assert name in [c["name"] for c in swift_conn.get_account(prefix=name)[1]]
        swift_conn.delete_container(name)
    raw = Raw(*token_and_url)
    r = raw("PUT", "/" + "c" * 257)
    assert r.status_code == 400
    assert r.text == "Container name length of 257 longer than 256"
    assert r.headers["Content-Type"] == "text/html; charset=UTF-8"  # as Swift's proxy (swob's default)
    # multi-byte: 129 × 'ä' = 258 bytes
    r = raw("PUT", "/" + "%C3%A4" * 129)
    assert r.status_code == 400 and r.text == "Container name length of 258 longer than 256"
    assert raw("PUT", "/" + "c" * 256).status_code == 201
    assert raw("DELETE", "/" + "c" * 256).status_code == 204


def test_name_taken_by_another_project(server: LampiServer, swift_conn: swiftclient.Connection, unique: str) -> None:
    swift_conn.put_container(unique)
    swift_conn.put_object(unique, "keep", b"mine")
    other = new_account(server)
    with pytest.raises(ClientException) as ei:
        other.conn.put_container(unique)
    assert ei.value.http_status == 409
    # the other project cannot read it, write into it or delete it: through its own
    # storage URL the name means the same (global) container, whose ACLs grant it
    # nothing, so 403 as Allas (RGW) answers, not 404
    assert _status(other.conn.head_container, unique) == 403
    assert _status(other.conn.put_object, unique, "x", b"y") == 403
    assert _status(other.conn.delete_container, unique) == 403
    assert [c["name"] for c in other.conn.get_account()[1]] == []
    assert swift_conn.get_object(unique, "keep")[1] == b"mine"
    swift_conn.delete_object(unique, "keep")
    swift_conn.delete_container(unique)
    # once freed, the name can be taken
    other.conn.put_container(unique)
    other.conn.delete_container(unique)


def test_head_counts_bytes_metadata(swift_conn: swiftclient.Connection, token_and_url, unique: str) -> None:  # noqa: ANN001
    swift_conn.put_container(unique, headers={"X-Container-Meta-Owner": "lab", "X-Container-Meta-Empty": ""})
    swift_conn.put_object(unique, "a", b"abc")
    swift_conn.put_object(unique, "b", b"defgh")
    h = swift_conn.head_container(unique)
    assert h["x-container-object-count"] == "2"
    assert h["x-container-bytes-used"] == "8"
    assert h["x-container-meta-owner"] == "lab"
    assert "x-container-meta-empty" not in h
    assert "x-timestamp" in h and "x-trans-id" in h and "x-openstack-request-id" in h
    raw = Raw(*token_and_url)
    r = raw("HEAD", f"/{unique}")
    assert r.status_code == 204
    r = raw("HEAD", f"/{unique}-missing")
    assert r.status_code == 404
    for o in ("a", "b"):
        swift_conn.delete_object(unique, o)
    swift_conn.delete_container(unique)


def test_post_metadata(swift_conn: swiftclient.Connection, token_and_url, unique: str) -> None:  # noqa: ANN001
    swift_conn.put_container(unique)
    swift_conn.post_container(unique, {"X-Container-Meta-Color": "red", "X-Container-Meta-Shape": "round"})
    h = swift_conn.head_container(unique)
    assert h["x-container-meta-color"] == "red" and h["x-container-meta-shape"] == "round"
    swift_conn.post_container(unique, {"X-Remove-Container-Meta-Color": "1"})
    h = swift_conn.head_container(unique)
    assert "x-container-meta-color" not in h and h["x-container-meta-shape"] == "round"
    raw = Raw(*token_and_url)
    r = raw("POST", f"/{unique}")
    assert r.status_code == 204
    r = raw("POST", f"/{unique}", headers={"X-Container-Meta-V": "v" * 257})
    assert r.status_code == 400 and r.text == "Metadata value longer than 256: x-container-meta-V"
    # the total over existing and new items is limited too
    big = {f"X-Container-Meta-K{i:02d}": "v" * 200 for i in range(19)}  # 19 × 203 = 3857 bytes
    assert raw("POST", f"/{unique}", headers=big).status_code == 204
    r = raw("POST", f"/{unique}", headers={"X-Container-Meta-More": "v" * 250})
    assert r.status_code == 400 and r.text == "Total metadata too large; max 4096"
    assert "x-container-meta-more" not in swift_conn.head_container(unique)
    assert raw("POST", f"/{unique}-missing", headers={"X-Container-Meta-A": "1"}).status_code == 404
    swift_conn.delete_container(unique)


def test_listing_fields_and_formats(swift_conn: swiftclient.Connection, token_and_url, unique: str) -> None:  # noqa: ANN001
    swift_conn.put_container(unique)
    swift_conn.put_object(unique, "photo.jpg", b"jpegdata", content_type="image/jpeg")
    swift_conn.put_object(unique, "notes/a.txt", b"aaa")
    swift_conn.put_object(unique, "notes/b.txt", b"bbbb")
    swift_conn.put_object(unique, "notes/sub/c.txt", b"c")
    swift_conn.put_object(unique, "z", b"")
    _, listing = swift_conn.get_container(unique)
    assert [o["name"] for o in listing] == ["notes/a.txt", "notes/b.txt", "notes/sub/c.txt", "photo.jpg", "z"]
    photo = next(o for o in listing if o["name"] == "photo.jpg")
    assert set(photo) == {"name", "hash", "bytes", "content_type", "last_modified"}
    assert photo["hash"] == hashlib.md5(b"jpegdata").hexdigest()
    assert photo["bytes"] == 8 and photo["content_type"] == "image/jpeg"
    assert ISO_RE.match(photo["last_modified"]), photo["last_modified"]
    assert next(o for o in listing if o["name"] == "notes/a.txt")["content_type"] == "text/plain"
    assert next(o for o in listing if o["name"] == "z")["hash"] == hashlib.md5(b"").hexdigest()

    _, listing = swift_conn.get_container(unique, delimiter="/")
    assert listing[0] == {"subdir": "notes/"}
    assert [o.get("name") for o in listing[1:]] == ["photo.jpg", "z"]
    _, listing = swift_conn.get_container(unique, prefix="notes/", delimiter="/")
    assert [o.get("name", o.get("subdir")) for o in listing] == ["notes/a.txt", "notes/b.txt", "notes/sub/"]
    _, listing = swift_conn.get_container(unique, marker="notes/b.txt", end_marker="z")
    assert [o["name"] for o in listing] == ["notes/sub/c.txt", "photo.jpg"]
    raw = Raw(*token_and_url)
    r = raw("GET", f"/{unique}", params={"reverse": "on", "delimiter": "/"})
    assert r.text.splitlines() == ["z", "photo.jpg", "notes/"]
    r = raw("GET", f"/{unique}", params={"reverse": "true", "prefix": "notes/", "limit": "2"})
    assert r.text.splitlines() == ["notes/sub/c.txt", "notes/b.txt"]
    r = raw("GET", f"/{unique}", params={"limit": "10001"})
    assert r.status_code == 412 and r.text == "Maximum limit is 10000"

    r = raw("GET", f"/{unique}", headers={"Accept": "application/xml"}, params={"delimiter": "/"})
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/xml; charset=utf-8"
    root = ET.fromstring(r.content)
    assert root.tag == "container" and root.get("name") == unique
    assert root.find("subdir").get("name") == "notes/" and root.find("subdir").findtext("name") == "notes/"
    obj = root.find("object")
    assert obj.findtext("name") == "photo.jpg" and obj.findtext("bytes") == "8"
    assert obj.findtext("hash") == hashlib.md5(b"jpegdata").hexdigest()
    assert obj.findtext("content_type") == "image/jpeg" and ISO_RE.match(obj.findtext("last_modified"))

    r = raw("GET", f"/{unique}")
    assert r.status_code == 200 and r.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert r.headers["X-Container-Object-Count"] == "5" and r.headers["X-Container-Bytes-Used"] == "16"
    for o in ("photo.jpg", "notes/a.txt", "notes/b.txt", "notes/sub/c.txt", "z"):
        swift_conn.delete_object(unique, o)
    swift_conn.delete_container(unique)


def test_empty_listing(token_and_url, unique: str) -> None:  # noqa: ANN001
    raw = Raw(*token_and_url)
    raw("PUT", f"/{unique}")
    r = raw("GET", f"/{unique}")
    assert r.status_code == 204 and r.text == ""
    assert r.headers["X-Container-Object-Count"] == "0"
    r = raw("GET", f"/{unique}", params={"format": "json"})
    assert r.status_code == 200 and r.json() == []
    r = raw("GET", f"/{unique}", params={"format": "xml"})
    assert r.status_code == 200 and ET.fromstring(r.content).tag == "container"
    assert raw("GET", f"/{unique}-missing").status_code == 404
    raw("DELETE", f"/{unique}")


def test_paging_full_listing(swift_conn: swiftclient.Connection, unique: str) -> None:
    swift_conn.put_container(unique)
    names = [f"obj-{i:03d}" for i in range(25)]
    for n in names:
        swift_conn.put_object(unique, n, b"x")
    _, listing = swift_conn.get_container(unique, limit=10, full_listing=True)
    assert [o["name"] for o in listing] == names
    _, page = swift_conn.get_container(unique, limit=10, marker="obj-019")
    assert [o["name"] for o in page] == names[20:]
    for n in names:
        swift_conn.delete_object(unique, n)
    swift_conn.delete_container(unique)


def test_delete_204_409_404(swift_conn: swiftclient.Connection, token_and_url, unique: str) -> None:  # noqa: ANN001
    raw = Raw(*token_and_url)
    swift_conn.put_container(unique)
    swift_conn.put_object(unique, "o", b"data")
    r = raw("DELETE", f"/{unique}")
    assert r.status_code == 409
    assert r.text == "<html><h1>Conflict</h1><p>There was a conflict when trying to complete your request.</p></html>"
    assert swift_conn.get_object(unique, "o")[1] == b"data"
    swift_conn.delete_object(unique, "o")
    r = raw("DELETE", f"/{unique}")
    assert r.status_code == 204
    r = raw("DELETE", f"/{unique}")
    assert r.status_code == 404
    assert r.text == "<html><h1>Not Found</h1><p>The resource could not be found.</p></html>"


def test_bad_paths(token_and_url) -> None:  # noqa: ANN001
    raw = Raw(*token_and_url)
    r = raw("PUT", "/bad%FFname")
    assert r.status_code == 412 and r.text == "Invalid UTF8 or contains NULL"
    r = raw("PUT", "/bad%00name")
    assert r.status_code == 412 and r.text == "Invalid UTF8 or contains NULL"


def test_stats_exact_under_concurrent_writers(fresh_server: LampiServer) -> None:
    """8 threads PUT, overwrite and DELETE in one container, on 2 worker processes;
    HEAD counters then equal what a full listing adds up to."""
    fresh_server.workers = 2
    fresh_server.start()
    acct = new_account(fresh_server)
    acct.conn.put_container("busy")
    acct.conn.put_container("other")
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            c = swiftclient.Connection(preauthurl=acct.url, preauthtoken=acct.token, retries=0)
            for i in range(15):
                name = f"t{t}-o{i % 6}"
                c.put_object("busy", name, b"x" * ((t * 7 + i * 13) % 50))
                victim = f"t{t}-o{(i + 1) % 6}"  # only this thread writes t<t>-* names
                if i % 3 == 2 and _exists(c, victim):
                    c.delete_object("busy", victim)
                c.put_object("busy", f"shared-{i % 4}", b"y" * (t + i))  # everyone overwrites these
                if i % 5 == 4:
                    c.put_object("other", f"t{t}-{i}", b"z" * i)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    def _exists(c: swiftclient.Connection, name: str) -> bool:
        try:
            c.head_object("busy", name)
            return True
        except ClientException:
            return False

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not errors, errors
    total_objects = total_bytes = 0
    for cname in ("busy", "other"):
        h, listing = acct.conn.get_container(cname, full_listing=True)
        assert int(h["x-container-object-count"]) == len(listing)
        assert int(h["x-container-bytes-used"]) == sum(o["bytes"] for o in listing)
        for o in listing:  # every listed object is readable with the listed size and hash
            oh = acct.conn.head_object(cname, o["name"])
            assert int(oh["content-length"]) == o["bytes"] and oh["etag"] == o["hash"]
        total_objects += len(listing)
        total_bytes += sum(o["bytes"] for o in listing)
    assert total_objects > 0
    h = acct.conn.head_account()
    assert int(h["x-account-object-count"]) == total_objects
    assert int(h["x-account-bytes-used"]) == total_bytes
    assert h["x-account-container-count"] == "2"
    _, containers = acct.conn.get_account()
    assert {c["name"]: (c["count"], c["bytes"]) for c in containers} == {
        c: (int(acct.conn.head_container(c)["x-container-object-count"]),
            int(acct.conn.head_container(c)["x-container-bytes-used"])) for c in ("busy", "other")
    }
