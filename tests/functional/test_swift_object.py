"""Swift object API: streamed PUT (length, chunked, 100-continue), ETag checks,
content types, metadata, ranges, conditionals, POST, DELETE, COPY, limits and
bad input — answered as OpenStack Swift answers, with stored data left intact."""

from __future__ import annotations

import hashlib
import io
import math
import time
from collections.abc import Iterator
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

import pytest
import swiftclient
from swiftclient.exceptions import ClientException

from tests.functional.conftest import LampiServer, blobs_in_files
from tests.functional.swift_helpers import Raw, new_account, raw_http, status_of

md5 = lambda b: hashlib.md5(b).hexdigest()  # noqa: E731


@pytest.fixture
def box(swift_conn: swiftclient.Connection, unique: str) -> Iterator[str]:
    """A container of the test's own, emptied and removed afterwards."""
    swift_conn.put_container(unique)
    yield unique
    _, listing = swift_conn.get_container(unique, full_listing=True)
    for o in listing:
        swift_conn.delete_object(unique, o["name"])
    swift_conn.delete_container(unique)


@pytest.fixture
def raw(token_and_url) -> Raw:  # noqa: ANN001
    return Raw(*token_and_url)


def _put_request(url: str, token: str, path: str, headers: dict[str, str]) -> bytes:
    from urllib.parse import urlsplit

    u = urlsplit(url)
    lines = [f"PUT {u.path}{path} HTTP/1.1", f"Host: {u.netloc}", f"X-Auth-Token: {token}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# -- PUT ---------------------------------------------------------------------------------


def test_put_with_length_and_chunked(swift_conn: swiftclient.Connection, box: str, raw: Raw) -> None:
    data = b"hello world"
    etag = swift_conn.put_object(box, "len", data)
    assert etag == md5(data)
    # file-like object with chunk_size and no length → Transfer-Encoding: chunked
    big = bytes(range(256)) * 12289  # ~3 MiB, crosses the blob writer's buffer size
    etag = swift_conn.put_object(box, "chunked-file", io.BytesIO(big), chunk_size=65536)
    assert etag == md5(big)
    # a generator → chunked as well
    parts = [b"alpha-", b"", b"beta-", b"gamma" * 1000]
    etag = swift_conn.put_object(box, "chunked-gen", (p for p in parts))
    assert etag == md5(b"".join(parts))
    for name, body in (("len", data), ("chunked-file", big), ("chunked-gen", b"".join(parts))):
        h, got = swift_conn.get_object(box, name)
        assert got == body
        assert h["etag"] == md5(body) and h["content-length"] == str(len(body))
    r = raw("PUT", f"/{box}/resp", data=b"abc")
    assert r.status_code == 201
    assert r.headers["ETag"] == md5(b"abc")
    assert r.headers["Last-Modified"] and r.headers["X-Timestamp"]
    assert r.headers["Content-Type"] == "text/html; charset=UTF-8" and r.text == ""


def test_expect_100_continue(token_and_url, box: str) -> None:  # noqa: ANN001
    token, url = token_and_url
    req = _put_request(url, token, f"/{box}/expect", {
        "Content-Length": "5", "Expect": "100-continue", "Connection": "close"})
    interim, final = raw_http(url, req, body_chunks=(b"12345",), read_interim=True)
    assert interim.startswith(b"HTTP/1.1 100 Continue")
    assert status_of(final) == 201
    assert b"etag: " + md5(b"12345").encode() in final.lower()
    # a request refused before the body is read gets its answer at once, not 100
    req = _put_request(url, "not-a-token", f"/{box}/expect2", {
        "Content-Length": "5", "Expect": "100-continue", "Connection": "close"})
    _, final = raw_http(url, req, read_interim=False)
    assert status_of(final) == 401


def test_etag_verified(swift_conn: swiftclient.Connection, box: str, raw: Raw) -> None:
    data = b"payload"
    assert swift_conn.put_object(box, "ok", data, etag=md5(data)) == md5(data)
    r = raw("PUT", f"/{box}/quoted", data=data, headers={"ETag": f'"{md5(data)}"'})
    assert r.status_code == 201
    # mismatch: 422, nothing stored
    r = raw("PUT", f"/{box}/new", data=data, headers={"ETag": md5(b"other")})
    assert r.status_code == 422
    assert r.text == "<html><h1>Unprocessable Entity</h1><p>Unable to process the contained instructions</p></html>"
    assert raw("HEAD", f"/{box}/new").status_code == 404
    # mismatch on overwrite: the previous version stays
    with pytest.raises(ClientException) as ei:
        swift_conn.put_object(box, "ok", b"replacement", etag=md5(b"nope"))
    assert ei.value.http_status == 422
    with pytest.raises(ClientException):
        swift_conn.put_object(box, "ok", (c for c in [b"replace", b"ment"]), etag=md5(b"nope"))
    assert swift_conn.get_object(box, "ok")[1] == data
    h = swift_conn.head_container(box)
    assert h["x-container-object-count"] == "2" and h["x-container-bytes-used"] == str(2 * len(data))


def test_content_type_kept_or_guessed(box: str, raw: Raw) -> None:
    cases = [
        ("a.json", None, "application/json"),
        ("b.html", None, "text/html"),
        ("c.unknownext", None, "application/octet-stream"),
        ("noext", None, "application/octet-stream"),
        ("d.json", "text/x-mine", "text/x-mine"),
        ("e.txt", "text/plain; charset=latin-1", "text/plain; charset=latin-1"),
    ]
    for name, given, expected in cases:
        h = {"Content-Type": given} if given else {}
        assert raw("PUT", f"/{box}/{name}", data=b"{}", headers=h).status_code == 201
        assert raw("HEAD", f"/{box}/{name}").headers["Content-Type"] == expected, name
    r = raw("PUT", f"/{box}/f.png", data=b"x", headers={"Content-Type": "text/plain", "X-Detect-Content-Type": "true"})
    assert r.status_code == 201
    assert raw("HEAD", f"/{box}/f.png").headers["Content-Type"] == "image/png"
    r = raw("GET", f"/{box}", params={"format": "json", "prefix": "a."})
    assert r.json()[0]["content_type"] == "application/json"


def test_metadata_and_system_headers_stored(swift_conn: swiftclient.Connection, box: str) -> None:
    at = int(time.time()) + 3600
    swift_conn.put_object(box, "m", b"data", headers={
        "X-Object-Meta-Color": "Blue", "X-Object-Meta-Multi-Word": "a b c",
        "Content-Disposition": 'attachment; filename="m.bin"', "Content-Encoding": "gzip",
        "X-Delete-At": str(at)})
    for h in (swift_conn.head_object(box, "m"), swift_conn.get_object(box, "m")[0]):
        assert h["x-object-meta-color"] == "Blue"
        assert h["x-object-meta-multi-word"] == "a b c"
        assert h["content-disposition"] == 'attachment; filename="m.bin"'
        assert h["content-encoding"] == "gzip"
        assert h["x-delete-at"] == str(at)
        assert h["etag"] == md5(b"data")
        assert h["last-modified"] and h["x-timestamp"]
        assert h["accept-ranges"] == "bytes"
    before = time.time()
    swift_conn.put_object(box, "after", b"x", headers={"X-Delete-After": "3600"})
    got = int(swift_conn.head_object(box, "after")["x-delete-at"])
    assert int(before) + 3600 <= got <= int(time.time()) + 3601


def test_timestamps_consistent(swift_conn: swiftclient.Connection, box: str, raw: Raw) -> None:
    before = time.time()
    swift_conn.put_object(box, "ts", b"t")
    after = time.time()
    h = raw("HEAD", f"/{box}/ts").headers
    ts = float(h["X-Timestamp"])
    assert before - 0.01 <= ts <= after + 0.01
    assert len(h["X-Timestamp"].split(".")[1]) == 5  # Swift's normalized form
    # Last-Modified is the X-Timestamp rounded up to the second
    assert parsedate_to_datetime(h["Last-Modified"]).timestamp() == math.ceil(ts)
    listed = raw("GET", f"/{box}", params={"format": "json", "prefix": "ts"}).json()[0]["last_modified"]
    from datetime import datetime, timezone

    assert datetime.strptime(listed, "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=timezone.utc).timestamp() == pytest.approx(ts, abs=1e-5)


def test_put_if_none_match_star(swift_conn: swiftclient.Connection, box: str, raw: Raw) -> None:
    r = raw("PUT", f"/{box}/once", data=b"first", headers={"If-None-Match": "*"})
    assert r.status_code == 201
    r = raw("PUT", f"/{box}/once", data=b"second", headers={"If-None-Match": "*"})
    assert r.status_code == 412
    r = raw("PUT", f"/{box}/once", data=b"third", headers={"If-None-Match": md5(b"first")})
    assert r.status_code == 400 and r.text == "If-None-Match only supports *"
    assert swift_conn.get_object(box, "once")[1] == b"first"


# -- GET / HEAD ---------------------------------------------------------------------------


DATA = b"0123456789abcdefghij"  # 20 bytes


def _parse_byteranges(content_type: str, body: bytes) -> list[tuple[str, bytes]]:
    assert content_type.startswith("multipart/byteranges;")
    boundary = content_type.split("boundary=", 1)[1].strip('"').encode()
    parts = []
    for chunk in body.split(b"--" + boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, payload = chunk.lstrip(b"\r\n").partition(b"\r\n\r\n")
        assert payload.endswith(b"\r\n")
        headers = dict(line.split(b": ", 1) for line in head.split(b"\r\n"))
        parts.append((headers[b"Content-Range"].decode(), payload[:-2]))
    assert body.rstrip(b"\r\n").endswith(b"--" + boundary + b"--")
    return parts


def test_ranges(swift_conn: swiftclient.Connection, box: str, raw: Raw) -> None:
    swift_conn.put_object(box, "r", DATA, content_type="text/plain")
    r = raw("GET", f"/{box}/r", headers={"Range": "bytes=2-5"})
    assert r.status_code == 206 and r.content == b"2345"
    assert r.headers["Content-Range"] == "bytes 2-5/20" and r.headers["Content-Length"] == "4"
    assert r.headers["ETag"] == md5(DATA)
    r = raw("GET", f"/{box}/r", headers={"Range": "bytes=-3"})
    assert r.status_code == 206 and r.content == b"hij" and r.headers["Content-Range"] == "bytes 17-19/20"
    r = raw("GET", f"/{box}/r", headers={"Range": "bytes=15-"})
    assert r.status_code == 206 and r.content == b"fghij"
    r = raw("GET", f"/{box}/r", headers={"Range": "bytes=-100"})  # suffix longer than the object
    assert r.status_code == 206 and r.content == DATA and r.headers["Content-Range"] == "bytes 0-19/20"
    r = raw("GET", f"/{box}/r", headers={"Range": "bytes=10-1000"})
    assert r.status_code == 206 and r.content == DATA[10:]
    # several ranges → multipart/byteranges
    r = raw("GET", f"/{box}/r", headers={"Range": "bytes=0-1,5-7,-2"})
    assert r.status_code == 206
    assert int(r.headers["Content-Length"]) == len(r.content)
    assert _parse_byteranges(r.headers["Content-Type"], r.content) == [
        ("bytes 0-1/20", b"01"), ("bytes 5-7/20", b"567"), ("bytes 18-19/20", b"ij")]
    # HEAD with a range: same headers, no body
    r = raw("HEAD", f"/{box}/r", headers={"Range": "bytes=2-5"})
    assert r.status_code == 206 and r.content == b""
    # unsatisfiable → 416 with bytes */N
    r = raw("GET", f"/{box}/r", headers={"Range": "bytes=20-30"})
    assert r.status_code == 416
    assert r.headers["Content-Range"] == "bytes */20"
    assert r.text == "<html><h1>Requested Range Not Satisfiable</h1><p>The Range requested is not available.</p></html>"
    r = raw("GET", f"/{box}/r", headers={"Range": "bytes=25-,30-40"})
    assert r.status_code == 416
    # syntactically invalid ranges are ignored: whole object, 200
    for bad in ("bytes=5-2", "bytes=abc", "items=0-1", "bytes=-"):
        r = raw("GET", f"/{box}/r", headers={"Range": bad})
        assert r.status_code == 200 and r.content == DATA, bad
    # a satisfiable range mixed with unsatisfiable ones is served
    r = raw("GET", f"/{box}/r", headers={"Range": "bytes=50-60,1-2"})
    assert r.status_code == 206 and r.content == b"12"
    # too many ranges → 416 (swob's denial-of-service guard: more than 50)
    many = "bytes=" + ",".join([f"{i}-{i}" for i in range(20)] * 3)
    assert raw("GET", f"/{box}/r", headers={"Range": many}).status_code == 416
    # empty object: a suffix range is served whole (200), others are 416
    swift_conn.put_object(box, "empty", b"")
    r = raw("GET", f"/{box}/empty", headers={"Range": "bytes=-5"})
    assert r.status_code == 200 and r.content == b""
    r = raw("GET", f"/{box}/empty", headers={"Range": "bytes=0-5"})
    assert r.status_code == 416 and r.headers["Content-Range"] == "bytes */0"


def test_conditionals(swift_conn: swiftclient.Connection, box: str, raw: Raw) -> None:
    swift_conn.put_object(box, "c", DATA)
    etag = md5(DATA)
    lm = raw("HEAD", f"/{box}/c").headers["Last-Modified"]
    lm_ts = parsedate_to_datetime(lm).timestamp()
    earlier = formatdate(lm_ts - 100, usegmt=True)
    later = formatdate(lm_ts + 100, usegmt=True)

    def get(method: str = "GET", **headers: str):  # noqa: ANN202
        return raw(method, f"/{box}/c", headers={k.replace("_", "-"): v for k, v in headers.items()})

    assert get(If_Match=etag).status_code == 200
    assert get(If_Match=f'"{etag}"').status_code == 200
    assert get(If_Match="*").status_code == 200
    r = get(If_Match="deadbeef")
    assert r.status_code == 412 and r.content == b""
    assert r.headers["ETag"] == etag
    assert get("HEAD", If_Match="deadbeef").status_code == 412
    r = get(If_None_Match=etag)
    assert r.status_code == 304 and r.content == b"" and r.headers["ETag"] == etag
    assert get(If_None_Match="*").status_code == 304
    assert get(If_None_Match="deadbeef").status_code == 200
    assert get(If_Modified_Since=earlier).status_code == 200
    assert get(If_Modified_Since=lm).status_code == 304
    assert get(If_Modified_Since=later).status_code == 304
    assert get(If_Unmodified_Since=earlier).status_code == 412
    assert get(If_Unmodified_Since=lm).status_code == 200
    assert get(If_Unmodified_Since="not a date").status_code == 200
    assert get(If_Modified_Since="not a date").status_code == 200
    # Swift's order: If-None-Match, If-Match, then the dates (no RFC 7232 skipping)
    assert get(If_None_Match="deadbeef", If_Modified_Since=later).status_code == 304
    assert get(If_Match="deadbeef", If_None_Match=etag).status_code == 304
    r = get(If_Match=etag, Range="bytes=0-3")
    assert r.status_code == 206 and r.content == b"0123"
    assert get(If_None_Match=etag, Range="bytes=0-3").status_code == 304
    # a missing object: 404, but If-Match: * → 412
    assert raw("GET", f"/{box}/absent").status_code == 404
    assert raw("GET", f"/{box}/absent", headers={"If-Match": "*"}).status_code == 412
    assert raw("GET", f"/{box}/absent", headers={"If-None-Match": "*"}).status_code == 404


def test_head_object(swift_conn: swiftclient.Connection, box: str, raw: Raw) -> None:
    swift_conn.put_object(box, "h", DATA, content_type="text/plain")
    r = raw("HEAD", f"/{box}/h")
    assert r.status_code == 200 and r.content == b""
    assert r.headers["Content-Length"] == "20" and r.headers["Content-Type"] == "text/plain"
    assert r.headers["ETag"] == md5(DATA)
    r = raw("HEAD", f"/{box}/nope")
    assert r.status_code == 404
    r = raw("HEAD", f"/{box}-nobox/h")
    assert r.status_code == 404


# -- POST / DELETE --------------------------------------------------------------------------


def test_post_replaces_metadata(swift_conn: swiftclient.Connection, box: str, raw: Raw) -> None:
    swift_conn.put_object(box, "p", DATA, content_type="text/plain", headers={
        "X-Object-Meta-Old": "1", "X-Object-Meta-Keep": "k", "Content-Disposition": "inline"})
    r = raw("POST", f"/{box}/p", headers={"X-Object-Meta-New": "2", "X-Object-Meta-Keep": "k2"})
    assert r.status_code == 202
    h = swift_conn.head_object(box, "p")
    assert h["x-object-meta-new"] == "2" and h["x-object-meta-keep"] == "k2"
    assert "x-object-meta-old" not in h and "content-disposition" not in h
    assert h["content-type"] == "text/plain" and h["etag"] == md5(DATA)
    assert swift_conn.get_object(box, "p")[1] == DATA
    swift_conn.post_object(box, "p", {"Content-Type": "application/x-new", "X-Delete-At": str(int(time.time()) + 999)})
    h = swift_conn.head_object(box, "p")
    assert h["content-type"] == "application/x-new" and "x-object-meta-new" not in h and "x-delete-at" in h
    swift_conn.post_object(box, "p", {"X-Object-Meta-A": "b"})
    assert "x-delete-at" not in swift_conn.head_object(box, "p")
    assert raw("POST", f"/{box}/missing", headers={"X-Object-Meta-A": "1"}).status_code == 404
    r = raw("POST", f"/{box}/p", headers={"X-Delete-At": str(int(time.time()) - 10)})
    assert r.status_code == 400 and r.text == "X-Delete-At in past"
    r = raw("POST", f"/{box}/p", headers={"X-Object-Meta-" + "k" * 129: "v"})
    assert r.status_code == 400
    assert swift_conn.head_object(box, "p")["x-object-meta-a"] == "b"


def test_delete(swift_conn: swiftclient.Connection, box: str, raw: Raw) -> None:
    swift_conn.put_object(box, "d", DATA)
    r = raw("DELETE", f"/{box}/d")
    assert r.status_code == 204
    r = raw("DELETE", f"/{box}/d")
    assert r.status_code == 404
    assert raw("GET", f"/{box}/d").status_code == 404
    assert swift_conn.head_container(box)["x-container-object-count"] == "0"


# -- COPY -----------------------------------------------------------------------------------


def test_copy_and_x_copy_from(swift_conn: swiftclient.Connection, box: str, raw: Raw, unique: str) -> None:
    swift_conn.put_object(box, "src", DATA, content_type="text/x-src", headers={
        "X-Object-Meta-A": "1", "X-Object-Meta-B": "2", "Content-Disposition": "inline"})
    src_lm = swift_conn.head_object(box, "src")["last-modified"]
    # COPY + Destination: metadata kept, request metadata merged in
    r = raw("COPY", f"/{box}/src", headers={"Destination": f"/{box}/dst1", "X-Object-Meta-B": "two"})
    assert r.status_code == 201
    assert r.headers["X-Copied-From"] == f"{box}/src"
    assert r.headers["X-Copied-From-Last-Modified"] == src_lm
    assert r.headers["X-Copied-From-Account"] == raw.url.rsplit("/", 1)[1]  # AUTH_<project id>
    assert r.headers["ETag"] == md5(DATA)
    h, body = swift_conn.get_object(box, "dst1")
    assert body == DATA and h["x-object-meta-a"] == "1" and h["x-object-meta-b"] == "two"
    assert h["content-type"] == "text/x-src" and h["content-disposition"] == "inline"
    # PUT + X-Copy-From with X-Fresh-Metadata: only the request's metadata
    r = raw("PUT", f"/{box}/dst2", headers={"X-Copy-From": f"{box}/src", "X-Fresh-Metadata": "true",
                                            "X-Object-Meta-C": "3", "Content-Length": "0"})
    assert r.status_code == 201
    h = swift_conn.head_object(box, "dst2")
    assert h["x-object-meta-c"] == "3" and "x-object-meta-a" not in h and "x-object-meta-b" not in h
    # swiftclient's copy_object (COPY) into another container, with a new content type
    other = unique + "-dst"
    swift_conn.put_container(other)
    swift_conn.copy_object(box, "src", f"/{other}/copied", headers={"Content-Type": "text/x-new"})
    h, body = swift_conn.get_object(other, "copied")
    assert body == DATA and h["content-type"] == "text/x-new" and h["x-object-meta-a"] == "1"
    # the copy is independent of the source
    swift_conn.delete_object(box, "src")
    assert swift_conn.get_object(other, "copied")[1] == DATA
    swift_conn.delete_object(other, "copied")
    swift_conn.delete_container(other)
    # errors
    assert raw("COPY", f"/{box}/src", headers={"Destination": f"/{box}/x"}).status_code == 404
    r = raw("COPY", f"/{box}/dst1", headers={"Destination": "nocontainer"})
    assert r.status_code == 412
    assert r.text == "Destination header must be of the form <container name>/<object name>"
    r = raw("PUT", f"/{box}/x", headers={"X-Copy-From": "bad", "Content-Length": "0"})
    assert r.status_code == 412
    assert r.text == "X-Copy-From header must be of the form <container name>/<object name>"
    r = raw("COPY", f"/{box}/dst1", headers={"Destination": f"/{box}-nobox/x"})
    assert r.status_code == 404


# -- trans ids and headers ------------------------------------------------------------------


def test_every_response_has_trans_id(box: str, raw: Raw, token_and_url) -> None:  # noqa: ANN001
    # Raw asserts X-Trans-Id == X-Openstack-Request-Id on each response; walk many kinds
    raw("PUT", f"/{box}/t", data=b"x")
    raw("GET", f"/{box}/t")
    raw("HEAD", f"/{box}/t")
    raw("GET", f"/{box}/t", headers={"If-None-Match": "*"})
    raw("GET", f"/{box}/t", headers={"Range": "bytes=9-"})
    raw("GET", f"/{box}/missing")
    raw("PUT", f"/{box}/%FF")
    raw("DELETE", f"/{box}")
    raw("DELETE", f"/{box}/t")
    token, url = token_and_url
    Raw("bogus", url)("GET")
    Raw(token, url)("PATCH", f"/{box}")


# -- limits and bad input -------------------------------------------------------------------


def test_name_and_path_limits(box: str, raw: Raw) -> None:
    r = raw("PUT", f"/{box}/" + "o" * 1025, data=b"x")
    assert r.status_code == 400 and r.text == "Object name length of 1025 longer than 1024"
    assert r.headers["Content-Type"] == "text/plain; charset=UTF-8"  # Swift's constraints check
    assert raw("PUT", f"/{box}/" + "o" * 1024, data=b"x").status_code == 201
    r = raw("PUT", f"/{box}/" + "%C3%A4" * 513, data=b"x")  # 1026 bytes
    assert r.status_code == 400 and r.text == "Object name length of 1026 longer than 1024"
    for bad in ("bad%FFname", "bad%00name", "%C3"):
        r = raw("PUT", f"/{box}/{bad}", data=b"x")
        assert r.status_code == 412 and r.text == "Invalid UTF8 or contains NULL", bad
        assert r.headers["Content-Type"] == "text/html; charset=UTF-8"  # swob's default, as Swift's proxy
    # unicode names are fine
    assert raw("PUT", f"/{box}/%E2%82%AC/%C3%A4", data=b"u").status_code == 201
    assert raw("GET", f"/{box}", params={"prefix": "€"}).text == "€/ä\n"


def test_metadata_limits(box: str, raw: Raw, swift_conn: swiftclient.Connection) -> None:
    swift_conn.put_object(box, "meta", b"orig", headers={"X-Object-Meta-Orig": "yes"})
    bad = [
        ({f"X-Object-Meta-K{i}": "v" for i in range(91)}, "Too many metadata items; max 90"),
        ({"X-Object-Meta-" + "k" * 129: "v"}, "Metadata name too long: x-object-meta-K" + "k" * 128),
        ({"X-Object-Meta-Val": "v" * 257}, "Metadata value longer than 256: x-object-meta-Val"),
        ({f"X-Object-Meta-K{i:02d}": "v" * 250 for i in range(17)}, "Total metadata too large; max 4096"),
    ]
    for headers, message in bad:
        r = raw("PUT", f"/{box}/meta", data=b"new", headers=headers)
        assert r.status_code == 400 and r.text == message
        r = raw("POST", f"/{box}/meta", headers=headers)
        assert r.status_code == 400 and r.text == message
    # exactly at the limits is fine
    ok = {f"X-Object-Meta-K{i}": "v" for i in range(90)}
    assert raw("PUT", f"/{box}/limits", data=b"x", headers=ok).status_code == 201
    ok = {"X-Object-Meta-" + "k" * 128: "v" * 256}
    assert raw("PUT", f"/{box}/limits2", data=b"x", headers=ok).status_code == 201
    h, body = swift_conn.get_object(box, "meta")
    assert body == b"orig" and h["x-object-meta-orig"] == "yes"


def test_delete_at_validation(box: str, raw: Raw) -> None:
    r = raw("PUT", f"/{box}/x", data=b"x", headers={"X-Delete-At": str(int(time.time()) - 5)})
    assert r.status_code == 400 and r.text == "X-Delete-At in past"
    r = raw("PUT", f"/{box}/x", data=b"x", headers={"X-Delete-At": "soon"})
    assert r.status_code == 400 and r.text == "Non-integer X-Delete-At"
    r = raw("PUT", f"/{box}/x", data=b"x", headers={"X-Delete-After": "abc"})
    assert r.status_code == 400 and r.text == "Non-integer X-Delete-After"
    r = raw("PUT", f"/{box}/x", data=b"x", headers={"X-Delete-After": "-1"})
    assert r.status_code == 400 and r.text == "X-Delete-After in past"
    assert raw("HEAD", f"/{box}/x").status_code == 404


def test_expired_object_disappears(swift_conn: swiftclient.Connection, box: str, raw: Raw) -> None:
    swift_conn.put_object(box, "keep", b"k")
    # X-Delete-At is whole seconds (int(now) + after, as Swift): "1" can expire a few ms
    # after the PUT. "4" leaves more than 3 s for the GET below on a busy machine.
    swift_conn.put_object(box, "gone", b"g", headers={"X-Delete-After": "4"})
    put_done = time.time()
    assert swift_conn.get_object(box, "gone")[1] == b"g"
    time.sleep(max(0.0, int(put_done) + 4 + 0.2 - time.time()))
    assert raw("GET", f"/{box}/gone").status_code == 404
    assert raw("HEAD", f"/{box}/gone").status_code == 404
    assert raw("POST", f"/{box}/gone", headers={"X-Object-Meta-A": "1"}).status_code == 404
    assert [o["name"] for o in swift_conn.get_container(box)[1]] == ["keep"]
    assert raw("GET", f"/{box}").text == "keep\n"
    # it can be written again
    swift_conn.put_object(box, "gone", b"back")
    assert swift_conn.get_object(box, "gone")[1] == b"back"


def test_length_required_and_too_large(token_and_url, box: str, raw: Raw) -> None:  # noqa: ANN001
    token, url = token_and_url
    req = _put_request(url, token, f"/{box}/nolen", {"Connection": "close"})
    _, final = raw_http(url, req)
    assert status_of(final) == 411
    assert final.endswith(b"\r\n\r\nMissing Content-Length header.")
    req = _put_request(url, token, f"/{box}/huge", {"Content-Length": str(5 * 1024**3 + 1), "Connection": "close"})
    _, final = raw_http(url, req)
    assert status_of(final) == 413
    assert final.endswith(b"\r\n\r\nYour request is too large.")
    assert raw("HEAD", f"/{box}/nolen").status_code == 404
    assert raw("HEAD", f"/{box}/huge").status_code == 404
    # an empty body with Content-Length: 0 is a valid object
    r = raw("PUT", f"/{box}/zero", data=b"", headers={"Content-Length": "0"})
    assert r.status_code == 201 and r.headers["ETag"] == md5(b"")


def test_truncated_body_leaves_previous_version(server: LampiServer, swift_conn: swiftclient.Connection,
                                                token_and_url, box: str, raw: Raw) -> None:  # noqa: ANN001
    token, url = token_and_url
    swift_conn.put_object(box, "victim", b"first version")
    # the file store's temp files (blobs in RADOS: tests/unit/store/test_rados_blobs.py's aborts)
    tmp = Path(server.data_dir) / "tmp" if blobs_in_files(server) else None
    before = set(tmp.iterdir()) if tmp else set()
    for name in ("victim", "fresh"):
        req = _put_request(url, token, f"/{box}/{name}", {"Content-Length": "1000", "Content-Type": "text/plain"})
        raw_http(url, req, body_chunks=(b"0123456789",), close_after=True)
    if tmp is not None:
        deadline = time.monotonic() + 5
        while set(tmp.iterdir()) - before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not set(tmp.iterdir()) - before, "the aborted upload's temp file was removed"
    h, body = swift_conn.get_object(box, "victim")
    assert body == b"first version" and h["etag"] == md5(b"first version")
    assert raw("HEAD", f"/{box}/fresh").status_code == 404
    ch = swift_conn.head_container(box)
    assert ch["x-container-object-count"] == "1" and ch["x-container-bytes-used"] == str(len(b"first version"))


def test_reader_role_cannot_write(server: LampiServer) -> None:
    acct = new_account(server, role="reader")
    with pytest.raises(ClientException) as ei:
        acct.conn.put_container("nope-" + acct.project)
    assert ei.value.http_status == 403
    assert acct.conn.get_account()[1] == []


def test_missing_blob_is_a_503_before_any_byte(server: LampiServer, swift_conn: swiftclient.Connection,
                                               s3, box: str) -> None:  # noqa: ANN001
    """Metadata without its data (a lost disk, a blob deleted by hand): GET answers 503
    in each protocol's format, before any header of a 200, and says what fsck finds;
    HEAD still answers from the metadata, other objects are untouched."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    if not blobs_in_files(server):
        pytest.skip("removes a blob file by hand (RADOS: test_rados_gateway.py::test_missing_bytes_are_a_503...)")
    blobs = Path(server.data_dir) / "blobs"
    before = {p for p in blobs.rglob("*") if p.is_file()}
    # larger than inline_max's default (64 KiB): a blob file of its own
    # (inline blobs gone missing: test_inline_blobs.py)
    data = b"data that will go missing" * 3000
    swift_conn.put_object(box, "lost", data)
    swift_conn.put_object(box, "kept", b"still here")
    lost = [p for p in {p for p in blobs.rglob("*") if p.is_file()} - before if p.read_bytes() == data]
    assert len(lost) == 1
    lost[0].unlink()
    for headers in ({}, {"Range": "bytes=0-3"}):
        with pytest.raises(ClientException) as ei:
            swift_conn.get_object(box, "lost", headers=headers)
        assert ei.value.http_status == 503 and "Service Unavailable" in ei.value.http_response_content.decode()
    assert swift_conn.head_object(box, "lost")["content-length"] == str(len(data))
    assert swift_conn.get_object(box, "kept")[1] == b"still here"
    once = boto3.client("s3", endpoint_url=server.url, region_name="us-east-1",
                        aws_access_key_id=s3._request_signer._credentials.access_key,
                        aws_secret_access_key=s3._request_signer._credentials.secret_key,
                        config=Config(retries={"max_attempts": 1, "mode": "standard"}))
    with pytest.raises(ClientError) as ce:
        once.get_object(Bucket=box, Key="lost")
    assert ce.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert ce.value.response["Error"]["Code"] == "ServiceUnavailable"
    assert once.get_object(Bucket=box, Key="kept")["Body"].read() == b"still here"
    assert f"{box}/lost is missing" in server.log()


def test_metadata_names_title_cased(token_and_url, box: str) -> None:  # noqa: ANN001
    """Swift's swob sends header names title-cased, whatever case they were stored in."""
    import http.client
    from urllib.parse import urlsplit

    token, url = token_and_url
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.request("PUT", f"{u.path}/{box}/m", b"", {"X-Auth-Token": token, "x-object-meta-Color": "blUe",
                                                        "X-Object-Meta-food": "PizZa",
                                                        "X-Object-Meta-drink": "B\u00e2r".encode()})
        assert conn.getresponse().read() is not None
        conn.request("HEAD", f"{u.path}/{box}/m", headers={"X-Auth-Token": token})
        resp = conn.getresponse()
        resp.read()
        meta = {k: v for k, v in resp.getheaders() if "meta" in k.lower()}
        assert meta == {"X-Object-Meta-Color": "blUe", "X-Object-Meta-Food": "PizZa",
                        "X-Object-Meta-Drink": "B\u00e2r".encode().decode("latin-1")}  # the UTF-8 bytes as sent
    finally:
        conn.close()


def test_x_if_delete_at(swift_conn: swiftclient.Connection, box: str) -> None:
    """X-If-Delete-At on DELETE, as Swift's object server: a value that is no timestamp is
    400 before the object is looked up; one that is not the object's X-Delete-At is 412."""
    at = int(time.time()) + 3600
    swift_conn.put_object(box, "o", b"x", headers={"X-Delete-At": str(at)})
    swift_conn.put_object(box, "plain", b"y")
    for name, value, status in (("missing", "bad", 400), ("o", "bad", 400), ("o", str(at + 1), 412),
                                ("plain", str(at), 412), ("missing", str(at), 404)):
        with pytest.raises(ClientException) as e:
            swift_conn.delete_object(box, name, headers={"X-If-Delete-At": value})
        assert e.value.http_status == status, (name, value)
    assert swift_conn.get_object(box, "o")[1] == b"x" and swift_conn.get_object(box, "plain")[1] == b"y"
    swift_conn.delete_object(box, "o", headers={"X-If-Delete-At": str(at)})
    with pytest.raises(ClientException) as e:
        swift_conn.head_object(box, "o")
    assert e.value.http_status == 404
