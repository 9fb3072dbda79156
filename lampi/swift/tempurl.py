"""TempURL: time-limited object URLs signed with account or container keys.

As OpenStack Swift's tempurl middleware: ``?temp_url_sig=<sig>&temp_url_expires=<t>``
(optional ``temp_url_prefix``, ``temp_url_ip_range``, ``filename``, ``inline``), the
HMAC body ``[ip=<range>\\n]<METHOD>\\n<expires>\\n[prefix:]<path>`` keyed by
``X-Account-Meta-Temp-URL-Key[-2]`` (whole account) or
``X-Container-Meta-Temp-URL-Key[-2]`` (that container). Signatures are hex (SHA1: 40,
SHA256: 64, SHA512: 128 digits) or ``<alg>:<base64>``. A HEAD may use a GET, PUT or
POST signature. Unlike Swift, whose 401 body is always "Temp URL invalid", the body
names the check that failed (Swift clients don't parse it).
"""

from __future__ import annotations

import base64
import binascii
import calendar
import hashlib
import hmac
import ipaddress
import os
import time
from urllib.parse import quote

from aiohttp import web

from lampi.http.context import ON_PREPARE, STORAGE, TEMPURL_SCOPE
from lampi.http.dates import http_date

METHODS = ("GET", "HEAD", "PUT", "POST", "DELETE")
ALLOWED_DIGESTS = ("sha1", "sha256", "sha512")
DISALLOWED_INCOMING_HEADERS = ("x-object-manifest", "x-symlink-target")
INCOMING_REMOVE_HEADERS = ("x-timestamp",)
OUTGOING_REMOVE_HEADERS = ("x-object-meta-*",)
OUTGOING_ALLOW_HEADERS = ("x-object-meta-public-*",)
HEX_LENGTHS = {40: "sha1", 64: "sha256", 128: "sha512"}
ISO8601 = "%Y-%m-%dT%H:%M:%SZ"


def info() -> dict[str, object]:
    """The ``tempurl`` section of ``GET /info``."""
    return {
        "methods": list(METHODS),
        "incoming_remove_headers": list(INCOMING_REMOVE_HEADERS),
        "incoming_allow_headers": [],
        "outgoing_remove_headers": list(OUTGOING_REMOVE_HEADERS),
        "outgoing_allow_headers": list(OUTGOING_ALLOW_HEADERS),
        "allowed_digests": list(ALLOWED_DIGESTS),
    }


class Invalid(Exception):
    """A rejected temp URL; the message says which check failed."""


def applies(request: web.Request) -> bool:
    q = request.query
    return request.method != "OPTIONS" and ("temp_url_sig" in q or "temp_url_expires" in q)


MAX_EXPIRES = 253402300799  # 9999-12-31T23:59:59Z: the last time an Expires header can name


def parse_expires(value: str) -> int:
    try:
        expires = int(value)
    except ValueError:
        try:
            return calendar.timegm(time.strptime(value, ISO8601))
        except ValueError:
            raise Invalid("temp_url_expires is neither a unix time nor ISO 8601 (%s)" % ISO8601) from None
    if expires > MAX_EXPIRES:  # the response's Expires header could not name it
        raise Invalid("temp_url_expires is after the year 9999")
    return expires


def decode_signature(sig: str) -> tuple[str, str]:
    """(algorithm, hex digest) of a hex or ``<alg>:<base64>`` signature."""
    if ":" in sig:
        alg, b64 = sig.split(":", 1)
        if ("-" in b64 or "_" in b64) and not ("+" in b64 or "/" in b64):
            b64 = b64.replace("-", "+").replace("_", "/")
        try:
            raw = base64.b64decode(b64 + "=" * (-len(b64) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise Invalid("signature is not valid base64") from None
        return alg.lower(), raw.hex()
    alg = HEX_LENGTHS.get(len(sig))
    if alg is None:
        raise Invalid("signature has an unknown length")
    return alg, sig.lower()


def signature(key: str, method: str, expires: int, path: str, alg: str, ip_range: str | None = None) -> str:
    body = f"{method}\n{expires}\n{path}"
    if ip_range:
        body = f"ip={ip_range}\n{body}"
    return hmac.new(key.encode(), body.encode(), getattr(hashlib, alg)).hexdigest()


GENERATOR = "X-Backend-Content-Generator"  # "staticweb" on a listing it made (not sent to clients)


def keys_from_meta(meta: dict[str, str]) -> list[str]:
    return [meta[k] for k in ("temp-url-key", "temp-url-key-2") if meta.get(k)]


async def authorize(
    request: web.Request, account: str, project_id: str, container: str | None, obj: str | None
) -> None:
    """Check the temp URL of ``request``; raise Invalid, or allow it and arrange the
    response headers (Content-Disposition, Expires, outgoing header removal)."""
    q = request.query
    sig = q.get("temp_url_sig", "")
    expires_s = q.get("temp_url_expires", "")
    if not sig:
        raise Invalid("temp_url_sig missing")
    if not expires_s:
        raise Invalid("temp_url_expires missing")
    expires = parse_expires(expires_s)
    if expires < time.time():
        raise Invalid("expired")
    alg, sig_hex = decode_signature(sig)
    if alg not in ALLOWED_DIGESTS:
        raise Invalid(f"digest {alg!r} not allowed")
    prefix = q.get("temp_url_prefix")
    if obj is None and container is not None and prefix == "" and request.method in ("GET", "HEAD"):
        obj = ""  # a container's root, for staticweb's listing (anything else is refused after)
    if request.method not in METHODS or container is None or obj is None:
        raise Invalid(f"not an object {'/'.join(METHODS)} request")
    ip_range = q.get("temp_url_ip_range")
    if ip_range:
        remote = request.remote or ""
        try:
            if ipaddress.ip_address(remote) not in ipaddress.ip_network(ip_range):
                raise Invalid("client address not in temp_url_ip_range")
        except ValueError:
            raise Invalid("bad temp_url_ip_range") from None
    storage = request.app[STORAGE]
    acct = await storage.account(project_id)
    scoped = [(k, "account") for k in keys_from_meta(acct.meta)]
    c = await storage.lookup(project_id, container)
    if c is not None and c.project_id == project_id:
        scoped += [(k, "container") for k in keys_from_meta(c.meta)]
    if not scoped:
        raise Invalid("no temp URL key configured")
    if prefix is None:
        tail = f"/v1/{account}/{container}/{obj}"
    else:
        if not obj.startswith(prefix):
            raise Invalid("object not under temp_url_prefix")
        tail = f"/v1/{account}/{container}/{prefix}"
    # a URL under Allas's /swift/v1 (the catalog's form) may be signed over the path as
    # requested or over its /v1 form, as RGW accepts both (rgw_swift_url_prefix)
    tails = [tail, "/swift" + tail] if request.raw_path.startswith("/swift/") else [tail]
    paths = [t if prefix is None else "prefix:" + t for t in tails]
    methods = ("HEAD", "GET", "POST", "PUT") if request.method == "HEAD" else (request.method,)
    valid = False
    for key, _scope in scoped:
        for m, path in ((m, path) for m in methods for path in paths):
            if hmac.compare_digest(signature(key, m, expires, path, alg, ip_range), sig_hex):
                valid = True
                # Swift's authorize_same_account / authorize_same_container: what the
                # URL's sub-requests (large-object segments) may read
                request.setdefault(TEMPURL_SCOPE, (_scope, container))
    if not valid:
        raise Invalid("signature does not match")
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        for h in DISALLOWED_INCOMING_HEADERS:
            if h in request.headers:
                raise web.HTTPBadRequest(text="The header %r is not allowed in this tempurl" % h.title())
    request.setdefault(ON_PREPARE, []).append(
        lambda resp: _outgoing(request, resp, expires, obj, q.get("filename"), "inline" in q))


_KEPT_QUERY = ("temp_url_sig", "temp_url_expires", "temp_url_prefix", "filename", "inline")


def strip_query(request: web.Request) -> web.Request:
    """The request as the API sees it after the temp URL was checked: Swift's tempurl
    rewrites the query string to its own parameters, so any other (``version-id``,
    ``multipart-manifest``, ``symlink``, ...) is ignored, as in Swift."""
    q = request.query
    if all(k in _KEPT_QUERY for k in q):
        return request
    kept = [(k, v) for k, v in q.items() if k in _KEPT_QUERY]
    return request.clone(rel_url=request.rel_url.with_query(kept))


def _disposition(kind: str, filename: str) -> str:
    return f"{kind}; filename=\"{quote(filename, safe='')}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _outgoing(request: web.Request, resp: web.StreamResponse, expires: int, obj: str,
              filename: str | None, inline: bool) -> None:
    for h in list(resp.headers):
        lh = h.lower()
        if lh.startswith("x-object-meta-") and not lh.startswith("x-object-meta-public-"):
            del resp.headers[h]
    if request.method in ("GET", "HEAD") and 200 <= resp.status < 300:
        existing = resp.headers.pop("Content-Disposition", None)
        if resp.headers.get(GENERATOR) == "staticweb":  # a staticweb listing is shown inline
            inline = True
        if inline:
            value = _disposition("inline", filename) if filename else "inline"
        elif filename:
            value = _disposition("attachment", filename)
        elif existing:
            value = existing
        else:
            value = _disposition("attachment", os.path.basename(obj.rstrip("/")))
        resp.headers["Content-Disposition"] = value.replace("\n", "%0A")
        resp.headers["Expires"] = http_date(expires)


def invalid_response(request: web.Request, reason: str) -> web.Response:
    body = None if request.method == "HEAD" else f"401 Unauthorized: Temp URL invalid: {reason}\n"
    resp = web.Response(status=401, text=body, content_type="text/plain", charset="UTF-8")
    resp.headers["Www-Authenticate"] = 'Swift realm="unknown"'
    return resp
