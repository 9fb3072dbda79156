"""Swift requests and responses at the HTTP level, as OpenStack Swift 2.38 (eventlet,
swob and the proxy) answers them (issue 11): raw UTF-8 in the URL, bodies without a
length or with unsupported transfer codings, bad paths, 401/416/204 headers, error
content types, COPY of %-escaped names and across accounts, object metadata that is
not UTF-8, keep-alive. Raw sockets where no client would send the request."""

from __future__ import annotations

import time
from urllib.parse import quote, urlsplit

import pytest
import requests
import swiftclient

from tests.functional.conftest import LampiServer
from tests.functional.swift_helpers import Raw, new_account, raw_http, status_of


@pytest.fixture(scope="module")
def acct(server: LampiServer):  # noqa: ANN201
    return new_account(server)


@pytest.fixture
def raw(acct) -> Raw:  # noqa: ANN001
    return Raw(acct.token, acct.url)


def _req(acct, method: str, raw_path: bytes, extra: bytes = b"", body: bytes = b"") -> bytes:  # noqa: ANN001
    host = urlsplit(acct.url).netloc.encode()
    return (method.encode() + b" " + raw_path + b" HTTP/1.1\r\nHost: " + host + b"\r\nX-Auth-Token: "
            + acct.token.encode() + b"\r\n" + extra + b"\r\n" + body)


def _path(acct) -> bytes:  # noqa: ANN001
    return urlsplit(acct.url).path.encode()


def test_raw_utf8_in_the_url(acct, unique: str) -> None:  # noqa: ANN001
    """Bytes beyond ASCII sent unquoted in the request line: valid UTF-8 is the name it
    spells (201), anything else Swift's 412 — not the HTTP parser's 400."""
    name = ("☃" + unique).encode()
    _, resp = raw_http(acct.url, _req(acct, "PUT", _path(acct) + b"/" + name, b"Content-Length: 0\r\n"))
    assert status_of(resp) == 201, resp
    assert "☃" + unique in [c["name"] for c in acct.conn.get_account()[1]]
    _, resp = raw_http(acct.url, _req(acct, "PUT", _path(acct) + b"/" + name + b"/a?b",
                                      b"Content-Length: 1\r\n", b"x"))
    assert status_of(resp) == 201, resp  # the raw "?" starts the query, as Swift has it
    assert [o["name"] for o in acct.conn.get_container("☃" + unique)[1]] == ["a"]
    bad = name[::-1]
    _, resp = raw_http(acct.url, _req(acct, "PUT", _path(acct) + b"/" + bad, b"Content-Length: 0\r\n"))
    assert status_of(resp) == 412 and resp.endswith(b"\r\n\r\nInvalid UTF8 or contains NULL"), resp
    _, resp = raw_http(acct.url, _req(acct, "GET", _path(acct) + b"/" + bad))
    assert status_of(resp) == 412


def test_body_without_length_is_411(acct, unique: str) -> None:  # noqa: ANN001
    """A body with neither Content-Length nor chunked framing: 411, at once, the
    connection closed (the bytes that follow are not taken for a request of their own)."""
    acct.conn.put_container(unique)
    start = time.monotonic()
    _, resp = raw_http(acct.url, _req(acct, "PUT", _path(acct) + f"/{unique}/o".encode(), b"", b"z" * 100))
    assert status_of(resp) == 411 and resp.endswith(b"Missing Content-Length header."), resp
    assert b"Connection: close" in resp and time.monotonic() - start < 8
    # a copy has no body: no length needed (curl -X PUT -H "X-Copy-From: ..." sends none)
    acct.conn.put_object(unique, "src", b"abc")
    _, resp = raw_http(acct.url, _req(acct, "PUT", _path(acct) + f"/{unique}/dst".encode(),
                                      f"X-Copy-From: {unique}/src\r\nConnection: close\r\n".encode()))
    assert status_of(resp) == 201, resp
    assert acct.conn.get_object(unique, "dst")[1] == b"abc"


@pytest.mark.parametrize("separate", [False, True])
def test_unsupported_transfer_coding_is_501(acct, unique: str, separate: bool) -> None:  # noqa: ANN001
    """``Transfer-Encoding: gzip,chunked`` with a body that is no chunked body: Swift's 501,
    promptly, whether the body comes with the head or after it (it used to be a 400, or
    no answer at all while the body hung)."""
    acct.conn.put_container(unique)
    head = _req(acct, "PUT", _path(acct) + f"/{unique}/o".encode(), b"Transfer-Encoding: gzip,chunked\r\n")
    start = time.monotonic()
    if separate:
        _, resp = raw_http(acct.url, head, body_chunks=(b"z" * 100,), timeout=20)
    else:
        _, resp = raw_http(acct.url, head + b"z" * 100, timeout=20)
    assert status_of(resp) == 501, resp
    assert resp.endswith(b"Unsupported Transfer-Coding header value specified in Transfer-Encoding header")
    assert time.monotonic() - start < 8
    # a single coding that is not chunked: 400 (from the HTTP parser, as from Swift)
    _, resp = raw_http(acct.url, _req(acct, "PUT", _path(acct) + f"/{unique}/o".encode(),
                                      b"Transfer-Encoding: gzip\r\n", b"z"))
    assert status_of(resp) == 400


def test_broken_chunked_body_is_answered_at_once(acct, unique: str) -> None:  # noqa: ANN001
    """A chunked upload whose next chunk header is garbage: the upload ends (499, nothing
    stored) as soon as the garbage arrives, not after the body timeout."""
    acct.conn.put_container(unique)
    head = _req(acct, "PUT", _path(acct) + f"/{unique}/o".encode(), b"Transfer-Encoding: chunked\r\n")
    start = time.monotonic()
    _, resp = raw_http(acct.url, head, body_chunks=(b"5\r\nhello\r\n", b"zz-not-hex\r\n"), timeout=30)
    assert status_of(resp) == 499, resp
    assert time.monotonic() - start < 15
    with pytest.raises(swiftclient.ClientException) as exc:
        acct.conn.head_object(unique, "o")
    assert exc.value.http_status == 404


def test_bad_urls_are_412(acct) -> None:  # noqa: ANN001
    base = urlsplit(acct.url)
    root = f"{base.scheme}://{base.netloc}"
    for path in ("/v1", "/v1/"):
        r = requests.put(root + path, headers={"X-Auth-Token": acct.token}, timeout=30)
        assert r.status_code == 412 and r.text == "Bad URL", path
        assert r.headers["Content-Type"] == "text/html; charset=UTF-8"
    assert requests.get(root + "/v1//c/o", headers={"X-Auth-Token": acct.token}, timeout=30).status_code == 404


def test_swift_client_outside_swift_paths(server: LampiServer, acct, unique: str) -> None:  # noqa: ANN001
    """A request with a Swift token for a path that is neither Swift's nor a bucket's gets
    Swift's answer (its proxy's get_controller), not S3's XML: one segment 412 ``Bad
    URL`` (Swift's test_invalid_path_info: ``GET /info asdf``, the space taken as eventlet
    takes it), an account after another version than v1 400, an empty first segment 404. Without a token such a path stays S3's (404 NoSuchBucket), and
    an existing bucket is S3's with a token too."""
    host = urlsplit(acct.url).netloc.encode()
    head = b" HTTP/1.1\r\nHost: " + host + b"\r\nX-Auth-Token: " + acct.token.encode() + b"\r\n\r\n"
    _, resp = raw_http(acct.url, b"GET /info asdf" + head)
    assert status_of(resp) == 412 and resp.endswith(b"\r\n\r\nBad URL"), resp
    assert b"\r\nX-Trans-Id: tx" in resp and b"\r\nX-Openstack-Request-Id: tx" in resp
    hdrs = {"X-Auth-Token": acct.token}
    r = requests.get(f"{server.url}/no-such-{unique}", headers=hdrs, timeout=30)
    assert (r.status_code, r.text, r.headers["Content-Type"]) == (412, "Bad URL", "text/html; charset=UTF-8")
    r = requests.get(f"{server.url}/v2/AUTH_x/c", headers=hdrs, timeout=30)
    assert r.status_code == 400 and "<Error>" not in r.text
    _, resp = raw_http(acct.url, b"GET //v1/AUTH_x" + head)  # Swift's testInvalidPath
    assert status_of(resp) == 404 and b"<Error>" not in resp
    r = requests.get(f"{server.url}/no-such-{unique}", timeout=30)  # anonymous: S3
    assert r.status_code == 404 and "<Code>NoSuchBucket</Code>" in r.text
    acct.conn.put_container(unique, headers={"X-Container-Read": ".r:*,.rlistings"})
    acct.conn.put_object(unique, "k", b"public")
    r = requests.get(f"{server.url}/{unique}/k", headers=hdrs, timeout=30)  # Allas's public link
    assert r.status_code == 200 and r.content == b"public"
    assert requests.get(f"{server.url}/info", headers=hdrs, timeout=30).status_code == 200


def test_401_names_the_realm(acct) -> None:  # noqa: ANN001
    """swob's ``WWW-Authenticate: Swift realm="<account>"`` on every 401, the account
    %-quoted (a realm crafted to inject headers stays one quoted value)."""
    base = urlsplit(acct.url)
    r = requests.get(acct.url, timeout=30)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == f'Swift realm="AUTH_{acct.project_id}"'
    hax = quote('AUTH_haxx"\nContent-Length: 4\n\n<b>x')
    r = requests.get(f"{base.scheme}://{base.netloc}/v1/{hax}", timeout=30)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == f'Swift realm="{hax}"'
    r = requests.get(acct.url, headers={"X-Auth-Token": "bogus"}, timeout=30)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Swift realm=")


def test_416_keeps_the_object_headers(acct, raw: Raw, unique: str) -> None:  # noqa: ANN001
    acct.conn.put_container(unique)
    etag = acct.conn.put_object(unique, "o", b"0123456789", headers={"X-Object-Meta-Color": "blue"})
    r = raw("GET", f"/{unique}/o", headers={"Range": "bytes=-0"})
    assert r.status_code == 416
    assert r.headers["Content-Range"] == "bytes */10" and r.headers["Accept-Ranges"] == "bytes"
    assert r.headers["ETag"] == etag and r.headers["X-Object-Meta-Color"] == "blue"
    r = raw("GET", f"/{unique}/o", headers={"Range": "bytes=2-3"})
    assert r.status_code == 206 and r.headers["Accept-Ranges"] == "bytes" and r.content == b"23"


def test_204_has_content_length_zero(acct, raw: Raw, unique: str) -> None:  # noqa: ANN001
    acct.conn.put_container(unique)
    acct.conn.put_object(unique, "o", b"x")
    for method, path in (("POST", f"/{unique}"), ("DELETE", f"/{unique}/o"), ("HEAD", ""), ("DELETE", f"/{unique}")):
        r = raw(method, path)
        assert r.status_code == 204 and r.headers["Content-Length"] == "0", (method, path)


def test_error_content_types(acct, raw: Raw, unique: str) -> None:  # noqa: ANN001
    """swob answers in text/html unless the Swift code names text/plain: the container
    name's length is HTML, the constraints checks (metadata, X-Delete-At) plain."""
    r = raw("PUT", "/" + "X" * 300, data=b"there")
    assert r.status_code == 400 and r.headers["Content-Type"] == "text/html; charset=UTF-8"
    assert r.text == "Container name length of 300 longer than 256"
    acct.conn.put_container(unique)
    r = raw("PUT", f"/{unique}/o", headers={"X-Object-Meta-" + "k" * 129: "v"}, data=b"")
    assert r.status_code == 400 and r.headers["Content-Type"] == "text/plain; charset=UTF-8"
    r = raw("PUT", f"/{unique}/o", headers={"X-Delete-At": "soon"}, data=b"")
    assert r.status_code == 400 and r.headers["Content-Type"] == "text/plain; charset=UTF-8"
    assert r.text == "Non-integer X-Delete-At"
    r = raw("COPY", f"/{unique}/o")
    assert r.status_code == 412 and r.text == "Destination header required"
    assert r.headers["Content-Type"] == "text/html; charset=UTF-8"


def test_copy_of_percent_escaped_names(acct, unique: str) -> None:  # noqa: ANN001
    """COPY decodes the source name once (a name holding "%2F" or "%20" is copied, not a 404)."""
    c = acct.conn
    c.put_container(unique)
    src = "dealde%2Fl04 011e%204c8df/flash.png"
    c.put_object(unique, src, b"png", content_type="image/png")
    c.copy_object(unique, src, f"/{unique}/copy %2F1")
    assert c.get_object(unique, "copy %2F1")[1] == b"png"
    c.put_object(unique, "copy2", None, headers={"X-Copy-From": quote(f"/{unique}/{src}")})
    assert c.get_object(unique, "copy2")[1] == b"png"


def test_cross_account_copy_statuses(server: LampiServer, unique: str) -> None:
    """The source of a copy is read (and refused) before the destination is looked at,
    as Swift's copy middleware does: 403 for a source the caller may not read, whether
    its container, its object or the destination is missing; 404s where it may."""
    a, b = new_account(server), new_account(server)
    b.conn.put_container(unique + "-src")
    b.conn.put_object(unique + "-src", "o", b"data")
    a.conn.put_container(unique + "-dst")
    acct_b = f"AUTH_{b.project_id}"

    def put(dest: str, source: str) -> int:
        r = requests.put(f"{a.url}/{dest}/new", headers={
            "X-Auth-Token": a.token, "X-Copy-From-Account": acct_b, "X-Copy-From": source,
            "Content-Length": "0"}, timeout=30)
        return r.status_code

    assert put(unique + "-dst", f"{unique}-nosuch/o") == 403
    assert put(unique + "-dst", f"{unique}-src/nosuch") == 403
    assert put(unique + "-nodst", f"{unique}-src/o") == 403
    b.conn.post_container(unique + "-src", {"X-Container-Read": f"{a.project}:*"})
    assert put(unique + "-dst", f"{unique}-nosuch/o") == 403  # no such container: no ACL grants it
    assert put(unique + "-dst", f"{unique}-src/nosuch") == 404
    assert put(unique + "-nodst", f"{unique}-src/o") == 404
    assert put(unique + "-dst", f"{unique}-src/o") == 201
    assert a.conn.get_object(unique + "-dst", "new")[1] == b"data"


def test_object_metadata_that_is_not_utf8(acct, unique: str) -> None:  # noqa: ANN001
    """Swift keeps an object's metadata bytes as sent (only account and container
    metadata must be UTF-8) and counts them in bytes; lampi sends undecodable bytes
    back as U+FFFD."""
    acct.conn.put_container(unique)
    path = _path(acct) + f"/{unique}/o".encode()
    _, resp = raw_http(acct.url, _req(acct, "PUT", path, b"Content-Length: 0\r\nX-Object-Meta-Fruit: caf\xc3\r\n"))
    assert status_of(resp) == 201, resp
    assert acct.conn.head_object(unique, "o")["x-object-meta-fruit"] == "caf\ufffd"
    _, resp = raw_http(acct.url, _req(acct, "POST", path, b"Content-Length: 0\r\nX-Object-Meta-K: \xff\xfe\r\n"))
    assert status_of(resp) == 202, resp
    cpath = _path(acct) + f"/{unique}".encode()
    _, resp = raw_http(acct.url, _req(acct, "POST", cpath, b"Content-Length: 0\r\nX-Container-Meta-K: \xff\r\n"))
    assert status_of(resp) == 400 and resp.endswith(b"Metadata must be valid UTF-8"), resp


def test_keep_alive_is_echoed(acct, raw: Raw, unique: str) -> None:  # noqa: ANN001
    acct.conn.put_container(unique)
    acct.conn.put_object(unique, "o", b"x")
    host = urlsplit(acct.url).netloc
    import http.client

    conn = http.client.HTTPConnection(host, timeout=30)
    try:
        for hdrs, expected in (({}, None), ({"Connection": "keep-alive"}, "keep-alive")):
            conn.request("GET", f"{urlsplit(acct.url).path}/{unique}/o", headers={"X-Auth-Token": acct.token, **hdrs})
            resp = conn.getresponse()
            assert resp.read() == b"x" and resp.getheader("Connection") == expected
    finally:
        conn.close()


def test_unknown_method_is_405(acct, unique: str) -> None:  # noqa: ANN001
    """A method the HTTP parser does not know (``LICK``) is Swift's 405, not a 400."""
    for method in ("LICK", "GETorHEAD_base"):
        _, resp = raw_http(acct.url, _req(acct, method, _path(acct), b"Connection: close\r\n"))
        assert status_of(resp) == 405, resp


def test_copy_with_a_range(acct, unique: str) -> None:  # noqa: ANN001
    """COPY and X-Copy-From with ``Range`` copy those bytes, as Swift's copy (which GETs
    its source with the request's headers)."""
    c = acct.conn
    c.put_container(unique)
    data = bytes(range(256)) * 4
    c.put_object(unique, "src", data)
    c.copy_object(unique, "src", f"/{unique}/part", headers={"Range": "bytes=100-200"})
    assert c.get_object(unique, "part")[1] == data[100:201]
    c.put_object(unique, "part2", None, headers={"X-Copy-From": f"/{unique}/src", "Range": "bytes=-10"})
    assert c.get_object(unique, "part2")[1] == data[-10:]


def test_header_names_title_cased(acct, unique: str) -> None:  # noqa: ANN001
    """Every Swift response header name title-cased, as swob's HeaderKeyDict sends them:
    account and container metadata as object metadata (whatever case they were sent
    in), and lampi's own names too (``Etag``, ``X-Put-Timestamp``)."""
    import http.client

    u = urlsplit(acct.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)

    def call(method: str, path: str, headers: dict[str, str] | None = None) -> dict[str, str]:
        conn.request(method, u.path + path, b"", {"X-Auth-Token": acct.token, **(headers or {})})
        resp = conn.getresponse()
        resp.read()
        assert resp.status < 300, (method, path, resp.status)
        return dict(resp.getheaders())

    try:
        call("PUT", f"/{unique}", {"x-container-meta-project-code": "42", "X-Container-Meta-oWNER": "Ann"})
        call("POST", "", {"x-account-meta-color": "blUe"})
        call("PUT", f"/{unique}/o", {"x-object-meta-stage": "raw"})
        for method in ("HEAD", "GET"):
            h = call(method, f"/{unique}")
            meta = {k: v for k, v in h.items() if "-meta-" in k.lower()}
            assert meta == {"X-Container-Meta-Project-Code": "42", "X-Container-Meta-Owner": "Ann"}, method
            assert "X-Put-Timestamp" in h and "X-Container-Object-Count" in h
            h = call(method, "")
            assert h["X-Account-Meta-Color"] == "blUe" and "x-account-meta-color" not in h
        h = call("HEAD", f"/{unique}/o")
        assert h["X-Object-Meta-Stage"] == "raw" and "Etag" in h and "ETag" not in h
    finally:
        conn.close()
    # python-swiftclient's `swift stat` shows them as before
    stat = acct.conn.head_container(unique)
    assert stat["x-container-meta-project-code"] == "42"
