"""Property-based fuzzing of every request parser, against one real ``lampi serve`` (issue 9).

Each test draws requests with hypothesis — headers, query strings, paths, JSON, XML,
multipart and aws-chunked bodies, Authorization headers and presigned queries, each
shaped like what its parser expects and broken in the ways clients and attackers break
them (huge and non-ASCII numbers, impossible dates, deep nesting, truncated documents,
bytes that are not UTF-8) — sends them byte for byte with a raw socket client, and
asserts the answer is not a server error: bad input is a 4xx in the protocol's format,
never a 500. 501 is allowed: it is how S3 names an operation lampi does not implement.
After every test the server must still answer ``/healthcheck``; at the end its log
must hold no unhandled error.

Besides the hypothesis tests, tables send every value that ever broke a parser
(``NASTY``, ``NASTY_QUERY`` in fuzz_support) in every header and query parameter lampi
reads, each alone, so no other part of a request can refuse it first.

Bounded so it fits the default run (about 14,000 requests, under two minutes on a busy
two-core machine): ``LAMPI_FUZZ_EXAMPLES`` (default 200) examples per hypothesis test,
derandomized (the same cases every run, no example database). Raise it for a deeper
search; a falsifying example is printed as the request that failed.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import tarfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.functional.conftest import LampiServer, free_port
from tests.functional.fuzz_support import (
    DATE, DEEP_JSON, JSON_LEAF, JSON_VALUE, NASTY, NASTY_QUERY, NUMBER, OBS_TEXT, SEGMENT, TEXT, Env, Reply, check, dumps,
    extra_headers,
    framed, header_set, populate, query, report, start_server, values, xml_body,
)

pytestmark = pytest.mark.slow

FUZZ_EXAMPLES = int(os.environ.get("LAMPI_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=FUZZ_EXAMPLES, derandomize=True, database=None, deadline=None,
                suppress_health_check=list(HealthCheck), print_blob=False)
S3_DOMAIN = "s3.fuzz.test"
EMPTY_SHA = hashlib.sha256(b"").hexdigest()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    base = tmp_path_factory.mktemp("fuzz")
    srv = LampiServer(data_dir=base / "data", port=free_port(),
                      extra_args=["--s3-domain", S3_DOMAIN, "--trusted-proxies", "127.0.0.1"])
    try:
        start_server(srv)
        e = populate(srv)
        yield e
        report(srv, e.http)
    finally:
        srv.stop()


def in_parallel(send: Callable[..., Reply], cases: list[tuple]) -> list[Reply]:
    """``send(*case)`` for each case, four at a time (the table tests: independent requests)."""
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda case: send(*case), cases))


@pytest.fixture(autouse=True)
def healthy(env: Env) -> Iterator[None]:
    """After each parser's fuzz the server still answers, at once."""
    before = len(env.http.sent)
    yield
    r = env.http.request("GET", "/healthcheck", label="health")
    assert r.status == 200 and r.body == b"OK"
    sent = env.http.sent[before:]
    print(f"\n  {len(sent)} requests, {sum(1 for _, s in sent if s >= 500 and s != 501)} server errors")


OBJECT_WRITE = {
    "X-Delete-At": values(), "X-Delete-After": values(), "X-Object-Meta-Color": values(),
    "X-Remove-Object-Meta-Color": values(), "Content-Type": values("text/plain;swift_bytes=5", "a/b;;;=;"),
    "ETag": values("d41d8cd98f00b204e9800998ecf8427e", '"5d41402abc4b2a76b9719d911017c592"'),
    "If-None-Match": values("*"), "X-Object-Manifest": values("fz/seg", "fz/", "/fz/x", "fz/a?b"),
    "X-Symlink-Target": values("fz/obj", "fz", "/fz/obj", "fz/link"), "X-Symlink-Target-Account": values(),
    "X-Symlink-Target-Etag": values(), "X-Copy-From": values("fz/obj", "/fz/slo", "fz", "fz/link", "%ff/%00"),
    "X-Copy-From-Account": values("AUTH_", "AUTH_x"), "X-Fresh-Metadata": values("true"),
    "X-Detect-Content-Type": values("true"), "Content-Disposition": values(), "Content-Encoding": values("gzip"),
    "Expires": values(), "Cache-Control": values(), "X-Static-Large-Object": values("True"),
    "X-Timestamp": values(), "X-Object-Sysmeta-Fz": values(), "Content-Length": NUMBER,
}


@FUZZ
@given(method=st.sampled_from(["PUT", "POST"]), headers=header_set(OBJECT_WRITE, 3), extra=extra_headers(),
       q=query(["multipart-manifest", "symlink", "heartbeat"]))
def test_swift_object_write_headers(env: Env, method: str, headers: list, extra: list, q: str) -> None:
    headers, body = framed(headers + extra, b"hello" if method == "PUT" else b"")
    check(env.swift(method, "/fz/w" + ("?" + q if q else ""), headers, body, label="swift-object-write"))


OBJECT_READ = {
    "Range": values("bytes=0-0", "bytes=-5", "bytes=5-", "bytes=0-1,3-4", "bytes=99999999999999999999-",
                    "bytes=" + ",".join(["0-1"] * 60), "bytes=--1", "bytes=1-0", "bytes=-0"),
    "If-Match": values("*", '"x"', 'W/"x"'), "If-None-Match": values("*", '"x"'),
    "If-Modified-Since": DATE, "If-Unmodified-Since": DATE, "X-Newest": values("true"),
    "Accept": values("application/json", "*/*;q=0.5", "text/xml;q=nan", "a/b;q=1e999"),
    "X-Web-Mode": values("true"),
}


@FUZZ
@given(method=st.sampled_from(["GET", "HEAD"]), name=st.sampled_from(["obj", "slo", "dlo", "link", "none"]),
       headers=header_set(OBJECT_READ, 4),
       q=query(["multipart-manifest", "format", "symlink", "version-id", "part-number", "filename", "inline"]))
def test_swift_object_read_headers(env: Env, method: str, name: str, headers: list, q: str) -> None:
    check(env.swift(method, f"/fz/{name}" + ("?" + q if q else ""), headers, label="swift-object-read"))


COPY = {"Destination": values("fz/copy", "/fz/copy", "fz", "fzc/x", "%ff", "fz/%0a"),
        "Destination-Account": values("AUTH_x", "AUTH_"), "X-Fresh-Metadata": values("true"),
        "If-Match": values('"x"'), "If-Modified-Since": DATE, "Content-Length": NUMBER, "X-Delete-At": values()}


@FUZZ
@given(src=st.sampled_from(["obj", "slo", "dlo", "link", "none"]), headers=header_set(COPY, 3),
       q=query(["multipart-manifest", "symlink"]))
def test_swift_copy(env: Env, src: str, headers: list, q: str) -> None:
    headers, body = framed(headers, b"")
    check(env.swift("COPY", f"/fz/{src}" + ("?" + q if q else ""), headers, body, label="swift-copy"))


CONTAINER = {
    "X-Container-Read": values(".r:*", ".r:-x,.rlistings", "a:b,*:*", ".r:", ".x:y"),
    "X-Container-Write": values("a:b", "*:*"), "X-Versions-Location": values("fz", "fzc"),
    "X-History-Location": values("fz"), "X-Versions-Enabled": values("true", "false"),
    "X-Remove-Versions-Location": values("x"), "X-Container-Meta-Quota-Bytes": NUMBER,
    "X-Container-Meta-Quota-Count": NUMBER, "X-Container-Meta-Access-Control-Allow-Origin": values("*"),
    "X-Container-Meta-Access-Control-Max-Age": NUMBER, "X-Container-Meta-Temp-URL-Key": values(),
    "X-Container-Meta-Web-Index": values("index.html"), "X-Container-Meta-Web-Listings": values("true"),
    "X-Container-Meta-Fz": values(), "X-Remove-Container-Meta-Fz": values(),
    "X-Container-Sync-To": values(), "X-Storage-Policy": values("default-placement"),
}


@FUZZ
@given(method=st.sampled_from(["PUT", "POST", "HEAD", "GET"]), headers=header_set(CONTAINER, 3))
def test_swift_container_headers(env: Env, method: str, headers: list) -> None:
    check(env.swift(method, "/fzc", headers, label="swift-container"))


ACCOUNT = {
    "X-Account-Access-Control": st.one_of(values('{"read-only":["a"]}', "{}", "[]", '{"admin":"x"}'),
                                          JSON_VALUE.map(lambda v: dumps(v))),
    "X-Account-Meta-Quota-Bytes": NUMBER, "X-Account-Meta-Temp-URL-Key": values(),
    "X-Account-Meta-Temp-URL-Key-2": values(), "X-Account-Meta-Fz": values(), "X-Remove-Account-Meta-Fz": values(),
}


@FUZZ
@given(method=st.sampled_from(["POST", "HEAD", "GET", "PUT", "DELETE"]), headers=header_set(ACCOUNT, 3))
def test_swift_account_headers(env: Env, method: str, headers: list) -> None:
    check(env.swift(method, "", headers, label="swift-account", account=env.other_account))


SWIFT_TARGETS = [("PUT", "/fz/one"), ("POST", "/fz/one"), ("GET", "/fz/obj"), ("HEAD", "/fz/slo"), ("GET", "/fz/link"),
                 ("COPY", "/fz/obj"), ("PUT", "/fzc"), ("POST", "/fzc"), ("GET", "/fzc"), ("POST", ""),
                 ("OPTIONS", "/fz/obj"), ("DELETE", "/fz/none"), ("PUT", "/fz/one?multipart-manifest=put")]
SWIFT_HEADERS = sorted({*OBJECT_WRITE, *OBJECT_READ, *COPY, *CONTAINER, *ACCOUNT, "Origin", "Expect", "X-Auth-Token",
                        "Access-Control-Request-Method", "Access-Control-Request-Headers", "X-Newest",
                        "X-Backend-Storage-Policy-Index", "Referer", "If-Match"} - {"Content-Length"})


@FUZZ
@given(target=st.sampled_from(SWIFT_TARGETS), name=st.sampled_from(SWIFT_HEADERS),
       value=st.one_of(values(), OBS_TEXT))
def test_swift_one_header(env: Env, target: tuple[str, str], name: str, value: str | bytes) -> None:
    """Every header lampi reads, alone, with any value, on the requests that read it."""
    method, path = target
    account = env.other_account if path == "" else None
    body = b"[]" if "manifest" in path else b"x" if method == "PUT" and path.startswith("/fz/") else b""
    check(env.swift(method, path, [(name, value)], body, label="swift-one-header", account=account))


SWIFT_HEADER_TARGETS = [("PUT", "/fz/nasty"), ("GET", "/fz/slo"), ("POST", "/fzc")]


@pytest.mark.parametrize("name", SWIFT_HEADERS)
def test_swift_nasty_header(env: Env, name: str) -> None:
    """Each header lampi reads, with each value that ever broke a parser, on each request."""
    for reply in in_parallel(lambda value, method, path: env.swift(
            method, path, [(name, value)], b"x" if method == "PUT" else b"", label="swift-nasty-header"),
            [(value, method, path) for value in NASTY for method, path in SWIFT_HEADER_TARGETS]):
        check(reply)


SWIFT_QUERY = ["limit", "marker", "end_marker", "prefix", "delimiter", "format", "reverse", "path", "versions",
               "version_marker", "multipart-manifest", "symlink", "version-id", "temp_url_sig", "temp_url_expires",
               "temp_url_prefix", "temp_url_ip_range", "filename", "inline", "extract-archive", "heartbeat"]
SWIFT_QUERY_TARGETS = [("GET", "/fz"), ("GET", ""), ("GET", "/fz/obj"), ("PUT", "/fz/qput"), ("HEAD", "/fz/slo")]


@pytest.mark.parametrize("param", SWIFT_QUERY)
def test_swift_nasty_query(env: Env, param: str) -> None:
    """Each query parameter lampi reads, with each value that ever broke a parser."""
    for reply in in_parallel(lambda value, method, path: env.swift(
            method, f"{path}?{param}={value}", [], b"x" if method == "PUT" else b"", label="swift-nasty-query"),
            [(value, method, path) for value in NASTY_QUERY for method, path in SWIFT_QUERY_TARGETS]):
        check(reply)


LISTING = ["limit", "marker", "end_marker", "prefix", "delimiter", "format", "reverse", "path", "versions",
           "version_marker", "states", "bytes_count"]


@FUZZ
@given(path=st.sampled_from(["", "/fz", "/fzc"]), q=query(LISTING),
       accept=st.one_of(st.none(), values("application/json", "text/xml", "*/*;q=0", "text/plain;q=x")))
def test_swift_listing_query(env: Env, path: str, q: str, accept: str | None) -> None:
    headers = [("Accept", accept)] if accept is not None else []
    check(env.swift("GET", path + ("?" + q if q else ""), headers, label="swift-listing"))


def _segment_entry() -> st.SearchStrategy[object]:
    field = {"path": st.one_of(st.sampled_from(["/fz/seg1", "fz/seg2", "/fz/slo", "/fz/none", "/fzc", "/"]), JSON_LEAF),
             "etag": JSON_LEAF, "size_bytes": JSON_LEAF, "range": st.one_of(
                 st.sampled_from(["0-1", "-5", "5-", "1-0", "0-1,2-3", "99999999999999999999-"]), JSON_LEAF),
             "data": JSON_LEAF, "sub_slo": JSON_LEAF}
    return st.dictionaries(st.sampled_from(sorted(field)), JSON_LEAF, max_size=4).flatmap(
        lambda d: st.fixed_dictionaries({k: field[k] for k in d}))


SLO_BODY = st.one_of(
    st.lists(_segment_entry(), max_size=4).map(dumps),
    JSON_VALUE.map(dumps),
    DEEP_JSON,
    st.binary(max_size=100),
)


@FUZZ
@given(body=SLO_BODY, q=st.sampled_from(["multipart-manifest=put", "multipart-manifest=put&heartbeat=on"]),
       headers=header_set({"ETag": values(), "X-Delete-At": values(), "Accept": values("application/json")}, 2))
def test_slo_manifest_put(env: Env, body: bytes, q: str, headers: list) -> None:
    check(env.swift("PUT", f"/fz/m?{q}", headers, body, label="slo-put"))
    check(env.swift("GET", "/fz/m", [("Range", "bytes=0-10")], label="slo-get"))


@FUZZ
@given(body=st.one_of(st.lists(st.one_of(TEXT, SEGMENT), max_size=6).map(lambda ls: "\n".join(ls).encode()),
                      st.binary(max_size=300)),
       ctype=st.one_of(st.none(), values("text/plain", "application/json")),
       accept=st.one_of(st.none(), values("application/json", "application/xml", "foo/bar")))
def test_bulk_delete_body(env: Env, body: bytes, ctype: str | None, accept: str | None) -> None:
    headers = [(k, v) for k, v in (("Content-Type", ctype), ("Accept", accept)) if v is not None]
    check(env.swift("POST", "/?bulk-delete", headers, body, label="bulk-delete"))


def _tar(names: list[str], pax: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for n in names:
            info = tarfile.TarInfo(n)
            info.size = 3
            info.pax_headers = pax
            tar.addfile(info, io.BytesIO(b"abc"))
    return buf.getvalue()


TAR_NAME = st.one_of(st.sampled_from(["fzc/a", "../x", "./../x", "./x", "x", "../", "./fzc/b", "/fzc/c", ".",
                                      "fzc/\nnl"]), TEXT.filter(bool))
ARCHIVE = st.one_of(
    st.tuples(st.lists(TAR_NAME, min_size=1, max_size=3),
              st.dictionaries(st.sampled_from(["SCHILY.xattr.user.meta.x", "mtime", "size", "path", "uid"]),
                              TEXT, max_size=2)).map(lambda a: _tar(*a)),
    st.binary(max_size=600),
)


@FUZZ
@given(body=ARCHIVE, kind=st.sampled_from(["tar", "tar.gz", "tar.bz2", "zip", ""]),
       base=st.sampled_from(["/", "/fzc", "/fzc/dir"]), headers=header_set({"X-Delete-At": values(),
                                                                          "X-Delete-After": values()}, 1))
def test_bulk_extract_archive(env: Env, body: bytes, kind: str, base: str, headers: list) -> None:
    check(env.swift("PUT", f"{base}?extract-archive={kind}", headers, body, label="extract-archive"))


def _formpost_body(boundary: str, parts: list[tuple[list[bytes], bytes]]) -> bytes:
    out = b""
    for header_lines, value in parts:
        out += b"--" + boundary.encode() + b"\r\n" + b"".join(h + b"\r\n" for h in header_lines) + b"\r\n" + value + b"\r\n"
    return out + b"--" + boundary.encode() + b"--\r\n"


def _signed_fields(env: Env, fields: dict[str, str]) -> dict[str, str]:
    path = f"/v1/{env.account}/fzform/"
    body = "\n".join([path, fields.get("redirect", ""), fields.get("max_file_size", "0"),
                      fields.get("max_file_count", "0"), fields.get("expires", "0")])
    fields["signature"] = hmac.new(b"formkey", body.encode(), hashlib.sha256).hexdigest()
    return fields


PART_HEADER = st.one_of(
    st.sampled_from([b'Content-Disposition: form-data; name="file"; filename="f.txt"', b"bad header line", b"foo",
                     b"Content-Disposition: form-data; name=\"a", b"Content-Type: multipart/mixed; boundary=YY",
                     b"Content-Transfer-Encoding: base64", b"Content-Encoding: gzip", b": empty name",
                     b"A: " + b"a" * 20000, b"Content-Disposition: ;;;==", b"Content-Length: -1"]),
    st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
)
FORM_FIELDS = st.fixed_dictionaries({}, optional={
    "max_file_size": NUMBER, "max_file_count": NUMBER, "expires": st.one_of(NUMBER, st.just(str(int(time.time()) + 3600))),
    "redirect": st.one_of(TEXT, st.just("http://example.org/")), "x_delete_at": NUMBER, "x_delete_after": NUMBER,
    "content-type": TEXT})


@FUZZ
@given(boundary=st.one_of(st.just("XX"), st.text(st.sampled_from("abc'()+_,-./:=? "), min_size=1, max_size=80)),
       fields=FORM_FIELDS, sign=st.booleans(),
       extra=st.lists(st.tuples(st.lists(PART_HEADER, max_size=3), st.binary(max_size=50)), max_size=3),
       with_file=st.booleans())
def test_formpost(env: Env, boundary: str, fields: dict, sign: bool, extra: list, with_file: bool) -> None:
    if sign:
        fields = _signed_fields(env, dict(fields))
    parts = [([f'Content-Disposition: form-data; name="{k}"'.encode()], v.encode("utf-8", "surrogateescape"))
             for k, v in fields.items()]
    parts += extra
    if with_file:
        parts.append(([b'Content-Disposition: form-data; name="file"; filename="f.txt"', b"Content-Type: text/plain"],
                      b"file data"))
    ctype = f"multipart/form-data; boundary={boundary}"
    check(env.swift("POST", "/fzform/", [("Content-Type", ctype)], _formpost_body(boundary, parts),
                    label="formpost", token=False))


@FUZZ
@given(method=st.sampled_from(["GET", "HEAD", "PUT"]), sign=st.booleans(),
       expires=st.one_of(NUMBER, DATE, st.just(str(int(time.time()) + 3600))),
       q=query(["temp_url_sig", "temp_url_expires", "temp_url_prefix", "temp_url_ip_range", "filename", "inline"]),
       sig=st.one_of(TEXT, st.sampled_from(["sha1:", "sha512:!!", "sha256:" + "A" * 43, "x" * 64])))
def test_tempurl_query(env: Env, method: str, sign: bool, expires: str, q: str, sig: str) -> None:
    path = f"/v1/{env.account}/fz/obj"
    if sign:
        sig = hmac.new(b"fuzzkey", f"{method}\n{expires}\n{path}".encode(), hashlib.sha256).hexdigest()
    qs = f"temp_url_sig={quote(sig, safe='')}&temp_url_expires={quote(expires, safe='')}" + ("&" + q if q else "")
    check(env.http.request(method, f"{path}?{qs}", [], b"x" if method == "PUT" else b"", label="tempurl"))


@FUZZ
@given(method=st.sampled_from(["GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "COPY", "FOO"]),
       segments=st.lists(SEGMENT, min_size=0, max_size=3), token=st.booleans(), trailing=st.booleans())
def test_swift_paths(env: Env, method: str, segments: list[str], token: bool, trailing: bool) -> None:
    path = "/" + "/".join(segments) + ("/" if trailing else "")
    check(env.swift(method, path if path != "/" else "", [], b"x" if method == "PUT" else b"",
                    label="swift-path", token=token))
    check(env.http.request(method, f"/swift/v1/{env.account}{path}", [("X-Auth-Token", env.token)], label="swift-path"))


CORS = {"Origin": values("http://a.example", "null", "*"),
        "Access-Control-Request-Method": values("GET", "PUT", "get"),
        "Access-Control-Request-Headers": values("x-amz-date,authorization", "X-Auth-Token")}


@FUZZ
@given(path=st.sampled_from(["/v1/{a}/fz/obj", "/v1/{a}/fz", "/fzs3/obj", "/fzs3", "/v1/{a}"]),
       method=st.sampled_from(["OPTIONS", "GET"]), headers=header_set(CORS))
def test_cors(env: Env, path: str, method: str, headers: list) -> None:
    check(env.http.request(method, path.format(a=env.account), headers, label="cors"))


# -- Keystone ------------------------------------------------------------------------------------

IDENTITY_DOC = st.fixed_dictionaries({}, optional={
    "methods": st.one_of(st.just(["password"]), st.just(["token"]), st.lists(JSON_LEAF, max_size=3)),
    "password": st.one_of(JSON_LEAF, st.fixed_dictionaries({}, optional={"user": st.one_of(JSON_LEAF, st.fixed_dictionaries(
        {}, optional={"id": JSON_LEAF, "name": st.one_of(st.just("admin"), JSON_LEAF), "password": JSON_LEAF,
                      "domain": st.one_of(JSON_LEAF, st.fixed_dictionaries({}, optional={"id": JSON_LEAF,
                                                                                         "name": JSON_LEAF}))}))})),
    "token": st.one_of(JSON_LEAF, st.fixed_dictionaries({}, optional={"id": JSON_LEAF})),
})
SCOPE = st.one_of(JSON_LEAF, st.just("unscoped"), st.fixed_dictionaries({}, optional={
    "project": st.one_of(JSON_LEAF, st.fixed_dictionaries({}, optional={
        "id": JSON_LEAF, "name": JSON_LEAF, "domain": st.one_of(JSON_LEAF, st.fixed_dictionaries(
            {}, optional={"id": JSON_LEAF, "name": JSON_LEAF}))})),
    "domain": JSON_LEAF, "system": JSON_LEAF}))
AUTH_BODY = st.one_of(
    st.fixed_dictionaries({"auth": st.fixed_dictionaries({"identity": IDENTITY_DOC}, optional={"scope": SCOPE})}).map(dumps),
    JSON_VALUE.map(dumps),
    DEEP_JSON.filter(lambda b: len(b) <= 64 * 1024),
    st.binary(max_size=200),
)


@FUZZ
@given(body=AUTH_BODY, ctype=st.one_of(st.none(), values("application/json", "text/plain; charset=latin-1")),
       q=query(["nocatalog", "allow_expired"]))
def test_keystone_auth_body(env: Env, body: bytes, ctype: str | None, q: str) -> None:
    headers = [("Content-Type", ctype)] if ctype is not None else []
    check(env.http.request("POST", "/v3/auth/tokens" + ("?" + q if q else ""), headers, body, label="keystone-auth"))


@FUZZ
@given(method=st.sampled_from(["GET", "HEAD", "DELETE"]),
       path=st.one_of(st.sampled_from(["/v3/auth/tokens", "/v3/auth/projects", "/v3/auth/catalog", "/v3/projects",
                                       "/v3/users", "/v3/domains", "/v3/roles", "/v3/users/{u}/projects",
                                       "/v3/users/{u}/credentials/OS-EC2", "/v3/credentials"]),
                      st.lists(SEGMENT, min_size=1, max_size=3).map(lambda s: "/v3/" + "/".join(s))),
       token=st.one_of(st.just("valid"), values()), subject=st.one_of(st.none(), st.just("valid"), values()),
       q=query(["name", "type", "user_id", "nocatalog", "enabled"]))
def test_keystone_headers(env: Env, method: str, path: str, token: str, subject: str | None, q: str) -> None:
    headers = [("X-Auth-Token", env.token if token == "valid" else token)]
    if subject is not None:
        headers.append(("X-Subject-Token", env.token if subject == "valid" else subject))
    target = path.replace("{u}", env.user_id) + ("?" + q if q else "")
    check(env.http.request(method, target, headers, label="keystone-read"))


@FUZZ
@given(path=st.sampled_from(["/v3/users/{u}/credentials/OS-EC2", "/v3/credentials"]),
       body=st.one_of(st.fixed_dictionaries({}, optional={
           "tenant_id": JSON_LEAF, "type": st.one_of(st.just("ec2"), JSON_LEAF), "project_id": JSON_LEAF,
           "user_id": JSON_LEAF, "blob": st.one_of(JSON_LEAF, JSON_VALUE.map(json.dumps)),
           "credential": JSON_VALUE}).map(dumps), JSON_VALUE.map(dumps), DEEP_JSON.filter(lambda b: len(b) < 60000)))
def test_keystone_ec2_body(env: Env, path: str, body: bytes) -> None:
    target = path.replace("{u}", env.user_id)
    check(env.http.request("POST", target, [("X-Auth-Token", env.token), ("Content-Type", "application/json")],
                           body, label="keystone-ec2"))


@pytest.mark.parametrize("name", ["X-Auth-User", "X-Auth-Key", "X-Storage-User", "X-Storage-Pass", "X-Auth-Token",
                                  "X-Subject-Token"])
def test_keystone_nasty_header(env: Env, name: str) -> None:
    """Each identity header with each value that ever broke a parser (a password check
    costs an argon2 hash: one request per value)."""
    other = {"X-Auth-User": ("X-Auth-Key", "x"), "X-Storage-User": ("X-Storage-Pass", "x"),
             "X-Auth-Key": ("X-Auth-User", "admin:admin"), "X-Storage-Pass": ("X-Storage-User", "admin:admin"),
             "X-Auth-Token": ("X-Subject-Token", env.token), "X-Subject-Token": ("X-Auth-Token", env.token)}[name]
    path = "/auth/v1.0" if "Token" not in name else "/v3/auth/tokens"
    for value in NASTY:
        check(env.http.request("GET", path, [(name, value), other], label="keystone-nasty-header"))


@settings(FUZZ, max_examples=max(10, FUZZ_EXAMPLES // 5))  # each try costs an argon2 hash (~0.1 s)
@given(headers=header_set({"X-Auth-User": values("admin:admin", ":", "a:b:c"), "X-Auth-Key": values(),
                           "X-Storage-User": values("admin:admin"), "X-Storage-Pass": values()}),
       path=st.sampled_from(["/auth/v1.0", "/auth/v1.0/", "/v1.0", "/swift/auth/v1.0"]))
def test_v1_auth_headers(env: Env, headers: list, path: str) -> None:
    check(env.http.request("GET", path, headers, label="v1-auth"))


# -- S3 --------------------------------------------------------------------------------------------

S3_PUT = {
    "x-amz-meta-color": values(), "Content-MD5": values("1B2M2Y8AsgTpgAmY7PhCfg==", "AAAA"),
    "x-amz-checksum-crc32": values("AAAAAA==", "!!!!"), "x-amz-checksum-sha256": values(),
    "x-amz-checksum-crc32c": values(), "x-amz-sdk-checksum-algorithm": values("CRC32", "SHA1"),
    "x-amz-acl": values("public-read", "private", "bucket-owner-full-control"),
    "x-amz-grant-read": values('uri="http://acs.amazonaws.com/groups/global/AllUsers"', 'id="x"', "emailAddress=a@b"),
    "x-amz-grant-full-control": values('id="x", id="y"'), "x-amz-tagging": values("a=b&c=d", "a", "=&=", "a=%ZZ"),
    "x-amz-storage-class": values("STANDARD", "GLACIER"), "Expires": DATE, "Content-Type": values(),
    "Content-Encoding": values("aws-chunked", "gzip"), "x-amz-website-redirect-location": values("/x"),
    "x-amz-server-side-encryption": values("AES256"), "x-amz-object-lock-mode": values("GOVERNANCE"),
    "x-amz-object-lock-retain-until-date": DATE, "If-None-Match": values("*"), "If-Match": values("*"),
    "x-amz-decoded-content-length": NUMBER, "x-amz-trailer": values("x-amz-checksum-crc32"),
    "Content-Length": NUMBER, "Expect": values("100-continue"),
}


@FUZZ
@given(headers=header_set(S3_PUT, 3), extra=extra_headers(),
       payload=st.one_of(st.none(), values("UNSIGNED-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                                           "STREAMING-UNSIGNED-PAYLOAD-TRAILER", "STREAMING-FOO", "z" * 64)))
def test_s3_put_object_headers(env: Env, headers: list, extra: list, payload: str | bytes | None) -> None:
    headers, body = framed(headers + extra, b"hello s3")
    if isinstance(payload, bytes):
        payload = payload.decode("latin-1")
    check(env.s3("PUT", "/fzs3/put", "", headers, body, payload=payload, label="s3-put"))


S3_READ = {
    "Range": values("bytes=0-0", "bytes=-5", "bytes=5-", "bytes=0-1,3-4", "bytes=99999999999999999999-",
                    "bytes=-99999999999999999999", "bytes=1-0", "bytes=-0"),
    "If-Match": values("*", '"x"'), "If-None-Match": values("*", '"x"'), "If-Modified-Since": DATE,
    "If-Unmodified-Since": DATE, "x-amz-checksum-mode": values("ENABLED"),
    "x-amz-server-side-encryption-customer-algorithm": values("AES256"),
}


@FUZZ
@given(method=st.sampled_from(["GET", "HEAD"]), key=st.sampled_from(["obj", "mpu", "none"]),
       headers=header_set(S3_READ, 3),
       q=query(["partNumber", "versionId", "response-content-type", "response-expires", "response-cache-control",
                "response-content-disposition", "uploadId", "max-parts", "part-number-marker", "tagging", "acl",
                "attributes"]))
def test_s3_read_headers(env: Env, method: str, key: str, headers: list, q: str) -> None:
    check(env.s3(method, f"/fzs3/{key}", q, headers, label="s3-read"))


S3_LISTING = ["max-keys", "marker", "prefix", "delimiter", "encoding-type", "list-type", "continuation-token",
              "start-after", "fetch-owner", "versions", "key-marker", "version-id-marker", "uploads", "max-uploads",
              "upload-id-marker", "location", "versioning", "acl", "cors", "lifecycle", "tagging", "policy"]


@FUZZ
@given(method=st.sampled_from(["GET", "HEAD"]), q=query(S3_LISTING),
       listing=st.sampled_from(["", "list-type=2&", "versions&", "uploads&"]))
def test_s3_listing_query(env: Env, method: str, q: str, listing: str) -> None:
    check(env.s3(method, "/fzs3", (listing + q).rstrip("&"), label="s3-listing"))


S3_TEXT = st.one_of(
    NUMBER, TEXT, DATE, st.sampled_from([
        "Enabled", "Disabled", "FULL_CONTROL", "READ", "WRITE", "READ_ACP", "WRITE_ACP", "GET", "PUT", "*",
        "http://acs.amazonaws.com/groups/global/AllUsers", "http://acs.amazonaws.com/groups/global/AuthenticatedUsers",
        "true", "false", '"d41d8cd98f00b204e9800998ecf8427e"', "obj", "mpu", "2024-01-01T00:00:00.000Z",
        "GLACIER", "CanonicalUser", "Group", "AmazonCustomerByEmail"]))
XML_OPS: dict[str, tuple[str, str, str, dict[str, list[str]]]] = {
    # operation: (method, path, query, {tag: child tags}); the root is the first key
    "DeleteObjects": ("POST", "/fzs3", "delete", {
        "Delete": ["Object", "Quiet"], "Object": ["Key", "VersionId"]}),
    "CompleteMultipartUpload": ("POST", "/fzs3/mpu", "uploadId={upload}", {
        "CompleteMultipartUpload": ["Part"], "Part": ["PartNumber", "ETag", "ChecksumCRC32", "ChecksumSHA256"]}),
    "PutBucketAcl": ("PUT", "/fzcfg", "acl", {
        "AccessControlPolicy": ["Owner", "AccessControlList"], "Owner": ["ID", "DisplayName"],
        "AccessControlList": ["Grant"], "Grant": ["Grantee", "Permission"],
        "Grantee": ["ID", "DisplayName", "URI", "EmailAddress", "Type"]}),
    "PutObjectAcl": ("PUT", "/fzs3/obj", "acl", {
        "AccessControlPolicy": ["Owner", "AccessControlList"], "Owner": ["ID", "DisplayName"],
        "AccessControlList": ["Grant"], "Grant": ["Grantee", "Permission"],
        "Grantee": ["ID", "DisplayName", "URI", "EmailAddress", "Type"]}),
    "PutBucketCors": ("PUT", "/fzcfg", "cors", {
        "CORSConfiguration": ["CORSRule"], "CORSRule": ["ID", "AllowedOrigin", "AllowedMethod", "AllowedHeader",
                                                        "ExposeHeader", "MaxAgeSeconds"]}),
    "PutBucketLifecycle": ("PUT", "/fzcfg", "lifecycle", {
        "LifecycleConfiguration": ["Rule"], "Rule": ["ID", "Status", "Prefix", "Filter", "Expiration",
                                                     "AbortIncompleteMultipartUpload", "NoncurrentVersionExpiration",
                                                     "Transition"],
        "Filter": ["Prefix", "Tag", "And", "ObjectSizeGreaterThan", "ObjectSizeLessThan"], "And": ["Prefix", "Tag"],
        "Tag": ["Key", "Value"], "Expiration": ["Days", "Date", "ExpiredObjectDeleteMarker"],
        "AbortIncompleteMultipartUpload": ["DaysAfterInitiation"], "NoncurrentVersionExpiration": ["NoncurrentDays"],
        "Transition": ["Days", "Date", "StorageClass"]}),
    "PutObjectTagging": ("PUT", "/fzs3/obj", "tagging", {"Tagging": ["TagSet"], "TagSet": ["Tag"],
                                                         "Tag": ["Key", "Value"]}),
    "PutBucketTagging": ("PUT", "/fzcfg", "tagging", {"Tagging": ["TagSet"], "TagSet": ["Tag"], "Tag": ["Key", "Value"]}),
    "CreateBucket": ("PUT", "/fzcfg", "", {"CreateBucketConfiguration": ["LocationConstraint"]}),
}


def _xml_case(op: str) -> st.SearchStrategy[tuple[str, bytes]]:
    vocab = XML_OPS[op][3]
    return xml_body(vocab, next(iter(vocab)), S3_TEXT).map(lambda body: (op, body))


@FUZZ
@given(case=st.sampled_from(sorted(XML_OPS)).flatmap(_xml_case),
       md5=st.booleans(), headers=header_set({"x-amz-acl": values("private"), "Content-MD5": values()}, 1))
def test_s3_xml_bodies(env: Env, case: tuple[str, bytes], md5: bool, headers: list) -> None:
    import base64

    op, body = case
    method, path, q, _ = XML_OPS[op]
    if md5:
        headers = headers + [("Content-MD5", base64.b64encode(hashlib.md5(body).digest()).decode())]
    check(env.s3(method, path, q.format(upload=env.upload_id), headers, body, label="s3-xml"))


S3_COPY = {
    "x-amz-copy-source": values("fzs3/obj", "/fzs3/obj", "/fzs3/mpu", "fzs3", "/fzs3/obj?versionId=x",
                                "fz/slo", "%ff/%00", "fzs3/obj?versionId="),
    "x-amz-copy-source-range": values("bytes=0-1", "bytes=1-0", "bytes=-1", "bytes=0-99999999999999999999"),
    "x-amz-metadata-directive": values("COPY", "REPLACE"), "x-amz-tagging-directive": values("COPY", "REPLACE"),
    "x-amz-copy-source-if-match": values(), "x-amz-copy-source-if-none-match": values(),
    "x-amz-copy-source-if-modified-since": DATE, "x-amz-copy-source-if-unmodified-since": DATE,
    "x-amz-tagging": values("a=b"), "x-amz-meta-x": values(),
}


@FUZZ
@given(headers=header_set(S3_COPY, 3), part=st.booleans(), q=query(["partNumber", "uploadId"]))
def test_s3_copy_headers(env: Env, headers: list, part: bool, q: str) -> None:
    if not any(k == "x-amz-copy-source" for k, _ in headers):
        headers = [("x-amz-copy-source", "/fzs3/obj"), *headers]
    qs = f"partNumber=2&uploadId={env.upload_id}" if part else q
    check(env.s3("PUT", "/fzs3/copy" if not part else "/fzs3/mpu", qs, headers, label="s3-copy"))


@FUZZ
@given(method=st.sampled_from(["PUT", "POST", "DELETE", "GET"]),
       q=st.one_of(query(["partNumber", "uploadId", "uploads", "max-parts", "part-number-marker"]),
                   st.tuples(NUMBER, st.one_of(st.just("{upload}"), TEXT)).map(
                       lambda a: f"partNumber={quote(a[0], safe='')}&uploadId={quote(a[1], safe='{}')}")))
def test_s3_multipart_query(env: Env, method: str, q: str) -> None:
    body = b"part" if method == "PUT" else b""
    check(env.s3(method, "/fzs3/mpu", q.replace("{upload}", env.upload_id), [], body, label="s3-multipart"))


S3_TARGETS = [("PUT", "/fzs3/one", ""), ("GET", "/fzs3/obj", ""), ("HEAD", "/fzs3/mpu", ""), ("PUT", "/fzs3/cp", ""),
              ("DELETE", "/fzs3/none", ""), ("PUT", "/fzcfg", "acl"), ("PUT", "/fzs3/obj", "acl"),
              ("POST", "/fzs3/new", "uploads"), ("GET", "/fzs3", "list-type=2"), ("PUT", "/{bucket}", ""),
              ("GET", "/fzs3/obj", "partNumber=1"), ("PUT", "/fzs3/mpu", "partNumber=3&uploadId={upload}"),
              ("OPTIONS", "/fzs3/obj", ""), ("PUT", "/fzs3/obj", "tagging")]
S3_HEADERS = sorted({*S3_PUT, *S3_READ, *S3_COPY, "x-amz-grant-write", "x-amz-grant-read-acp", "x-amz-grant-write-acp",
                     "x-amz-bucket-object-lock-enabled", "x-amz-object-ownership", "x-amz-expected-bucket-owner",
                     "x-amz-request-payer", "Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers",
                     "x-amz-mfa", "x-amz-bypass-governance-retention"} - {"Content-Length"})


@FUZZ
@given(target=st.sampled_from(S3_TARGETS), name=st.sampled_from(S3_HEADERS), value=st.one_of(values(), OBS_TEXT),
       n=st.integers(0, 10**6))
def test_s3_one_header(env: Env, target: tuple[str, str, str], name: str, value: str | bytes, n: int) -> None:
    """Every header lampi's S3 reads, alone, with any value, on the requests that read it."""
    method, path, q = target
    path = path.replace("{bucket}", f"fz-{env.tag}-{n}")
    body = b"x" if method == "PUT" and "acl" not in q and "tagging" not in q and path.count("/") > 1 else b""
    check(env.s3(method, path, q.replace("{upload}", env.upload_id), [(name, value)], body, label="s3-one-header"))


S3_HEADER_TARGETS = [("PUT", "/fzs3/nasty", ""), ("GET", "/fzs3/obj", ""), ("PUT", "/{bucket}", "")]


@pytest.mark.parametrize("name", S3_HEADERS)
def test_s3_nasty_header(env: Env, name: str) -> None:
    """Each header lampi's S3 reads, with each value that ever broke a parser, on each request."""
    def send(i: int, value: str | bytes, method: str, path: str, q: str) -> Reply:
        path = path.replace("{bucket}", f"fz-{env.tag}-{i}")
        body = b"x" if method == "PUT" and path.count("/") > 1 and not q else b""
        return env.s3(method, path, q, [(name, value)], body, label="s3-nasty-header")

    for reply in in_parallel(send, [(i, v, *t) for i, v in enumerate(NASTY) for t in S3_HEADER_TARGETS]):
        check(reply)


S3_QUERY = [*S3_LISTING, "partNumber", "versionId", "uploadId", "max-parts", "part-number-marker",
            "response-content-type", "response-content-language", "response-expires", "response-cache-control",
            "response-content-disposition", "response-content-encoding", "list-type", "X-Amz-Expires"]
S3_QUERY_TARGETS = [("GET", "/fzs3"), ("GET", "/fzs3/obj"), ("PUT", "/fzs3/qput"), ("HEAD", "/fzs3/mpu")]


@pytest.mark.parametrize("param", S3_QUERY)
def test_s3_nasty_query(env: Env, param: str) -> None:
    """Each query parameter lampi's S3 reads, with each value that ever broke a parser."""
    for reply in in_parallel(lambda value, method, path: env.s3(
            method, path, f"{param}={value}", [], b"x" if method == "PUT" else b"", label="s3-nasty-query"),
            [(value, method, path) for value in NASTY_QUERY for method, path in S3_QUERY_TARGETS]):
        check(reply)


CREDENTIAL = st.one_of(
    st.tuples(st.one_of(st.just("{access}"), TEXT, OBS_TEXT.map(lambda b: b.decode("utf-8", "surrogateescape"))),
              st.one_of(DATE, st.just("{day}")),
              st.sampled_from(["us-east-1", "", "x"]), st.sampled_from(["s3", "", "sts"]),
              st.sampled_from(["aws4_request", "", "x"])).map("/".join),
    TEXT,
)


@FUZZ
@given(credential=CREDENTIAL, signed=st.one_of(st.just("host;x-amz-content-sha256;x-amz-date"), TEXT),
       signature=st.one_of(st.just("0" * 64), TEXT),
       shape=st.sampled_from(["AWS4-HMAC-SHA256 Credential={c}, SignedHeaders={h}, Signature={s}",
                              "AWS4-HMAC-SHA256 Credential={c}, SignedHeaders=host, Signature=" + "0" * 64,
                              "AWS4-HMAC-SHA256 Credential={c},SignedHeaders={h},Signature={s}",
                              "AWS4-HMAC-SHA256 {c}", "AWS4-HMAC-SHA256 Credential=={c}", "AWS4-HMAC-SHA256 ",
                              "AWS4-HMAC-SHA256 Credential={c}, Credential={c}", "Bearer {c}", "AWS4-HMAC-SHA512 x"]),
       headers=header_set({"X-Amz-Date": st.one_of(DATE, st.just("{now}")), "Date": DATE,
                           "X-Amz-Content-SHA256": values("UNSIGNED-PAYLOAD", EMPTY_SHA)}))
def test_s3_sigv4_header(env: Env, credential: str, signed: str, signature: str, shape: str, headers: list) -> None:
    now = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    credential = credential.replace("{access}", env.keys.access).replace("{day}", now[:8])
    auth = shape.format(c=credential, h=signed, s=signature)
    headers = [(k, v.replace("{now}", now) if isinstance(v, str) else v) for k, v in headers]
    check(env.http.request("GET", "/fzs3/obj", [("Authorization", auth), *headers], label="s3-sigv4"))


PRESIGN = ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders",
           "X-Amz-Signature", "X-Amz-Security-Token", "AWSAccessKeyId", "Signature", "Expires"]


@FUZZ
@given(fields=st.fixed_dictionaries({}, optional={
    "X-Amz-Algorithm": values("AWS4-HMAC-SHA256"), "X-Amz-Credential": CREDENTIAL, "X-Amz-Date": st.one_of(
        DATE, st.just("{now}")), "X-Amz-Expires": values("604800", "604801", "0", "-1", "3600"),
    "X-Amz-SignedHeaders": values("host"), "X-Amz-Signature": values("0" * 64),
    "AWSAccessKeyId": values("{access}"), "Signature": values(), "Expires": NUMBER}),
    q=query(PRESIGN), method=st.sampled_from(["GET", "PUT", "HEAD"]))
def test_s3_presigned_query(env: Env, fields: dict, q: str, method: str) -> None:
    now = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())

    def fill(v: str | bytes) -> str:
        v = v.decode("latin-1") if isinstance(v, bytes) else v
        v = v.replace("{now}", now).replace("{day}", now[:8]).replace("{access}", env.keys.access)
        return quote(v.encode("utf-8", "surrogateescape"), safe="")

    qs = "&".join(f"{k}={fill(v)}" for k, v in fields.items()) + ("&" + q if q else "")
    check(env.http.request(method, f"/fzs3/obj?{qs}", [], b"x" if method == "PUT" else b"", label="s3-presigned"))


@FUZZ
@given(auth=st.one_of(st.tuples(st.one_of(st.just("{access}"), TEXT), TEXT).map(lambda a: f"AWS {a[0]}:{a[1]}"),
                      OBS_TEXT.map(lambda b: "AWS " + b.decode("utf-8", "surrogateescape") + ":c2ln"),
                      st.sampled_from(["AWS ", "AWS :", "AWS x", "AWS {access}:"]), TEXT.map(lambda t: "AWS " + t)),
       headers=header_set({"Date": DATE, "X-Amz-Date": DATE, "Content-MD5": values(), "x-amz-meta-a": values()}))
def test_s3_sigv2_header(env: Env, auth: str, headers: list) -> None:
    check(env.http.request("GET", "/fzs3/obj?acl", [("Authorization", auth.replace("{access}", env.keys.access)),
                                                   *headers], label="s3-sigv2"))


def _chunked(chunks: list[tuple[str, str, bytes]], trailer: list[bytes], final: bool) -> bytes:
    out = b""
    for size, ext, data in chunks:
        out += size.encode("latin-1", "replace") + ext.encode("latin-1", "replace") + b"\r\n" + data + b"\r\n"
    if final:
        out += b"0\r\n" + b"".join(t + b"\r\n" for t in trailer) + b"\r\n"
    return out


CHUNK = st.one_of(
    st.binary(max_size=20).map(lambda d: (format(len(d), "x"), "", d)),
    st.tuples(st.one_of(NUMBER, st.sampled_from(["ffffffffffffffffffff", "-1", "g", "0x10", "1 "])),
              st.sampled_from(["", ";chunk-signature=" + "0" * 64, ";chunk-signature=", ";", ";a=b;c"]),
              st.binary(max_size=20)),
)


@FUZZ
@given(payload=st.sampled_from(["STREAMING-UNSIGNED-PAYLOAD-TRAILER", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                                "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"]),
       chunks=st.lists(CHUNK, max_size=3), final=st.booleans(),
       trailer=st.lists(st.one_of(st.sampled_from([b"x-amz-checksum-crc32:AAAAAA==", b"x-amz-checksum-crc32:!!",
                                                   b"x-amz-trailer-signature:" + b"0" * 64, b"nocolon", b":"]),
                                  OBS_TEXT), max_size=2),
       headers=header_set({"x-amz-decoded-content-length": NUMBER, "x-amz-trailer": values("x-amz-checksum-crc32"),
                           "Content-Encoding": values("aws-chunked")}))
def test_s3_aws_chunked(env: Env, payload: str, chunks: list, final: bool, trailer: list, headers: list) -> None:
    body = _chunked(chunks, trailer, final)
    check(env.s3("PUT", "/fzs3/chunked", "", headers, body, payload=payload, label="s3-chunked"))


@FUZZ
@given(method=st.sampled_from(["GET", "HEAD", "PUT", "DELETE", "POST"]), segments=st.lists(SEGMENT, max_size=3),
       signed=st.booleans(), host=st.one_of(st.none(), st.sampled_from([f"fzs3.{S3_DOMAIN}", f"Bad_Name.{S3_DOMAIN}",
                                                                        f".{S3_DOMAIN}", "[::1]:1", ":"]), TEXT))
def test_s3_paths(env: Env, method: str, segments: list[str], signed: bool, host: str | None) -> None:
    path = "/" + "/".join(segments)
    body = b"x" if method == "PUT" else b""
    if signed:
        check(env.s3(method, path, "", [], body, label="s3-path"))
    else:
        check(env.http.request(method, path, [], body, host=host, label="s3-path"))
