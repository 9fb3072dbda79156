"""PostObject: browser form uploads (``POST /<bucket>`` with ``multipart/form-data``), as
AWS's "POST Object" and Ceph RGW (``RGWPostObj_ObjStore_S3``) do them.

The form is read with the shared streaming reader (``lampi.http.forms``): the fields
before the part named ``file`` (20 KiB at most, as AWS), then the file, streamed into
the storage core; fields after the file are ignored. Field names are case-insensitive.

Authentication is in the form: a base64 JSON *policy document* signed with the user's
EC2 secret — SigV2 (``AWSAccessKeyId``, ``signature`` = base64 HMAC-SHA1 of the policy)
or SigV4 (``x-amz-algorithm``, ``x-amz-credential``, ``x-amz-date``, ``x-amz-signature``
= hex HMAC-SHA256 of the policy with the SigV4 signing key). Without a policy the upload
is the request's own (anonymous, as a rule): allowed only where the bucket grants
anonymous writes. Either way the uploader then goes through PutObject's access decision
(``S3Request.get_bucket(write=True)``).

The policy (as RGW, ``rgw_policy_s3.cc``): ``expiration`` (ISO 8601) and ``conditions``
are required and case-sensitive; a condition is ``{"field": "value"}`` (exact match),
``["eq"|"starts-with", "$field", "value"]`` or ``["content-length-range", min, max]``;
operators and field names are case-insensitive, values case-sensitive. Every form field
must be covered by a condition except ``policy``, the signature fields, ``file``,
``x-ignore-*`` and ``x-amz-checksum-*``; ``bucket`` is always a field (the URL's bucket)
and ``key`` is checked after ``${filename}`` is substituted. A malformed policy is a 400
``InvalidPolicyDocument``; an expired one or a failed condition a 403 ``AccessDenied``.

The upload is then a PutObject in all but its transport: the form's fields stand for
PutObject's headers (``acl`` for ``x-amz-acl``, ``tagging`` for ``x-amz-tagging``, the
``x-amz-server-side-encryption*`` and ``x-amz-object-lock-*`` fields for the headers of
their names; the POST's own ``x-amz-*`` headers do not count, as the signature does not
cover them), and PutObject's helpers decide on that view (``_as_put``): the access
decision with the bucket policy and its conditions, PublicAccessBlock, the owner and ACL
as ObjectOwnership says, object lock, encryption (asked for, else the bucket's default),
versioning (a version, ``x-amz-version-id``).

The answer: ``success_action_redirect`` (or ``redirect``) → 303 to it with
``bucket``, ``key`` and ``etag`` added to the query; else ``success_action_status``
200 (empty), 201 (``PostResponse`` XML) or 204 (the default, also for any other value).
"""

from __future__ import annotations

import base64
import binascii
import calendar
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from aiohttp import web
from multidict import CIMultiDict

from lampi.core import quotas
from lampi.http import forms
from lampi.s3 import acl as s3acl
from lampi.s3 import checksums, objectlock, sigv4, tagging, versioning
from lampi.s3 import sse as s3sse
from lampi.s3.errors import S3Error, access_denied, invalid_argument, invalid_request, no_such_bucket
from lampi.s3.host import VHOST_BUCKET
from lampi.s3.object import _check_key as check_key
from lampi.s3.object import MAX_META_SIZE, checksum_sysmeta, version_header
from lampi.s3.request import S3Request
from lampi.s3.xml import element, xml_doc

MAX_FIELDS_BYTES = 20 * 1024  # AWS: the form fields before the file, together
SYS_FIELDS = ("content-disposition", "content-encoding", "content-language", "cache-control", "expires")
# fields no policy condition has to name (AWS's list, plus RGW's checksum fields)
_EXEMPT = frozenset(("policy", "file", "x-amz-signature", "signature", "awsaccesskeyid"))
_ISO_FORMATS = ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ")
# form fields that prove the uploader, not PutObject headers
_SIGNATURE_FIELDS = frozenset(("x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-signature",
                               "x-amz-security-token"))


def _invalid_policy(message: str) -> S3Error:
    return S3Error(400, "InvalidPolicyDocument", f"Invalid Policy: {message}")


def _denied_by_policy(message: str) -> S3Error:
    return access_denied(f"Invalid according to Policy: {message}")


def _missing_field(name: str) -> S3Error:
    return invalid_argument(f"Bucket POST must contain a field named '{name}'.  If it is specified, please check "
                            "the order of the fields.", name, "")


@dataclass
class Policy:
    expiration: float
    exact: list[tuple[str, str]] = field(default_factory=list)  # (field, value)
    starts: list[tuple[str, str]] = field(default_factory=list)  # (field, prefix)
    min_size: int = 0
    max_size: int | None = None


def _parse_expiration(value: object) -> float:
    if isinstance(value, str):
        for fmt in _ISO_FORMATS:
            try:
                return float(calendar.timegm(time.strptime(value, fmt)))
            except ValueError:
                continue
    raise _invalid_policy(f"Invalid 'expiration' value: '{value}'")


def _var(arg: object, cond: object) -> str:
    if not isinstance(arg, str) or not arg.startswith("$") or len(arg) < 2:
        raise _invalid_policy(f"Invalid Condition: {json.dumps(cond)}")
    return arg[1:].lower()


def _value(arg: object, cond: object) -> str:
    if isinstance(arg, bool) or not isinstance(arg, (str, int)):
        raise _invalid_policy(f"Invalid Condition: {json.dumps(cond)}")
    return str(arg)


def _size(arg: object) -> int:
    if isinstance(arg, bool):
        raise _invalid_policy("Invalid content-length-range")
    try:
        n = int(arg) if isinstance(arg, (int, str)) else -1
    except ValueError:
        n = -1
    if n < 0:
        raise _invalid_policy("Invalid content-length-range")
    return n


def parse_policy(encoded: str) -> Policy:
    """The base64 JSON policy document; 400 InvalidPolicyDocument when it is not one."""
    try:
        raw = base64.b64decode(encoded.strip(), validate=True)
        doc = json.loads(raw)
    except (binascii.Error, ValueError):
        raise _invalid_policy("Invalid JSON.") from None
    if not isinstance(doc, dict):
        raise _invalid_policy("Invalid JSON.")
    if "expiration" not in doc:  # case-sensitive, as AWS
        raise _invalid_policy("Policy missing expiration.")
    policy = Policy(_parse_expiration(doc["expiration"]))
    conditions = doc.get("conditions")
    if not isinstance(conditions, list):
        raise _invalid_policy("Policy missing conditions.")
    for cond in conditions:
        if isinstance(cond, dict):
            if len(cond) != 1:
                raise _invalid_policy("Invalid Simple-Condition: Simple-Conditions must have exactly one property "
                                      "specified.")
            (name, value), = cond.items()
            policy.exact.append((name.lower(), _value(value, cond)))
        elif isinstance(cond, list):
            if len(cond) != 3 or not isinstance(cond[0], str):
                raise _invalid_policy(f"Invalid Condition: {json.dumps(cond)}")
            op = cond[0].lower()
            if op == "eq":
                policy.exact.append((_var(cond[1], cond), _value(cond[2], cond)))
            elif op == "starts-with":
                policy.starts.append((_var(cond[1], cond), _value(cond[2], cond)))
            elif op == "content-length-range":
                lo, hi = _size(cond[1]), _size(cond[2])
                if lo > hi:
                    raise _invalid_policy("Invalid content-length-range")
                policy.min_size = max(policy.min_size, lo)
                policy.max_size = hi if policy.max_size is None else min(policy.max_size, hi)
            else:
                raise _invalid_policy(f"Invalid Condition: {json.dumps(cond)}")
        else:
            raise _invalid_policy(f"Invalid Condition: {json.dumps(cond)}")
    return policy


def check_policy(policy: Policy, env: dict[str, str], exempt: frozenset[str]) -> None:
    """403 unless the policy is current, its conditions hold for the form fields ``env``
    (lower-case names) and it names every field that is not ``exempt``."""
    if policy.expiration <= time.time():
        raise _denied_by_policy("Policy expired.")
    covered = set()
    for name, want in policy.exact:
        covered.add(name)
        if env.get(name, "") != want:
            raise _denied_by_policy(f'Policy Condition failed: ["eq", "${name}", "{want}"]')
    for name, prefix in policy.starts:
        covered.add(name)
        if not env.get(name, "").startswith(prefix):
            raise _denied_by_policy(f'Policy Condition failed: ["starts-with", "${name}", "{prefix}"]')
    extra = [n for n in env if n not in covered and n not in exempt and not n.startswith(("x-ignore-",
                                                                                          "x-amz-checksum-"))]
    if extra:
        raise _denied_by_policy("Extra input fields: " + ", ".join(extra))


async def _form_auth(ctx: S3Request, fields: dict[str, str]) -> tuple[sigv4.Auth, frozenset[str]]:
    """The uploader named and proven by the form's signature of its policy."""
    policy = fields["policy"]
    algorithm = fields.get("x-amz-algorithm")
    if algorithm is not None:
        if algorithm != sigv4.ALGORITHM:
            raise invalid_argument("Only AWS4-HMAC-SHA256 is supported for x-amz-algorithm", "x-amz-algorithm",
                                   algorithm)
        for name in ("x-amz-credential", "x-amz-signature", "x-amz-date"):
            if not fields.get(name):
                raise _missing_field(name)
        parts = fields["x-amz-credential"].split("/")
        if len(parts) != 5 or parts[4] != "aws4_request":
            raise invalid_argument("Invalid credential: expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/"
                                   "aws4_request\"", "x-amz-credential", fields["x-amz-credential"])
        access, date, region, service = parts[:4]
        amz_date = fields["x-amz-date"]
        if sigv4.parse_amz_date(amz_date) is None or amz_date[:8] != date:
            raise invalid_argument("Invalid x-amz-date: it must be YYYYMMDD'T'HHMMSS'Z' of the credential's date",
                                   "x-amz-date", amz_date)
        cred, principal = await sigv4.key_principal(ctx.request, access)
        key = sigv4.signing_key(cred.secret, date, region, service)
        expected = sigv4.hmac_hex(key, policy)
        provided = fields["x-amz-signature"].lower()
        version, exempt = 4, frozenset(("policy", "file", "x-amz-signature"))
    else:
        for name in ("AWSAccessKeyId", "signature"):
            if not fields.get(name.lower()):
                raise _missing_field(name)
        access = fields["awsaccesskeyid"]
        cred, principal = await sigv4.key_principal(ctx.request, access)
        expected = base64.b64encode(hmac.new(cred.secret.encode(), sigv4.wire(policy), hashlib.sha1).digest()).decode()
        provided = fields["signature"]
        version, exempt = 2, frozenset(("policy", "file", "signature", "awsaccesskeyid"))
    if not hmac.compare_digest(expected.encode(), sigv4.wire(provided)):
        raise S3Error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the "
                      "signature you provided. Check your key and signing method.", AWSAccessKeyId=access)
    if fields.get("x-amz-security-token"):
        raise S3Error(400, "InvalidToken", "The provided token is malformed or otherwise invalid.")
    return sigv4.Auth(principal, cred, version, None), exempt


async def _read_fields(form: forms.Form) -> tuple[dict[str, str], forms.Part | None]:
    fields: dict[str, str] = {}
    total = 0
    while True:
        part = await form.next()
        if part is None:
            return fields, None
        name = part.name.lower()
        if name == "file":
            return fields, part
        data, over = await part.value(MAX_FIELDS_BYTES - total + 1)
        total += len(data) + len(part.name)
        if over or total > MAX_FIELDS_BYTES:
            raise S3Error(400, "MaxPostPreDataLengthExceeded",
                          "Your POST request fields preceding the upload file were too large.",
                          MaxPostPreDataLength=str(MAX_FIELDS_BYTES))
        try:
            fields[name] = data.decode("utf-8")
        except UnicodeDecodeError:
            raise invalid_argument(f"The form field {part.name!r} is not valid UTF-8") from None


def _user_meta(fields: dict[str, str]) -> dict[str, str]:
    meta = {k[len("x-amz-meta-"):]: v for k, v in fields.items()
            if k.startswith("x-amz-meta-") and len(k) > len("x-amz-meta-")}
    size = sum(len(k.encode()) + len(v.encode()) for k, v in meta.items())
    if size > MAX_META_SIZE:
        raise S3Error(400, "MetadataTooLarge", "Your metadata headers exceed the maximum allowed metadata size.",
                      Size=str(size), MaxSizeAllowed=str(MAX_META_SIZE))
    return meta


def _redirect_url(fields: dict[str, str]) -> str | None:
    url = fields.get("success_action_redirect") or fields.get("redirect")
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c in url for c in "\r\n"):
        return None  # as AWS: an unusable redirect is ignored (success_action_status applies)
    return url


async def post_object(ctx: S3Request) -> web.StreamResponse:
    request = ctx.request
    if not forms.is_form(request.headers.get("Content-Type", "")):
        raise S3Error(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold",
                      Condition="Bucket POST must be of the enclosure-type multipart/form-data")
    if (not ctx.storage.per_project or ctx.scope is not None) and await ctx.lookup() is None:
        # (per project, an unsigned request names its bucket's project by <project_id>:<bucket>,
        # else the form's signer does: the bucket is looked up with the upload's credentials)
        raise no_such_bucket(ctx.bucket)
    try:
        form = await forms.Form.open(request)
        fields, file_part = await _read_fields(form)
    except forms.MalformedForm:
        raise _malformed() from None
    if file_part is None:
        raise invalid_argument("POST requires exactly one file upload per request.", "file", "0")
    if "key" not in fields:
        raise _missing_field("key")
    filename = (file_part.filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    key = fields["key"].replace("${filename}", filename)
    if not key:
        raise invalid_argument("User key must have a length greater than 0.", "key", "")
    check_key(key)
    # who uploads: the form's signed policy, else the request's own credentials (none, as a rule)
    policy = None
    if "policy" in fields:
        auth, exempt = await _form_auth(ctx, fields)
        policy = parse_policy(fields["policy"])
        env = dict(fields)
        env["bucket"], env["key"] = ctx.bucket, key
        check_policy(policy, env, exempt)
    elif any(k in fields for k in ("awsaccesskeyid", "signature", "x-amz-credential", "x-amz-signature")):
        raise _missing_field("policy")
    else:
        auth = ctx.auth
    tags = tagging.from_xml(fields["tagging"].encode()) if "tagging" in fields else None
    upload = S3Request(_as_put(request, fields, tags), auth, ctx.bucket, key, ctx.request_id, ctx.check,
                       tenant=ctx.tenant, operation=ctx.operation)
    # PutObject's decisions, in PutObject's order, on the form's fields as its headers
    bucket = await upload.get_bucket(write=True)  # bucket policy (and its conditions), ACLs
    sysmeta = {k: fields[k] for k in SYS_FIELDS if fields.get(k)}
    if tags is not None:
        sysmeta = tagging.apply(sysmeta, tags)
    sysmeta.update(await s3acl.put_object_sysmeta(upload, bucket))  # owner, ACL, PublicAccessBlock
    sysmeta.update(objectlock.request_sysmeta(upload, bucket))
    enc = await s3sse.for_write(upload, bucket)  # encryption asked for (else the bucket's default, in the core)
    meta = _user_meta(fields)
    found = [a for a in checksums.ALGORITHMS if f"x-amz-checksum-{a}" in fields]
    if len(found) > 1:
        raise invalid_request("Expecting a single x-amz-checksum- field. Multiple checksum Types are not allowed.")
    checksum_alg = found[0] if found else None
    if checksum_alg and not checksums.valid_value(checksum_alg, fields[f"x-amz-checksum-{checksum_alg}"]):
        raise invalid_request(f"Value for x-amz-checksum-{checksum_alg} header is invalid.")

    max_object = ctx.settings.max_object_size
    max_size = max_object if policy is None or policy.max_size is None else min(policy.max_size, max_object)
    min_size = policy.min_size if policy is not None else 0
    allowance = await quotas.check_quota(ctx.storage.meta, quotas.QuotaDefaults.from_settings(ctx.settings),
                                         bucket.project_id, bucket.key, None)

    async def body() -> AsyncIterator[bytes]:
        hasher = checksums.new(checksum_alg) if checksum_alg else None
        total = 0
        try:
            async for chunk in file_part.chunks():
                total += len(chunk)
                if total > max_size:
                    raise S3Error(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size",
                                  MaxSizeAllowed=str(max_size))
                if hasher is not None:
                    hasher.update(chunk)
                yield chunk
        except forms.MalformedForm:
            raise _malformed() from None
        if total < min_size:
            raise S3Error(400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size",
                          ProposedSize=str(total), MinSizeAllowed=str(min_size))
        if hasher is not None:
            got = checksums.encode(hasher.digest())
            if got != fields[f"x-amz-checksum-{checksum_alg}"]:
                raise S3Error(400, "BadDigest", f"The {(checksum_alg or '').upper()} you specified did not match "
                              "the calculated checksum.")
            sysmeta.update(checksum_sysmeta({f"x-amz-checksum-{checksum_alg}": got}))

    rec = await ctx.storage.put_object(
        bucket.key, key, quotas.limit_body(body(), allowance),
        content_type=fields.get("content-type") or "binary/octet-stream",
        meta=meta, sysmeta=sysmeta, max_size=max_size,
        encryption=enc.encryption, null_write=versioning.versioned(bucket.meta),
    )
    etag = f'"{rec.etag}"'
    location = _location(request, ctx.bucket, key)
    headers = {"ETag": etag, "Location": location, **version_header(rec),
               **s3sse.response_headers(rec.sysmeta, enc.customer)}
    redirect = _redirect_url(fields)
    if redirect is not None:
        sep = "&" if urlsplit(redirect).query else ("" if redirect.endswith("?") else "?")
        target = redirect + sep + f"bucket={quote(ctx.bucket, safe='')}&key={quote(key, safe='')}" \
            f"&etag={quote(etag, safe='')}"
        headers["Location"] = target
        return web.Response(status=303, headers=headers)
    status = fields.get("success_action_status", "").strip()
    if status == "201":
        doc = xml_doc("PostResponse", [element("Location", location), element("Bucket", ctx.bucket),
                                       element("Key", key), element("ETag", etag)],
                      namespace=False)  # as AWS's PostResponse (clients look up <Key> unqualified)
        return web.Response(status=201, body=doc, content_type="application/xml", headers=headers)
    if status == "200":
        return web.Response(status=200, headers=headers)
    return web.Response(status=204, headers=headers)


def _as_put(request: web.Request, fields: dict[str, str], tags: tagging.Tags | None) -> web.Request:
    """The request as PutObject's helpers read it: the form's fields as the headers
    PutObject takes (``acl`` → ``x-amz-acl``, ``tagging`` → ``x-amz-tagging``, the
    ``x-amz-*`` fields by their names) in place of the POST's own ``x-amz-*`` headers."""
    headers = CIMultiDict((k, v) for k, v in request.headers.items()
                          if not k.lower().startswith("x-amz-") or k.lower() == "x-amz-expected-bucket-owner")
    for name, value in fields.items():
        if name.startswith("x-amz-") and name not in _SIGNATURE_FIELDS and not name.startswith(
                ("x-amz-meta-", "x-amz-checksum-")):
            headers[name] = value
    if "acl" in fields:
        headers["x-amz-acl"] = fields["acl"]
    if tags:
        headers["x-amz-tagging"] = tagging.encode(tags)
    return request.clone(headers=headers)


def _malformed() -> S3Error:
    return S3Error(400, "MalformedPOSTRequest", "The body of your POST request is not well-formed "
                   "multipart/form-data.")


def _location(request: web.Request, bucket: str, key: str) -> str:
    base = f"{request.scheme}://{request.host}"
    if request.get(VHOST_BUCKET):
        return f"{base}/{quote(key)}"
    return f"{base}/{quote(bucket)}/{quote(key)}"
