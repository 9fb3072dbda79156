"""Account and container listings and headers exactly as OpenStack Swift 2.38 sends them
(issue 11; Swift's source is the reference: listing_formats, account/container servers,
object_versioning's ``?versions`` listing). Real clients: python-swiftclient, the
``swift`` CLI, requests for what they can't send."""

from __future__ import annotations

import email.utils
import json
import math
import subprocess
import time
from xml.dom import minidom

import pytest

from tests.functional.conftest import LampiServer
from tests.functional.swift_helpers import Raw, new_account


@pytest.fixture(scope="module")
def acct(server: LampiServer):  # noqa: ANN201
    return new_account(server)


@pytest.fixture
def raw(acct) -> Raw:  # noqa: ANN001
    return Raw(acct.token, acct.url)


def test_container_xml_has_no_text_between_elements(acct, raw: Raw, unique: str) -> None:  # noqa: ANN001
    """Swift's container_to_xml: elements only (the suite's client walks childNodes and
    reads each one's tagName), subdirs as <subdir name=..><name>..</name></subdir>."""
    c = acct.conn
    c.put_container(unique)
    c.put_object(unique, "a&b<c>", b"x", content_type="text/plain")
    c.put_object(unique, "dir/o", b"y")
    r = raw("GET", f"/{unique}?format=xml&delimiter=/")
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/xml; charset=utf-8"
    assert r.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<container name="')
    root = minidom.parseString(r.content).documentElement
    kinds = [(n.nodeType, getattr(n, "tagName", None)) for n in root.childNodes]
    assert kinds == [(root.ELEMENT_NODE, "object"), (root.ELEMENT_NODE, "subdir")], kinds
    obj, sub = root.childNodes
    assert [e.tagName for e in obj.childNodes] == ["name", "hash", "bytes", "content_type", "last_modified"]
    assert obj.getElementsByTagName("name")[0].firstChild.nodeValue == "a&b<c>"
    assert sub.getAttribute("name") == "dir/" and sub.getElementsByTagName("name")[0].firstChild.nodeValue == "dir/"


def test_account_listing_names_the_storage_policy(server: LampiServer, unique: str) -> None:
    """Account listings carry each container's ``storage_policy`` (JSON and XML) as
    Swift's account server does; the XML has a newline after the root's start tag and
    after each entry (account_to_xml); subdirs are empty <subdir name=..> elements."""
    a = new_account(server)
    alpha, beta = unique + "alpha", unique + "beta-1"  # container names are service-wide (bucket_namespace global)
    a.conn.put_container(alpha)
    a.conn.put_container(beta)
    raw = Raw(a.token, a.url)
    rows = raw("GET", "?format=json").json()
    assert [(r["name"], r["storage_policy"]) for r in rows] == [(alpha, "default-placement"),
                                                               (beta, "default-placement")]
    assert a.conn.get_account()[1][0]["storage_policy"] == "default-placement"  # swiftclient
    r = raw("GET", "?format=xml&delimiter=-")
    body = r.content.decode()
    assert body.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<account name="AUTH_%s">\n<container>'
                           % a.project_id)
    assert "<storage_policy>default-placement</storage_policy></container>\n" in body
    assert f'<subdir name="{unique}beta-" />\n</account>' in body
    doc = minidom.parseString(r.content)
    assert [c.getElementsByTagName("storage_policy")[0].firstChild.nodeValue
            for c in doc.getElementsByTagName("container")] == ["default-placement"]


def test_head_and_empty_get_content_type_and_length(acct, raw: Raw, unique: str) -> None:  # noqa: ANN001
    """HEAD answers the listing format's media type; 204s carry Content-Length: 0."""
    acct.conn.put_container(unique)
    for method in ("GET", "HEAD"):
        r = raw(method, f"/{unique}")
        assert r.status_code == 204
        assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert r.headers["Content-Length"] == "0"
        assert r.headers["Vary"] == "Accept"
    r = raw("HEAD", f"/{unique}?format=json")
    assert r.status_code == 204 and r.headers["Content-Type"] == "application/json; charset=utf-8"
    assert r.headers["Content-Length"] == "0" and "Vary" not in r.headers
    r = raw("HEAD", "", headers={"Accept": "application/xml"})
    assert r.status_code == 204 and r.headers["Content-Type"] == "application/xml; charset=utf-8"
    assert r.headers["Content-Length"] == "0"
    r = raw("DELETE", f"/{unique}")
    assert r.status_code == 204 and r.headers["Content-Length"] == "0"


def _http_time(value: str) -> float:
    return email.utils.parsedate_to_datetime(value).timestamp()


def test_container_last_modified(acct, raw: Raw, unique: str) -> None:  # noqa: ANN001
    """Last-Modified of a container is its put timestamp rounded up to the second: a
    PUT or POST of the container moves it, object writes do not (as Swift's test)."""
    c = acct.conn
    c.put_container(unique)
    h = c.head_container(unique)
    t0 = h["last-modified"]
    assert _http_time(t0) == math.ceil(float(h["x-put-timestamp"]))
    assert raw("GET", f"/{unique}").headers["Last-Modified"] == t0
    time.sleep(1.1)
    c.post_container(unique, {"X-Container-Meta-Japan": "mitaka"})
    h = c.head_container(unique)
    t1 = h["last-modified"]
    assert _http_time(t1) > _http_time(t0)
    assert _http_time(t1) == math.ceil(float(h["x-put-timestamp"]))
    time.sleep(1.1)
    c.put_container(unique)
    t2 = c.head_container(unique)["last-modified"]
    assert _http_time(t2) > _http_time(t1)
    time.sleep(1.1)
    c.put_object(unique, "o", b"aaaaa")
    c.post_object(unique, "o", {"X-Object-Meta-Us": "austin"})
    assert c.head_container(unique)["last-modified"] == t2
    # the account listing's last_modified is the same put timestamp
    (entry,) = [e for e in c.get_account(prefix=unique)[1] if e["name"] == unique]
    assert entry["last_modified"].startswith(time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(_http_time(t2) - 1)))


def test_multi_character_delimiter(acct, raw: Raw, unique: str) -> None:  # noqa: ANN001
    c = acct.conn
    c.put_container(unique)
    for name in ("test", "test-bar", "test-foo", "test-bar-baz", "xtest--x"):
        c.put_object(unique, name, b"")
    _, rows = c.get_container(unique, delimiter="-")
    assert [r.get("name") or r.get("subdir") for r in rows] == ["test", "test-", "xtest-"]
    _, rows = c.get_container(unique, delimiter="-ba")
    assert [r.get("name") or r.get("subdir") for r in rows] == ["test", "test-ba", "test-foo", "xtest--x"]
    _, rows = c.get_container(unique, delimiter="--", prefix="x")
    assert [r.get("subdir") for r in rows] == ["xtest--"]
    for name in ("ab-cd", "ab--ef"):
        c.put_container(unique + name)
    _, rows = c.get_account(prefix=unique + "ab", delimiter="--")
    assert [r.get("name") or r.get("subdir") for r in rows] == [unique + "ab--", unique + "ab-cd"]


def test_nul_in_markers_is_an_ordinary_character(acct, raw: Raw, unique: str) -> None:  # noqa: ANN001
    """Swift lists by plain comparison: a NUL in marker/end_marker/prefix is no error."""
    c = acct.conn
    c.put_container(unique)
    names = ["B2x", "a", "b1x", "c"]
    for n in names:
        c.put_object(unique, n, b"")
    rows = raw("GET", f"/{unique}?format=json&reverse=on&marker=b1x%00&end_marker=B2w").json()
    assert [r["name"] for r in rows] == ["b1x", "a", "B2x"]
    _, rows = c.get_container(unique, marker="a\x00")  # swiftclient quotes it
    assert [r["name"] for r in rows] == ["b1x", "c"]
    r = raw("GET", f"/{unique}?prefix=%00")
    assert r.status_code == 204


def test_parameter_not_utf8_is_400(acct, raw: Raw, unique: str) -> None:  # noqa: ANN001
    acct.conn.put_container(unique)
    r = raw("GET", f"/{unique}?marker=%FF")
    assert r.status_code == 400 and r.text == '"marker" parameter not valid UTF-8'
    assert r.headers["Content-Type"] == "text/plain; charset=UTF-8"
    r = raw("GET", "?prefix=%C3")
    assert r.status_code == 400 and r.text == '"prefix" parameter not valid UTF-8'
    assert raw("GET", f"/{unique}?marker=%EF%BF%BD").status_code == 204  # U+FFFD itself is fine


def test_path_lists_one_level(acct, raw: Raw, unique: str) -> None:  # noqa: ANN001
    """``path=``: the objects one level below the path (directory markers included,
    the path's own marker and anything deeper not)."""
    c = acct.conn
    c.put_container(unique)
    for n in ("/file1", "/dir1/", "dir1/", "dir1/file2", "dir1/sub/", "dir1/sub/file3", "dir2/", "file1"):
        c.put_object(unique, n, b"")
    def ls(path: str) -> list[str]:  # noqa: E306
        return [r["name"] for r in raw("GET", f"/{unique}", params={"path": path, "format": "json"}).json()]
    assert ls("") == ["dir1/", "dir2/", "file1"]
    assert ls("dir1") == ["dir1/file2", "dir1/sub/"]
    assert ls("dir1/") == ["dir1/file2", "dir1/sub/"]
    assert ls("dir1/sub") == ["dir1/sub/file3"]
    assert [r["name"] for r in c.get_container(unique, path="dir1")[1]] == ["dir1/file2", "dir1/sub/"]
    assert ls("/") == ["/dir1/", "/file1"]
    assert raw("GET", f"/{unique}?path=dir1&prefix=zzz&delimiter=x").text.split() == ["dir1/file2", "dir1/sub/"]


def test_versions_listing_is_always_json(acct, raw: Raw, unique: str) -> None:  # noqa: ANN001
    """object_versioning answers ``?versions`` in JSON whatever the Accept (406 when JSON
    is not acceptable), with version_id and is_latest; an unversioned container lists its
    objects as null versions."""
    c = acct.conn
    c.put_container(unique, headers={"X-Versions-Enabled": "true"})
    c.put_object(unique, "o", b"v1")
    c.put_object(unique, "o", b"v2")
    r = raw("GET", f"/{unique}?versions")
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json; charset=utf-8"
    rows = r.json()
    assert [(x["name"], x["is_latest"]) for x in rows] == [("o", True), ("o", False)]
    assert raw("GET", f"/{unique}?versions", headers={"Accept": "*/*"}).json() == rows
    assert raw("GET", f"/{unique}?versions&format=xml").status_code == 406
    assert raw("GET", f"/{unique}?versions", headers={"Accept": "text/plain"}).status_code == 406
    plain = unique + "-plain"
    c.put_container(plain)
    c.put_object(plain, "a", b"1", content_type="text/x-a")
    rows = raw("GET", f"/{plain}?versions&format=json").json()
    assert [(x["name"], x["version_id"], x["is_latest"], x["content_type"]) for x in rows] == [
        ("a", "null", True, "text/x-a")]
    assert raw("GET", f"/{plain}?versions").json() == rows


def test_versions_marker_null(acct, raw: Raw, unique: str) -> None:  # noqa: ANN001
    """``version_marker=null`` lists from the marker object's newest version; as in
    Swift (launchpad bug 2147042, which its suite expects), the marker object's current
    version is not reported as latest there."""
    c = acct.conn
    c.put_container(unique, headers={"X-Versions-Enabled": "true"})
    rd: dict = {}
    c.put_object(unique, "b", b"b1", response_dict=rd)
    vid_b = rd["headers"]["x-object-version-id"]
    c.put_object(unique, "c", b"c1")
    c.delete_object(unique, "c")
    rows = raw("GET", f"/{unique}?versions&marker=b&version_marker=null").json()
    assert [(x["name"], x["is_latest"]) for x in rows] == [("b", False), ("c", True), ("c", False)]
    assert rows[0]["version_id"] == vid_b
    assert [x["name"] for x in raw("GET", f"/{unique}?versions&marker=b").json()] == ["c", "c"]
    r = raw("GET", f"/{unique}?versions&version_marker=null")
    assert r.status_code == 400 and r.text == "version_marker param requires marker"


def test_swift_cli_lists_as_before(acct, unique: str, server: LampiServer) -> None:  # noqa: ANN001
    """The ``swift`` CLI (JSON listings) over delimiter and prefix."""
    acct.conn.put_container(unique)
    for n in ("x/1", "x/2", "y"):
        acct.conn.put_object(unique, n, b"")
    out = subprocess.run(
        ["swift", "--os-auth-token", acct.token, "--os-storage-url", acct.url, "list", unique, "-d", "/"],
        capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.split() == ["x/", "y"]


def test_text_listing(acct, unique: str) -> None:  # noqa: ANN001
    c = acct.conn
    c.put_container(unique)
    c.put_object(unique, "ä", b"1")
    url, token = c.get_auth()
    r = Raw(token, url)("GET", f"/{unique}")
    assert r.status_code == 200 and r.text == "ä\n" and r.headers["Vary"] == "Accept"
    assert json.loads(Raw(token, url)("GET", f"/{unique}?format=json").text)[0]["name"] == "ä"
