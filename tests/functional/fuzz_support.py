"""Helpers for tests/functional/test_fuzz.py: a raw HTTP/1.1 client, a SigV4 signer that
signs only what the fuzz does not touch, hypothesis strategies for the values clients put
in headers, query strings, JSON and XML bodies, and the server under fuzz (``Env``: the
containers, objects, S3 bucket and multipart upload the parsers are aimed at).

The raw client writes the request bytes itself (paths, header names and values as
given, no normalisation), so what reaches the server is exactly what was generated —
requests and http.client refuse or rewrite much of it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
import uuid
from dataclasses import dataclass, field
from email.utils import formatdate
from urllib.parse import quote, unquote

import requests
from hypothesis import strategies as st

from tests.functional.conftest import LampiServer

Header = tuple[str | bytes, str | bytes]


def _b(v: str | bytes) -> bytes:
    return v if isinstance(v, bytes) else v.encode("utf-8", "surrogateescape")


@dataclass
class Reply:
    status: int  # 0: the server closed the connection without answering
    head: bytes
    body: bytes

    def header(self, name: str) -> str | None:
        for line in self.head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == name.lower().encode():
                return v.strip().decode("latin-1")
        return None


@dataclass
class RawClient:
    """One request per connection (``Connection: close``), read to EOF."""

    port: int
    timeout: float = 120.0
    sent: list[tuple[str, int]] = field(default_factory=list)  # (label, status) of every request

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def request(self, method: str | bytes, target: str | bytes, headers: list[Header] = (),  # type: ignore[assignment]
                body: bytes = b"", *, host: str | bytes | None = None, content_length: bool = True,
                label: str = "") -> Reply:
        lines = [_b(method) + b" " + _b(target) + b" HTTP/1.1",
                 b"Host: " + _b(self.host if host is None else host), b"Connection: close"]
        names = {_b(k).lower() for k, _ in headers}
        if content_length and b"content-length" not in names and b"transfer-encoding" not in names:
            lines.append(b"Content-Length: " + str(len(body)).encode())
        lines += [_b(k) + b": " + _b(v) for k, v in headers]
        data = b"\r\n".join(lines) + b"\r\n\r\n" + body
        out = b""
        with socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout) as s:
            try:
                s.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # answered (and closed) before the whole body was read: read the answer
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    out += chunk
            except ConnectionResetError:
                pass
        head, _, rest = out.partition(b"\r\n\r\n")
        status = 0
        parts = head.split(b" ", 2)
        if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
            status = int(parts[1])
        self.sent.append((label, status))
        return Reply(status, head, rest)


# -- SigV4 ------------------------------------------------------------------------------


def _enc(s: str, slash: bool) -> str:
    return quote(s, safe="-_.~/" if slash else "-_.~")


def canonical_query(raw_query: str) -> str:
    """The canonical query string lampi (and AWS) computes from the query as sent."""
    pairs = []
    for part in raw_query.split("&"):
        if part:
            k, _, v = part.partition("=")
            pairs.append((unquote(k), unquote(v)))
    return "&".join(f"{k}={v}" for k, v in sorted((_enc(k, False), _enc(v, False)) for k, v in pairs))


@dataclass
class S3Keys:
    access: str
    secret: str
    region: str = "us-east-1"

    def sign(self, method: str, raw_path: str, raw_query: str, host: str, payload: str) -> list[Header]:
        """``Authorization``, ``X-Amz-Date`` and ``X-Amz-Content-SHA256`` for a request; only
        host, x-amz-content-sha256 and x-amz-date are signed, so every other header may be
        anything and still reach the operation's parsers."""
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        day = amz_date[:8]
        signed = "host;x-amz-content-sha256;x-amz-date"
        cpath = _enc(unquote(raw_path), True)
        canonical = "\n".join((method, cpath, canonical_query(raw_query),
                               f"host:{host}\nx-amz-content-sha256:{payload}\nx-amz-date:{amz_date}\n",
                               signed, payload))
        scope = f"{day}/{self.region}/s3/aws4_request"
        sts = "\n".join(("AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()))
        k = hmac.new(("AWS4" + self.secret).encode(), day.encode(), hashlib.sha256).digest()
        for part in (self.region, "s3", "aws4_request"):
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
        return [("X-Amz-Date", amz_date), ("X-Amz-Content-SHA256", payload),
                ("Authorization", f"AWS4-HMAC-SHA256 Credential={self.access}/{scope}, "
                                  f"SignedHeaders={signed}, Signature={sig}")]


# -- strategies ------------------------------------------------------------------------------

# numbers as clients (and attackers) write them: huge, negative, signed, with
# underscores, non-ASCII digits, floats, hex — every one a classic int()/float() trap
NUMBER = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.integers(1, 6000).map(lambda n: "9" * n),
    st.sampled_from(["", " ", "0", "-1", "+1", "-0", "1_000", "0x1f", "1e9", "1e400", "1.5", "nan", "inf",
                     "-inf", "١٢٣", "１２", " 42 ", "\t7", "9223372036854775807", "9223372036854775808",
                     "18446744073709551616", "-9223372036854775809", "253402300800", "253402300799",
                     "9999999999", "10000000000", "4294967296", "99999999999999999999.5"]),
)
# text a header may carry: visible characters and spaces of any script (aiohttp refuses
# control characters itself, so a few of those, but mostly what reaches lampi)
TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40)
CONTROL = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=10)
# bytes that are not UTF-8 (obs-text): aiohttp hands them on as surrogate escapes
OBS_TEXT = st.lists(st.integers(0x20, 0xFF).filter(lambda b: b != 0x7F), max_size=30).map(bytes)
_DATES = [
    "Thu, 01 Jan 1970 00:00:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT", "Sat, 01 Jan 0001 00:00:00 GMT",
    "Mon, 99 Foo 99999 99:99:99 GMT", "Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
    "Sun Nov  6 08:49:37 1994", "Tue, 15 Nov 1994 08:12:31 +9999", "Tue, 15 Nov 1994 08:12:31 -0000",
    "2024-02-30T25:61:61Z", "20240101T000000Z", "99991231T235959Z", "00000101T000000Z", "1970-01-01T00:00:00Z",
    "10000-01-01T00:00:00Z", "2024-01-01T00:00:00.123456789+99:99", "2024-01-01", "-1", "0",
]
DATE = st.one_of(
    st.sampled_from(_DATES),
    st.integers(-(2**40), 2**40).map(lambda t: formatdate(max(-62135596800, min(t, 253402300799)), usegmt=True)),
    st.datetimes().map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")),
    st.datetimes().map(lambda d: d.strftime("%Y%m%dT%H%M%SZ")),
)
VALUE = st.one_of(NUMBER, TEXT, OBS_TEXT, DATE, CONTROL)


def values(*extra: str) -> st.SearchStrategy[str | bytes]:
    """Any header value, or one of ``extra`` (the meaningful ones)."""
    return st.one_of(VALUE, st.sampled_from(extra)) if extra else VALUE


def header_set(spec: dict[str, st.SearchStrategy[str | bytes]], max_size: int | None = None
               ) -> st.SearchStrategy[list[Header]]:
    """A random subset of the headers in ``spec``, each with a value from its strategy."""
    names = sorted(spec)
    return st.lists(st.sampled_from(names), unique=True, max_size=max_size or len(names)).flatmap(
        lambda chosen: st.tuples(*(st.tuples(st.just(n), spec[n]) for n in chosen)).map(list))


# a path segment: printable, control characters, percent signs, non-UTF-8 escapes
SEGMENT = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30).map(lambda s: quote(s, safe="")),
    st.binary(min_size=1, max_size=20).map(lambda b: quote(b, safe="")),
    st.sampled_from([".", "..", "%2e%2e", "%00", "%", "%zz", "a%0Ab", "a%0D%0Ab", "%C0%AE", "~", "x" * 1100]),
)
QUERY_VALUE = st.one_of(NUMBER, TEXT.map(lambda s: quote(s, safe="")), DATE.map(lambda s: quote(s, safe="")),
                        st.binary(max_size=20).map(lambda b: quote(b, safe="")),  # %0D%0A, %00, %FF...
                        st.sampled_from(["", "%", "%zz", "%FF", "a&b", "true", "false", "a%0D%0AX-Injected:%201"]))


def query(spec: list[str]) -> st.SearchStrategy[str]:
    """A query string of some of ``spec``'s keys (and a few strangers), raw."""
    key = st.one_of(st.sampled_from(spec), st.sampled_from(["", "%", "%FF", "a%00b"]), TEXT.map(quote))
    pair = st.tuples(key, st.one_of(st.none(), QUERY_VALUE)).map(lambda kv: kv[0] if kv[1] is None else f"{kv[0]}={kv[1]}")
    return st.lists(pair, max_size=6).map("&".join)


# -- JSON ------------------------------------------------------------------------------------

JSON_LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**80), 2**80), st.floats(),
    st.text(max_size=20),  # any code point, lone surrogates included (json.dumps escapes them)
    st.sampled_from(["", "\x00", "\ud800", "a\x00b", "/", "//", "/c/o", "AUTH_x", "9" * 5000]),
)
JSON_VALUE = st.recursive(JSON_LEAF, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                          max_leaves=12)


def deep(depth: int, kind: str) -> bytes:
    """Nesting no parser should recurse into: ``[[[...]]]`` or ``{"a":{"a":...}}``."""
    if kind == "list":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


DEEP_JSON = st.tuples(st.integers(100, 200_000), st.sampled_from(["list", "dict"])).map(lambda a: deep(*a))


def dumps(value: object) -> bytes:
    return json.dumps(value).encode("utf-8", "surrogatepass")


# -- XML -----------------------------------------------------------------------------------


def xml_body(vocabulary: dict[str, list[str]], root: str, leaf: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    """Documents shaped like an S3 request body: ``vocabulary[tag]`` lists the tags that
    may appear inside ``tag``; anything not in it is a text leaf. Broken on purpose
    sometimes (truncated, a DTD, an entity, deep, another root, not UTF-8)."""

    def tree(tag: str, depth: int) -> st.SearchStrategy[str]:
        kids = vocabulary.get(tag)
        if not kids or depth > 4:
            return leaf.map(lambda t: f"<{tag}>{_xml_escape(t)}</{tag}>")
        child = st.deferred(lambda: st.sampled_from(kids).flatmap(lambda k: tree(k, depth + 1)))
        return st.lists(child, max_size=4).map(lambda cs: f"<{tag}>{''.join(cs)}</{tag}>")

    ns = ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
    doc = tree(root, 0).map(lambda x: x.replace(f"<{root}>", f"<{root}{ns}>", 1))
    decl = '<?xml version="1.0" encoding="UTF-8"?>'

    def broken(x: str, how: int, at: int) -> bytes:
        if how == 0:
            return (decl + x).encode()[: at % (len(x) + 1)]
        if how == 1:
            return (f'<?xml version="1.0"?><!DOCTYPE {root} [<!ENTITY e "{"x" * 50}">]>' + x.replace("</", "&e;</", 1)).encode()
        if how == 2:
            return (decl + f"<{root}>" + "<a>" * (at % 5000) + "</a>" * (at % 5000) + f"</{root}>").encode()
        if how == 3:
            return x.encode("utf-16")
        if how == 4:
            return (decl + x).encode().replace(b">", b"\xff>", 1)
        return (decl + "<Other>" + x + "</Other>").encode()

    return st.one_of(
        doc.map(lambda x: (decl + x).encode()),
        st.tuples(doc, st.integers(0, 5), st.integers(0, 10_000)).map(lambda a: broken(*a)),
        st.binary(max_size=200),
    )


def _xml_escape(t: str) -> str:
    t = "".join(c for c in t if c in "\t\n\r" or (" " <= c and c not in "\ufffe\uffff" and not "\ud800" <= c <= "\udfff"))
    return t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# -- the server under fuzz ------------------------------------------------------------------------

class Env:
    """The server and what the fuzz needs of it (a plain class: hypothesis prints it with
    every falsifying example, a dataclass field by field)."""

    def __init__(self, server: LampiServer, http: RawClient, token: str, account: str, other_account: str,
                 user_id: str, keys: S3Keys) -> None:
        self.server, self.http, self.token, self.keys = server, http, token, keys
        self.account = account  # AUTH_<admin project id>
        self.other_account = other_account  # an account of its own, for account-level headers
        self.user_id = user_id
        self.upload_id = ""
        self.tag = uuid.uuid4().hex[:8]

    def __repr__(self) -> str:
        return f"Env(port={self.http.port})"

    def swift(self, method: str, path: str, headers: list = (), body: bytes = b"", *, label: str,  # noqa: ANN001
              token: bool = True, account: str | None = None) -> Reply:
        h = ([("X-Auth-Token", self.token)] if token else []) + list(headers)
        return self.http.request(method, f"/v1/{account or self.account}{path}", h, body, label=label)

    def s3(self, method: str, path: str, raw_query: str = "", headers: list = (), body: bytes = b"", *,  # noqa: ANN001
           label: str, payload: str | None = None) -> Reply:
        payload = payload if payload is not None else hashlib.sha256(body).hexdigest()
        signed = self.keys.sign(method, path, raw_query, self.http.host, payload)
        target = path + ("?" + raw_query if raw_query else "")
        return self.http.request(method, target, signed + list(headers), body, label=label)


def check(reply: Reply) -> None:
    """No server error: a 4xx (or success) for whatever was sent; 501 names an
    operation lampi does not implement."""
    assert reply.status != 0, "connection closed without an answer"
    assert reply.status < 500 or reply.status == 501, (reply.status, reply.head[:300], reply.body[:300])


def start_server(srv: LampiServer) -> None:
    """Start the server; on a loaded machine a health check may time out: wait longer."""
    try:
        srv.start(timeout=120)
    except requests.RequestException:
        deadline = time.monotonic() + 120
        while True:
            assert srv.proc is not None and srv.proc.poll() is None, srv.log()
            try:
                if requests.get(f"{srv.url}/healthcheck", timeout=30).status_code == 200:
                    return
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.2)


def populate(srv: LampiServer) -> Env:
    rc = srv.openrc()
    auth = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": rc["OS_USERNAME"], "domain": {"name": "Default"}, "password": rc["OS_PASSWORD"]}}},
        "scope": {"project": {"name": rc["OS_PROJECT_NAME"], "domain": {"name": "Default"}}}}}
    r = requests.post(f"{srv.url}/v3/auth/tokens", json=auth, timeout=60)
    r.raise_for_status()
    token, tok = r.headers["X-Subject-Token"], r.json()["token"]
    account = "AUTH_" + tok["project"]["id"]
    other = "AUTH_" + srv.cli("project", "create", "fuzzother").stdout.strip()
    cred = json.loads(srv.cli("credential", "create", rc["OS_USERNAME"], rc["OS_PROJECT_NAME"], "--json").stdout)
    keys = S3Keys(cred["access"], cred["secret"])
    s = requests.Session()
    s.headers["X-Auth-Token"] = token
    url = f"{srv.url}/v1/{account}"

    def ok(resp: requests.Response) -> None:
        assert resp.status_code < 300, (resp.status_code, resp.text)

    ok(s.post(url, headers={"X-Account-Meta-Temp-URL-Key": "fuzzkey"}))
    for c in ("fz", "fzc", "fzform", "fzs3", "fzcfg"):
        ok(s.put(f"{url}/{c}"))
    ok(s.post(f"{url}/fzform", headers={"X-Container-Meta-Temp-URL-Key": "formkey"}))
    ok(s.put(f"{url}/fz/obj", data=b"0123456789" * 10))
    for i in (1, 2):
        ok(s.put(f"{url}/fz/seg{i}", data=bytes([48 + i]) * 50))
    ok(s.put(f"{url}/fz/slo?multipart-manifest=put",
             data=json.dumps([{"path": f"/fz/seg{i}"} for i in (1, 2)])))
    ok(s.put(f"{url}/fz/dlo", data=b"", headers={"X-Object-Manifest": "fz/seg"}))
    ok(s.put(f"{url}/fz/link", data=b"", headers={"X-Symlink-Target": "fz/obj"}))
    http = RawClient(srv.port)
    e = Env(srv, http, token, account, other, tok["user"]["id"], keys)
    ok_s3 = e.s3("PUT", "/fzs3/obj", body=b"s3 object body", label="setup")
    assert ok_s3.status == 200, ok_s3
    created = e.s3("POST", "/fzs3/mpu", "uploads", label="setup")
    assert created.status == 200, created
    e.upload_id = created.body.split(b"<UploadId>")[1].split(b"</UploadId>")[0].decode()
    part = e.s3("PUT", "/fzs3/mpu", f"partNumber=1&uploadId={e.upload_id}", body=b"p" * 100, label="setup")
    assert part.status == 200, part
    return e


def report(srv: LampiServer, http: RawClient) -> None:
    """The server is alive and logged no unhandled error; print the tally."""
    errors = [(label, s) for label, s in http.sent if s >= 500 and s != 501]
    print(f"\nfuzz: {len(http.sent)} requests, {len(errors)} server errors {errors[:20]}")
    assert srv.proc is not None and srv.proc.poll() is None
    assert requests.get(f"{srv.url}/healthcheck", timeout=60).status_code == 200
    unhandled = [line for line in srv.log().splitlines() if '"unhandled error"' in line]
    assert not unhandled, unhandled[:3]


def framed(headers: list, body: bytes) -> tuple[list, bytes]:
    """A drawn Content-Length made honest: a small valid one gets that many bytes of body,
    a malformed one goes as is (the HTTP parser's 400), a huge valid one is left out (the
    server would wait for bytes that never come: a timeout test, not a parser's)."""
    out = []
    for k, v in headers:
        if k.lower() == "content-length":
            text = (v.decode("latin-1") if isinstance(v, bytes) else v).strip(" \t")
            if text.isascii() and text.isdigit():
                n = int(text) if len(text.lstrip("0")) <= 5 else 1 << 20
                if n > 65536:
                    continue
                body = (body or b"x") * (n // max(len(body), 1) + 1)
                body = body[:n]
        out.append((k, v))
    return out, body


def extra_headers() -> st.SearchStrategy[list]:
    """A few headers of any (token) name and any value."""
    name = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzABCXYZ0123456789-_!#$%&'*+.^`|~"), min_size=1, max_size=20)
    return st.lists(st.tuples(name, values()), max_size=3)


# -- Swift -------------------------------------------------------------------------------------

# values that broke some parser once: not UTF-8, "digits" int() refuses or accepts wrongly,
# too many digits for int(), far dates, deep JSON, a huge Range
NASTY = [b"\xff\xfe", b"fz/\xff", "caf\u00e9", "9" * 5000, "99999999999999999999", "-1", "\u00b2", "\u0661\u0662",
         "Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 01 Jan 0001 00:00:00 +9999", "bytes=0-" + "9" * 5000, "[" * 3000,
         '{"read-only":[' * 2000, "fz/%ff%00/%2e%2e", "fz/" + "a" * 8000]
# the same for query strings, as sent (percent-encoded): CR LF, NUL, bytes that are not
# UTF-8, a lone surrogate's UTF-8, "²" and "١", too many digits
NASTY_QUERY = ["%0D%0AX-Injected:%201", "%00", "%FF%FE", "%ED%A0%80", "%C2%B2", "%D9%A1", "9" * 5000,
               "99999999999999999999", "-1", "", "%", "%zz"]
