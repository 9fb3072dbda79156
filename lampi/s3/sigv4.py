"""S3 request authentication: SigV4 (header and presigned query) and SigV2 (header and query).

Keys are Keystone EC2 credentials. What a key resolves to (credential, user, project,
roles) is cached per worker and dropped whenever the store's identity generation moves
(a counter bumped in the same transaction as any credential, user, project or role
change, read without a thread hop by a read that began after the request arrived: the
requests that arrived together share one, lampi.store.meta.arrival), so a deleted key stops
working at once on every worker. A key acts as its user in its project with that
user's current roles.

On a signature mismatch the error carries the canonical request and string to sign
the server computed (as AWS does), so a proxy rewriting Host or the path shows up.
The canonical URI is AWS's ``UriEncode`` of the decoded path; the path exactly as
sent is tried as well, for clients that sign it unnormalised.
"""

from __future__ import annotations

import base64
import calendar
import functools
import hashlib
import hmac
import re
import inspect
import sqlite3
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote

from aiohttp import web

from lampi.core.authz import Principal
from lampi.core.hmacs import hmac_sha256_hex
from lampi.core.identity import implied_roles
from lampi.core.models import Credential
from lampi.store.meta import arrival
from lampi.http.context import IDENTITY
from lampi.s3.errors import S3Error, access_denied, invalid_argument
from lampi.s3.host import VHOST_BUCKET, host_candidates

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_SKEW = 15 * 60
MAX_PRESIGN_EXPIRES = 7 * 24 * 3600
UNSIGNED = "UNSIGNED-PAYLOAD"
_V4_PREFIX = ALGORITHM + " "

# SigV2: sub-resources that are part of the canonicalized resource (botocore's list)
V2_SUBRESOURCES = frozenset((
    "accelerate", "acl", "cors", "defaultObjectAcl", "location", "logging", "partNumber", "policy",
    "requestPayment", "torrent", "versioning", "versionId", "versions", "website", "uploads", "uploadId",
    "response-content-type", "response-content-language", "response-expires", "response-cache-control",
    "response-content-disposition", "response-content-encoding", "delete", "lifecycle", "tagging",
    "restore", "storageClass", "notification", "replication", "requestPayment", "analytics", "metrics",
    "inventory", "select", "select-type", "object-lock",
))


@dataclass(frozen=True, slots=True)
class Auth:
    principal: Principal
    credential: Credential
    version: int  # 2 or 4
    payload: str | None  # x-amz-content-sha256 as signed (v4), None for v2
    signing_key: bytes = b""
    scope: str = ""
    amz_date: str = ""
    signature: str = ""  # the seed signature for aws-chunked bodies


def wire(text: str) -> bytes:
    """``text`` as the bytes the client sent: aiohttp hands on header bytes that are not
    UTF-8 as surrogate escapes, and a signature covers the bytes (a plain ``encode()``
    would raise on them)."""
    return text.encode("utf-8", "surrogateescape")


def uri_encode(s: str, slash: bool = True) -> str:
    return quote(s, safe="-_.~/" if slash else "-_.~")


def _query_pairs(raw_query: str) -> list[tuple[str, str]]:
    out = []
    for part in raw_query.split("&"):
        if not part:
            continue
        k, _, v = part.partition("=")
        out.append((unquote(k), unquote(v)))
    return out


# Derived once per (secret, date, region, service), as AWS SDKs do: four HMACs saved
# per request. The key is a pure function of its arguments, so the cache cannot go
# stale; a deleted credential is refused before its key is looked up.
@functools.lru_cache(maxsize=1024)
def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    k = hmac.new(("AWS4" + secret).encode(), wire(date), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        k = hmac.new(k, wire(part), hashlib.sha256).digest()
    return k


def hmac_hex(key: bytes, msg: str) -> str:
    """HMAC-SHA256 of ``msg`` (its bytes as the client sent them) under ``key``, in hex."""
    return hmac_sha256_hex(key, wire(msg))


_PLAIN_PATH = re.compile(r"[A-Za-z0-9/_.~-]*")


def _canonical_paths(raw_path: str) -> tuple[str, ...]:
    """The canonical URIs to try: AWS's ``UriEncode`` of the decoded path, then the
    path as sent. A path of unreserved characters only is its own encoding (the common
    case: one candidate, no quote/unquote)."""
    if _PLAIN_PATH.fullmatch(raw_path):
        return (raw_path,)
    return tuple(dict.fromkeys((uri_encode(unquote(raw_path)), raw_path)))


def _split_target(request: web.Request) -> tuple[str, str]:
    raw = request.raw_path
    path, _, query = raw.partition("?")
    return path, query


def _canonical_headers(request: web.Request, signed: Sequence[str], host: str | None = None) -> str:
    headers = request.headers
    lines = []
    for name in signed:
        values = [host] if name == "host" and host is not None else headers.getall(name, ())
        if len(values) == 1:  # the common case, without a generator
            v = " ".join(values[0].split())
        else:
            v = ",".join(" ".join(x.split()) for x in values)
        lines.append(f"{name}:{v}\n")
    return "".join(lines)


@functools.lru_cache(maxsize=256)
def _signed_names(signed_headers: str) -> tuple[tuple[str, ...], str]:
    """SignedHeaders as the names to canonicalise (lower case) and as they are joined in
    the canonical request; a client sends the same list with every request."""
    names = tuple(h.strip().lower() for h in signed_headers.split(";") if h.strip())
    return names, ";".join(names)


# strptime costs ~15 µs; every request of the same second carries the same value
@functools.lru_cache(maxsize=256)
def _parse_amz_date(value: str) -> float | None:
    try:
        return float(calendar.timegm(time.strptime(value, "%Y%m%dT%H%M%SZ")))
    except ValueError:
        return None


def _parse_http_date(value: str) -> float | None:
    from email.utils import parsedate_to_datetime

    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _check_skew(t: float) -> None:
    now = time.time()
    if abs(now - t) > MAX_SKEW:
        raise S3Error(403, "RequestTimeTooSkewed",
                      "The difference between the request time and the current time is too large.",
                      RequestTime=_iso(t), ServerTime=_iso(now), MaxAllowedSkewMilliseconds="900000")


def is_s3_auth(request: web.Request) -> bool:
    """Does the request carry S3 credentials (header or query)?"""
    auth = request.headers.get("Authorization", "")
    if auth.startswith(ALGORITHM + " ") or auth.startswith("AWS "):
        return True
    q = request.query
    return "X-Amz-Algorithm" in q or "AWSAccessKeyId" in q or "X-Amz-Credential" in q


class _KeyCache:
    """Per worker: access key → (credential, principal), valid for one identity generation."""

    MAX = 10_000

    def __init__(self) -> None:
        self.gen: int | None = None
        self.entries: dict[str, tuple[Credential, Principal]] = {}
        self.latest = arrival.Latest()  # the generation as last read, for requests that arrived before


def _generation(request: web.Request, meta, cache: _KeyCache):  # noqa: ANN001, ANN202
    """The identity generation, as fresh as a read made now: the last one read, if that
    read began after this request arrived (lampi.store.meta.arrival: the requests that arrive
    together share one read, instead of one query each, and a change committed before
    a request arrived is still seen by it), else read anew. A coroutine for PostgreSQL."""
    if cache.latest.fresh_for(arrival.stamp()):
        return cache.latest.value
    number = arrival.begin()
    gen = meta.identity_generation()
    if type(gen) is not int and inspect.isawaitable(gen):  # SQLite's is read at once
        return _awaited(gen, number, cache)
    cache.latest.record(number, gen)
    return gen


async def _awaited(gen, number: int, cache: _KeyCache) -> int:  # noqa: ANN001
    value = await gen
    cache.latest.record(number, value)
    return value


_KEY_CACHES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # one per metadata store
# the store asked last and its cache: a worker has one store, so this spares the weak
# reference WeakKeyDictionary.get makes per lookup
_LAST_CACHE: list = [lambda: None, None]


async def _principal(request: web.Request, access: str) -> tuple[Credential, Principal]:
    """The key's credential and principal. Resolving them takes four metadata reads (four
    thread hops), ~15% of the event loop's time in an S3 HEAD; they are cached, keyed by the
    identity generation read *before* the reads, and stored only while the cache is still
    at that generation, so an entry is never older than the generation it is filed under.
    A change to any key, user, project or assignment empties the cache on the next request
    to arrive at every worker (``_generation``). Refusals are not cached."""
    ident = request.app[IDENTITY]
    meta = ident.meta
    gen: int | None = None
    cache: _KeyCache | None = None
    if hasattr(meta, "identity_generation"):
        last_meta, cache = _LAST_CACHE
        if last_meta() is not meta:
            cache = _KEY_CACHES.get(meta)
            if cache is None:
                cache = _KEY_CACHES[meta] = _KeyCache()
            _LAST_CACHE[:] = [weakref.ref(meta), cache]
        try:
            gen = _generation(request, meta, cache)
            if type(gen) is not int and inspect.isawaitable(gen):  # a shared database (PostgreSQL): one row read
                gen = await gen
        except sqlite3.Error:
            gen = None  # busy: resolve without the cache
        if gen is None:
            cache = None
        else:
            if cache.gen != gen:
                cache.entries.clear()
                cache.gen = gen
            hit = cache.entries.get(access)
            if hit is not None:
                return hit
    cred, principal = await _resolve_key(ident, access)
    if cache is not None and cache.gen == gen:
        if len(cache.entries) >= _KeyCache.MAX:
            cache.entries.clear()
        cache.entries[access] = (cred, principal)
    return cred, principal


async def _resolve_key(ident, access: str) -> tuple[Credential, Principal]:  # noqa: ANN001
    try:
        access.encode("utf-8")  # an Authorization header's bytes that are not UTF-8 name no key
    except UnicodeEncodeError:
        cred = None
    else:
        cred = await ident.meta.get_credential(access)
    if cred is None:
        raise S3Error(403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.",
                      AWSAccessKeyId=access)
    user = await ident.meta.get_user(cred.user_id)
    project = await ident.meta.get_project(cred.project_id)
    if user is None or project is None or not user.enabled or not project.enabled:
        raise access_denied()
    roles = implied_roles(tuple(await ident.meta.roles_for(cred.user_id, cred.project_id)))
    if not roles:
        raise access_denied()
    return cred, Principal(
        user_id=user.id, user_name=user.name, project_id=cred.project_id, roles=roles,
        is_cloud_admin=ident.is_cloud_admin(cred.project_id, roles), audit_id="ec2:" + access,
    )


def _mismatch(access: str, sts: str, provided: str, canonical: str | None) -> S3Error:
    extra = {"AWSAccessKeyId": access, "StringToSign": sts, "SignatureProvided": provided,
             "StringToSignBytes": " ".join(f"{b:02x}" for b in wire(sts))}
    if canonical is not None:
        extra["CanonicalRequest"] = canonical
        extra["CanonicalRequestBytes"] = " ".join(f"{b:02x}" for b in wire(canonical))
    return S3Error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the "
                   "signature you provided. Check your key and signing method.", **extra)


async def authenticate(request: web.Request) -> Auth | None:
    """Verify the request's S3 signature; None for an anonymous request."""
    header = request.headers.get("Authorization", "")
    if header.startswith(_V4_PREFIX):
        return await _v4(request, header=header)
    q = request.query
    if "X-Amz-Algorithm" in q or "X-Amz-Credential" in q:
        return await _v4(request, header=None)
    if header.startswith("AWS "):
        return await _v2(request, header=header)
    if "AWSAccessKeyId" in q:
        return await _v2(request, header=None)
    if header:
        raise invalid_argument("Unsupported Authorization Type", "Authorization", header.split(" ", 1)[0])
    return None


_KV = re.compile(r"\s*([A-Za-z]+)\s*=\s*([^,\s]*)\s*,?")


def _plain(value: str) -> bool:
    """No whitespace in ``value``: ``_KV`` takes such a value whole."""
    return value.isprintable() and " " not in value


def authorization_fields(text: str) -> tuple[str | None, str | None, str | None]:
    """Credential, SignedHeaders and Signature of a SigV4 ``Authorization`` header (the
    text after the algorithm), as ``_KV`` reads them. The form every SDK sends,
    ``Credential=..., SignedHeaders=..., Signature=...``, is split without the regex
    (a third of the time); anything else goes through it."""
    parts = text.split(",")
    if len(parts) == 3:
        a, b, c = parts[0].strip(), parts[1].strip(), parts[2].strip()
        if a.startswith("Credential=") and b.startswith("SignedHeaders=") and c.startswith("Signature="):
            a, b, c = a[11:], b[14:], c[10:]
            if _plain(a) and _plain(b) and _plain(c):
                return a, b, c
    fields = dict(_KV.findall(text))
    return fields.get("Credential"), fields.get("SignedHeaders"), fields.get("Signature")


async def _v4(request: web.Request, header: str | None) -> Auth:
    q = request.query
    if header is not None:
        credential, signed_headers, provided = authorization_fields(header[len(ALGORITHM):])
        amz_date = request.headers.get("X-Amz-Date") or ""
        if not amz_date and "Date" in request.headers:
            d = _parse_http_date(request.headers["Date"])
            amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(d)) if d is not None else ""
    else:
        if q.get("X-Amz-Algorithm") != ALGORITHM:
            raise S3Error(400, "AuthorizationQueryParametersError",
                          "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"")
        credential, signed_headers, provided = (q.get("X-Amz-Credential"), q.get("X-Amz-SignedHeaders"),
                                                q.get("X-Amz-Signature"))
        amz_date = q.get("X-Amz-Date", "")
    if not credential or not signed_headers or not provided:
        code = "AuthorizationHeaderMalformed" if header is not None else "AuthorizationQueryParametersError"
        raise S3Error(400, code, "The authorization header is malformed; it must contain Credential, "
                      "SignedHeaders and Signature." if header is not None else
                      "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
                      "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.")
    cparts = credential.split("/")
    if len(cparts) != 5 or cparts[4] != "aws4_request":
        raise S3Error(400, "AuthorizationHeaderMalformed",
                      "The authorization header is malformed; the Credential is mal-formed; "
                      "expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\".")
    access, date, region, service = cparts[:4]
    t = _parse_amz_date(amz_date) if amz_date else None
    if t is None:
        raise access_denied("AWS authentication requires a valid Date or x-amz-date header")
    if date != amz_date[:8]:
        raise S3Error(400, "AuthorizationHeaderMalformed", "The authorization header is malformed; Invalid "
                      f"credential date \"{date}\". This date is not the same as X-Amz-Date: \"{amz_date[:8]}\".")
    if header is not None:
        _check_skew(t)
        payload = request.headers.get("X-Amz-Content-SHA256")
        if payload is None:
            raise S3Error(400, "InvalidRequest", "Missing required header for this request: x-amz-content-sha256")
    else:
        try:
            expires = int(q.get("X-Amz-Expires", ""))
        except ValueError:
            raise S3Error(400, "AuthorizationQueryParametersError",
                          "X-Amz-Expires should be a number") from None
        # out of range: 403 AccessDenied, as RGW (Allas) answers (AWS: 400 AuthorizationQueryParametersError)
        if expires < 0:
            raise access_denied("X-Amz-Expires must be non-negative")
        if expires > MAX_PRESIGN_EXPIRES:
            raise access_denied("X-Amz-Expires must be less than a week (in seconds) that is 604800")
        now = time.time()
        if t - now > MAX_SKEW:
            raise access_denied("Request is not valid yet")
        if now > t + expires:
            raise S3Error(403, "AccessDenied", "Request has expired", **{
                "X-Amz-Expires": str(expires), "Expires": _iso(t + expires), "ServerTime": _iso(now)})
        payload = request.headers.get("X-Amz-Content-SHA256") or UNSIGNED
    cred, principal = await _principal(request, access)
    signed, signed_joined = _signed_names(signed_headers)
    if "host" not in signed:
        raise S3Error(400, "AuthorizationHeaderMalformed" if header is not None else
                      "AuthorizationQueryParametersError", "The host header must be signed")
    raw_path, raw_query = _split_target(request)
    if raw_query:
        pairs = [(k, v) for k, v in _query_pairs(raw_query) if header is not None or k != "X-Amz-Signature"]
        cquery = "&".join(f"{k}={v}" for k, v in sorted((uri_encode(k, False), uri_encode(v, False))
                                                         for k, v in pairs))
    else:
        cquery = ""
    scope = f"{date}/{region}/{service}/aws4_request"
    key = signing_key(cred.secret, date, region, service)
    first: tuple[str, str] | None = None
    # the host the client signed: Host, or X-Forwarded-Host from a trusted proxy, or
    # the public URL's host (a proxy rewriting Host without telling), see lampi.s3.host
    for host in host_candidates(request) or [""]:
        cheaders = _canonical_headers(request, signed, host)
        for cpath in _canonical_paths(raw_path):
            canonical = "\n".join((request.method, cpath, cquery, cheaders, signed_joined, payload))
            sts = "\n".join((ALGORITHM, amz_date, scope, hashlib.sha256(wire(canonical)).hexdigest()))
            sig = hmac_hex(key, sts)
            if hmac.compare_digest(sig, provided.lower()):
                return Auth(principal, cred, 4, payload, key, scope, amz_date, provided.lower())
            first = first or (canonical, sts)
    assert first is not None
    raise _mismatch(access, first[1], provided, first[0])


def _v2_string_to_sign(request: web.Request, date_value: str, raw_path: str) -> str:
    h = request.headers
    amz = {}
    for name in h:
        ln = name.lower()
        if ln.startswith("x-amz-"):
            amz[ln] = ",".join(" ".join(v.split()) for v in h.getall(name))
    _, raw_query = _split_target(request)
    sub = sorted((k, v) for k, v in _query_pairs(raw_query) if k in V2_SUBRESOURCES)
    resource = raw_path
    if sub:
        resource += "?" + "&".join(f"{k}={v}" if v != "" else k for k, v in sub)
    lines = [request.method, h.get("Content-MD5", ""), h.get("Content-Type", ""), date_value]
    lines += [f"{k}:{v}" for k, v in sorted(amz.items())]
    return "\n".join(lines) + "\n" + resource


async def _v2(request: web.Request, header: str | None) -> Auth:
    q = request.query
    if header is not None:
        access, sep, provided = header[4:].strip().rpartition(":")
        if not sep or not access:
            raise invalid_argument("AWS authorization header is invalid.  Expected AwsAccessKeyId:signature",
                                   "Authorization", header)
        # x-amz-date, when sent, is the request's time even if empty (AWS: AccessDenied then);
        # a time before the epoch is no valid date either, not a skew
        ds = request.headers.get("X-Amz-Date") if "X-Amz-Date" in request.headers else request.headers.get("Date")
        t = _parse_http_date(ds) if ds else None
        if t is None or t < 0:
            raise access_denied("AWS authentication requires a valid Date or x-amz-date header")
        _check_skew(t)
        date_value = "" if "X-Amz-Date" in request.headers else request.headers.get("Date", "")
    else:
        access, provided, exp = q.get("AWSAccessKeyId", ""), q.get("Signature", ""), q.get("Expires", "")
        if not provided or not exp:
            raise access_denied("Query-string authentication requires the Signature, Expires and "
                                "AWSAccessKeyId parameters")
        try:
            expires = int(exp)
        except ValueError:
            raise access_denied("Invalid date (should be seconds since epoch): " + exp) from None
        now = time.time()
        if now > expires:
            raise S3Error(403, "AccessDenied", "Request has expired", Expires=_iso(expires), ServerTime=_iso(now))
        date_value = exp
    cred, principal = await _principal(request, access)
    raw_path = _split_target(request)[0]
    vbucket = request.get(VHOST_BUCKET)
    if vbucket:  # virtual-hosted style: the resource still names the bucket
        raw_path = "/" + quote(vbucket) + raw_path
    paths = [raw_path]
    if raw_path.count("/") == 1 and raw_path != "/":
        paths.append(raw_path + "/")  # a bucket's resource is "/bucket/" (botocore signs it so)
    elif vbucket and raw_path.endswith("/") and raw_path.count("/") == 2:
        paths.append(raw_path[:-1])
    for path in paths:
        sts = _v2_string_to_sign(request, date_value, path)
        sig = base64.b64encode(hmac.new(cred.secret.encode(), wire(sts), hashlib.sha1).digest()).decode()
        if hmac.compare_digest(sig, provided):
            return Auth(principal, cred, 2, None)
    raise _mismatch(access, _v2_string_to_sign(request, date_value, raw_path), provided, None)


# for PostObject (lampi.s3.post), whose signature is a form field over the policy
key_principal = _principal
parse_amz_date = _parse_amz_date


ANONYMOUS = Principal(user_id="", user_name="", project_id=None)


def anonymous_auth() -> Auth:
    """The Auth of a request without credentials (reads of public buckets, object writes
    into public-read-write ones: ``check``)."""
    return Auth(principal=ANONYMOUS, credential=Credential(access="", secret="", user_id="", project_id=""),
                version=0, payload=None)


def is_anonymous(p: Principal) -> bool:
    return p is ANONYMOUS
