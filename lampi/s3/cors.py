"""Bucket CORS for S3: Get/Put/DeleteBucketCors, preflight ``OPTIONS`` without auth,
CORS headers on actual responses (errors and anonymous public links too).

Stored in hidden container metadata ``sys:s3-cors`` (JSON rules). How this relates to
Swift's ``X-Container-Meta-Access-Control-*`` (``lampi.swift.cors``):

* S3 URLs (``/<bucket>/...``, ``<bucket>.<s3_domain>``, the S3 port) answer from the
  bucket's S3 CORS rules. A bucket without S3 CORS rules but with Swift's
  ``Access-Control-Allow-Origin`` metadata is seen as one rule: those origins, methods
  GET/HEAD/PUT/POST/DELETE, any request header, Swift's max-age and expose headers.
* Swift URLs (``/v1/...``) answer from Swift's metadata only.
* Get/Put/DeleteBucketCors read and write the S3 rules only; Swift's metadata is
  changed by Swift POSTs only.
"""

from __future__ import annotations

import re

from aiohttp import web

from lampi.core.models import Container
from lampi.core.numbers import uint
from lampi.http.context import ON_PREPARE, STORAGE
from lampi.s3 import subconfig
from lampi.s3.errors import S3Error, error_response, malformed_xml
from lampi.s3.host import find_bucket
from lampi.s3.request import S3Request
from lampi.s3.xml import XMLError, element, parse, xml_doc

CORS_KEY = "sys:s3-cors"
MAX_CORS_BODY = 64 * 1024
MAX_RULES = 100  # as S3
METHODS = ("GET", "PUT", "HEAD", "POST", "DELETE")
SWIFT_METHODS = ["GET", "HEAD", "PUT", "POST", "DELETE"]

Rule = dict  # {"id", "origins", "methods", "headers", "expose", "max_age"}


def parse_config(raw: bytes) -> list[Rule]:
    """A CORSConfiguration document → rules; MalformedXML / InvalidRequest when invalid."""
    try:
        root = parse(raw, "CORSConfiguration")
    except XMLError:
        raise malformed_xml() from None
    rules: list[Rule] = []
    for r in root:
        if r.tag != "CORSRule":
            raise malformed_xml()
        rule: Rule = {"id": None, "origins": [], "methods": [], "headers": [], "expose": [], "max_age": None}
        for el in r:
            text = (el.text or "").strip()
            if el.tag == "AllowedOrigin":
                if text.count("*") > 1:
                    raise S3Error(400, "InvalidRequest", f'AllowedOrigin "{text}" can not have more than one '
                                  "wildcard.")
                rule["origins"].append(text)
            elif el.tag == "AllowedMethod":
                if text not in METHODS:
                    raise S3Error(400, "InvalidRequest", "Found unsupported HTTP method in CORS config. "
                                  f"Unsupported method is {text}")
                rule["methods"].append(text)
            elif el.tag == "AllowedHeader":
                if text.count("*") > 1:
                    raise S3Error(400, "InvalidRequest", f'AllowedHeader "{text}" can not have more than one '
                                  "wildcard.")
                rule["headers"].append(text)
            elif el.tag == "ExposeHeader":
                rule["expose"].append(text)
            elif el.tag == "MaxAgeSeconds":
                if not re.fullmatch(r"-?\d{1,10}", text):
                    raise malformed_xml()
                rule["max_age"] = int(text)
            elif el.tag == "ID":
                if rule["id"] is not None or len(text) > 255:
                    raise malformed_xml()
                rule["id"] = text
            else:
                raise malformed_xml()
        if not rule["origins"] or not rule["methods"]:
            raise malformed_xml()
        rules.append(rule)
    if not rules or len(rules) > MAX_RULES:
        raise malformed_xml()
    return rules


def render_config(rules: list[Rule]) -> bytes:
    out = []
    for r in rules:
        kids = [element("ID", r["id"])] if r.get("id") is not None else []
        kids += [element("AllowedHeader", h) for h in r["headers"]]
        kids += [element("AllowedMethod", m) for m in r["methods"]]
        kids += [element("AllowedOrigin", o) for o in r["origins"]]
        kids += [element("ExposeHeader", h) for h in r["expose"]]
        if r.get("max_age") is not None:
            kids.append(element("MaxAgeSeconds", r["max_age"]))
        out.append(element("CORSRule", kids))
    return xml_doc("CORSConfiguration", out)


def stored_rules(meta: dict[str, str]) -> list[Rule] | None:
    return subconfig.stored(meta, CORS_KEY)


def rules_of(meta: dict[str, str]) -> list[Rule]:
    """The rules S3 URLs answer with: the S3 rules, else Swift's metadata as one rule."""
    rules = stored_rules(meta)
    if rules is not None:
        return rules
    origins = meta.get("access-control-allow-origin", "").split()
    if not origins:
        return []
    max_age = meta.get("access-control-max-age", "").strip()
    return [{"id": None, "origins": origins, "methods": SWIFT_METHODS, "headers": ["*"],
             "expose": meta.get("access-control-expose-headers", "").split(),
             "max_age": uint(max_age)}]


def _wild(pattern: str, value: str, fold: bool) -> bool:
    if fold:
        pattern, value = pattern.lower(), value.lower()
    if "*" not in pattern:
        return pattern == value
    head, _, tail = pattern.partition("*")
    return len(value) >= len(head) + len(tail) and value.startswith(head) and value.endswith(tail)


def match(rules: list[Rule], origin: str, method: str, req_headers: list[str]) -> Rule | None:
    """The first rule allowing ``origin``, ``method`` and every requested header (S3's order)."""
    for r in rules:
        if not any(_wild(o, origin, fold=False) for o in r["origins"]):
            continue
        if method not in r["methods"]:
            continue
        if all(any(_wild(a, h, fold=True) for a in r["headers"]) for h in req_headers):
            return r
    return None


def _headers(rule: Rule, origin: str, req_headers: list[str] | None) -> dict[str, str]:
    wildcard = "*" in rule["origins"]
    h = {"Access-Control-Allow-Origin": "*" if wildcard else origin,
         "Access-Control-Allow-Methods": ", ".join(rule["methods"]),
         "Vary": "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"}
    if not wildcard:
        h["Access-Control-Allow-Credentials"] = "true"
    if req_headers:
        h["Access-Control-Allow-Headers"] = ", ".join(req_headers)
    if rule["expose"]:
        h["Access-Control-Expose-Headers"] = ", ".join(rule["expose"])
    if rule.get("max_age") is not None:
        h["Access-Control-Max-Age"] = str(rule["max_age"])
    return h


async def _bucket_meta(request: web.Request, bucket: str, project_id: str | None = None) -> dict[str, str] | None:
    """The metadata of ``bucket`` (as the request names it) seen by a caller of
    ``project_id`` (None: not known yet, or anonymous)."""
    if not bucket:
        return None
    c: Container | None = await find_bucket(request.app[STORAGE], bucket, project_id)
    return None if c is None else c.meta


async def preflight(request: web.Request, bucket: str, resource: str, request_id: str) -> web.Response:
    """``OPTIONS`` (no auth): 200 with the matching rule's headers, else an S3 error."""
    origin = request.headers.get("Origin")
    method = request.headers.get("Access-Control-Request-Method")
    asked = [h.strip().lower() for h in request.headers.get("Access-Control-Request-Headers", "").split(",")
             if h.strip()]
    try:
        if not origin:
            raise S3Error(400, "BadRequest", "Insufficient information. Origin request header needed.")
        if not method:
            raise S3Error(400, "BadRequest", "Invalid Access-Control-Request-Method: null")
        meta = await _bucket_meta(request, bucket)
        rules = rules_of(meta) if meta is not None else []
        if not rules:
            raise S3Error(403, "CORSResponse", "CORS is not enabled for this bucket.")
        rule = match(rules, origin, method, asked)
        if rule is None:
            raise S3Error(403, "CORSResponse", "This CORS request is not allowed. This is usually because the "
                          "evalution of Origin, request method / Access-Control-Request-Method or "
                          "Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.")
    except S3Error as err:
        return error_response(request, err, resource, request_id)
    return web.Response(status=200, headers=_headers(rule, origin, asked))


async def on_actual(request: web.Request, bucket: str, project_id: str | None = None) -> None:
    """Arrange CORS headers for a (non-OPTIONS) S3 request with ``Origin`` that a rule of
    ``bucket`` allows; on every response to it, errors included (as S3)."""
    origin = request.headers.get("Origin")
    if not origin or not bucket:
        return
    meta = await _bucket_meta(request, bucket, project_id)
    if meta is None:
        return
    # the method a rule must allow: Access-Control-Request-Method when sent, else the
    # request's own, as RGW (Allas) decides (RGWOp::generate_cors_headers)
    method = request.headers.get("Access-Control-Request-Method", "").strip() or request.method
    rule = match(rules_of(meta), origin, method, [])
    if rule is None:
        return
    headers = _headers(rule, origin, None)

    def add(resp: web.StreamResponse) -> None:
        for k, v in headers.items():
            if k not in resp.headers:  # the Swift public-link path may have set its own
                resp.headers[k] = v

    request.setdefault(ON_PREPARE, []).append(add)


# -- Get/Put/DeleteBucketCors ------------------------------------------------------------


async def get_bucket_cors(ctx: S3Request) -> web.StreamResponse:
    return await subconfig.get(ctx, stored_rules, render_config, "NoSuchCORSConfiguration",
                               "The CORS configuration does not exist")


async def put_bucket_cors(ctx: S3Request) -> web.StreamResponse:
    return await subconfig.put(ctx, CORS_KEY, parse_config, MAX_CORS_BODY)


async def delete_bucket_cors(ctx: S3Request) -> web.StreamResponse:
    return await subconfig.delete(ctx, CORS_KEY)
