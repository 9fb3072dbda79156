"""S3 server-side encryption: the request headers, their checks and error codes, the
response headers, and Put/Get/DeleteBucketEncryption. The encryption itself (blob
format, data keys, key store) is ``lampi.core.sse``.

* SSE-C: ``x-amz-server-side-encryption-customer-algorithm`` (AES256), ``-key`` (base64
  of 32 bytes) and ``-key-MD5`` (base64 MD5 of the key, checked) on PutObject,
  CreateMultipartUpload, every UploadPart and UploadPartCopy, CompleteMultipartUpload,
  and every GetObject/HeadObject of the object; ``x-amz-copy-source-server-side-
  encryption-customer-*`` for the source of CopyObject and UploadPartCopy. Refused over
  plain HTTP unless ``sse_c_require_tls`` is off (a trusted proxy's
  ``X-Forwarded-Proto: https`` counts as HTTPS).
* SSE-S3: ``x-amz-server-side-encryption: AES256``.
* SSE-KMS: ``x-amz-server-side-encryption: aws:kms`` with
  ``x-amz-server-side-encryption-aws-kms-key-id`` naming a key of the local key store
  (``lampi kms create``); without a key id, the bucket default's key if it has one.
* The bucket's default (``PutBucketEncryption``) applies when a write names none.

No encryption header is accepted and then ignored: what lampi cannot honour is refused
(``x-amz-server-side-encryption-context`` and ``aws:kms:dsse``: 501), and GetObject or
HeadObject with ``x-amz-server-side-encryption*`` (which S3 takes only on writes) is a
400, as in S3.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass, field

from aiohttp import web

from lampi.core import sse
from lampi.core.models import Container, MultipartUpload
from lampi.s3 import body as s3body
from lampi.s3 import policy as s3policy
from lampi.s3.errors import S3Error, invalid_argument, invalid_request, malformed_xml
from lampi.s3.host import forwarded_https
from lampi.s3.request import S3Request
from lampi.s3.xml import XMLError, element, parse, xml_doc, xml_response

ALGORITHM = "x-amz-server-side-encryption"
KMS_KEY_ID = "x-amz-server-side-encryption-aws-kms-key-id"
CONTEXT = "x-amz-server-side-encryption-context"
BUCKET_KEY = "x-amz-server-side-encryption-bucket-key-enabled"
CUSTOMER = "x-amz-server-side-encryption-customer-"
COPY_SOURCE_CUSTOMER = "x-amz-copy-source-server-side-encryption-customer-"
SERVER_HEADERS = (ALGORITHM, KMS_KEY_ID, CONTEXT, BUCKET_KEY)
MAX_CONFIG_BODY = 64 * 1024


@dataclass(frozen=True)
class CustomerKey:
    """An SSE-C key as sent (checked against its MD5)."""

    key: bytes = field(repr=False)
    md5: str  # base64, as the client sent it (echoed)


@dataclass(frozen=True)
class WriteEncryption:
    """What a write's headers ask for: None to leave it to the bucket default."""

    encryption: sse.Encryption | None = None
    customer: CustomerKey | None = None


def _secure(request: web.Request) -> bool:
    return request.secure or forwarded_https(request)


def customer_key(ctx: S3Request, prefix: str = CUSTOMER) -> CustomerKey | None:
    """The SSE-C key of the request (``prefix``: the object's, or the copy source's), or
    None when it sends none; S3's 400s for an incomplete or inconsistent one."""
    h = ctx.request.headers
    alg, key_b64, md5_b64 = h.get(prefix + "algorithm"), h.get(prefix + "key"), h.get(prefix + "key-MD5")
    if alg is None and key_b64 is None and md5_b64 is None:
        return None
    if ctx.settings.sse_c_require_tls and not _secure(ctx.request):
        raise invalid_request("Requests specifying Server Side Encryption with Customer provided keys must be made "
                              "over a secure connection.")
    need = "Requests specifying Server Side Encryption with Customer provided keys must provide "
    if alg is None:
        raise invalid_argument(need + "a valid encryption algorithm.", prefix + "algorithm", "null")
    if alg.strip() != "AES256":
        raise S3Error(400, "InvalidEncryptionAlgorithmError", "The Encryption request you specified is not valid. "
                      "Supported value: AES256.", ArgumentName=prefix + "algorithm", ArgumentValue=alg)
    if key_b64 is None:
        raise invalid_argument(need + "an appropriate secret key.", prefix + "key", "null")
    if md5_b64 is None:
        raise invalid_argument(need + "the client calculated MD5 of the secret key.", prefix + "key-MD5", "null")
    try:
        key = base64.b64decode(key_b64.strip().encode("ascii"), validate=True)
    except (binascii.Error, UnicodeError):
        key = b""
    if len(key) != sse.KEY_BYTES:
        raise invalid_argument("The secret key was invalid for the specified algorithm.", prefix + "key", "")
    try:
        given = base64.b64decode(md5_b64.strip().encode("ascii"), validate=True)
    except (binascii.Error, UnicodeError):
        given = b""
    if not hmac.compare_digest(hashlib.md5(key).digest(), given):
        raise invalid_argument("The calculated MD5 hash of the key did not match the hash that was provided.",
                               prefix + "key-MD5", md5_b64)
    return CustomerKey(key, md5_b64.strip())


def _incompatible(name: str, value: str) -> S3Error:
    return invalid_argument("Server Side Encryption with Customer provided key is incompatible with the encryption "
                            "method specified", name, value)


def _bucket_key(value: str | None) -> None:
    if value is not None and value.strip().lower() not in ("true", "false"):
        raise invalid_argument("The value of x-amz-server-side-encryption-bucket-key-enabled must be true or false",
                               BUCKET_KEY, value)


async def for_write(ctx: S3Request, bucket: Container) -> WriteEncryption:
    """The encryption a write (PutObject, CopyObject, CreateMultipartUpload) asks for."""
    h = ctx.request.headers
    ck = customer_key(ctx)
    alg, kms = h.get(ALGORITHM), h.get(KMS_KEY_ID)
    if ck is not None:
        for name in SERVER_HEADERS:
            if name in h:
                raise _incompatible(name, h[name])
        return WriteEncryption(sse.Encryption(sse.SSE_C, customer_key=ck.key), ck)
    if alg is None:
        for name in (KMS_KEY_ID, CONTEXT, BUCKET_KEY):
            if name in h:
                raise invalid_argument(f"{name} is only valid with the header x-amz-server-side-encryption: aws:kms",
                                       name, h[name])
        return WriteEncryption()
    alg = alg.strip()
    if alg == sse.SSE_S3:
        for name in (KMS_KEY_ID, CONTEXT, BUCKET_KEY):
            if name in h:
                raise invalid_argument(f"{name} is only valid with the header x-amz-server-side-encryption: aws:kms",
                                       name, h[name])
        return WriteEncryption(sse.Encryption(sse.SSE_S3))
    if alg == sse.SSE_KMS:
        if CONTEXT in h:
            raise S3Error(501, "NotImplemented", "x-amz-server-side-encryption-context (a KMS encryption context) "
                          "is not supported by this server.", Header=CONTEXT)
        _bucket_key(h.get(BUCKET_KEY))  # accepted: it saves KMS requests, which this server does not make
        key_id = (kms or "").strip()
        if not key_id:
            default = sse.bucket_default(bucket.meta)
            key_id = str(default.get("KMSMasterKeyID") or "") if default and default["SSEAlgorithm"] == sse.SSE_KMS \
                else ""
        if not key_id:
            raise invalid_argument("Server Side Encryption with KMS managed key requires the header "
                                   "x-amz-server-side-encryption-aws-kms-key-id: this server has no default KMS "
                                   "key", KMS_KEY_ID, "null")
        await _check_kms(ctx, key_id)
        return WriteEncryption(sse.Encryption(sse.SSE_KMS, key_id))
    if alg == "aws:kms:dsse":
        raise S3Error(501, "NotImplemented", "Dual-layer server-side encryption (aws:kms:dsse) is not implemented "
                      "by this server: use aws:kms or AES256.", Header=ALGORITHM)
    raise invalid_argument("The encryption method specified is not supported", ALGORITHM, alg)


async def _check_kms(ctx: S3Request, key_id: str) -> None:
    if not await ctx.storage.encryption_keys().akms_exists(key_id):
        raise S3Error(400, "KMS.NotFoundException", f"Invalid keyId {key_id}")


def refuse_on_read(ctx: S3Request) -> None:
    """GetObject/HeadObject: S3 takes ``x-amz-server-side-encryption*`` on writes only."""
    for name in SERVER_HEADERS:
        if name in ctx.request.headers:
            raise invalid_argument(f"{name} header is not supported for this operation.", name,
                                   ctx.request.headers[name])


def for_upload(ctx: S3Request, upload: MultipartUpload) -> CustomerKey | None:
    """UploadPart, UploadPartCopy, CompleteMultipartUpload: the parts are encrypted as
    the upload is. Its SSE-C key is required (and checked by the core); SSE-S3/KMS
    headers, if sent, must say what CreateMultipartUpload said."""
    h = ctx.request.headers
    ck = customer_key(ctx)
    mode = sse.mode_of(upload.sysmeta)
    if ck is not None:
        for name in SERVER_HEADERS:
            if name in h:
                raise _incompatible(name, h[name])
    if CONTEXT in h:
        raise S3Error(501, "NotImplemented", "x-amz-server-side-encryption-context (a KMS encryption context) is not "
                      "supported by this server.", Header=CONTEXT)
    alg, kms = h.get(ALGORITHM), h.get(KMS_KEY_ID)
    if alg is not None and alg.strip() != mode:
        raise invalid_argument("The encryption method specified does not match the one the multipart upload was "
                               "initiated with.", ALGORITHM, alg)
    if kms is not None and (mode != sse.SSE_KMS or kms.strip() != upload.sysmeta.get(sse.KMS_KEY)):
        raise invalid_argument("The KMS key specified does not match the one the multipart upload was initiated "
                               "with.", KMS_KEY_ID, kms)
    _bucket_key(h.get(BUCKET_KEY))
    if mode == sse.SSE_C and ck is None:
        raise invalid_request("The multipart upload was initiated with a customer-provided encryption key: the "
                              "request must provide the same key (x-amz-server-side-encryption-customer-*).")
    return ck


def response_headers(sysmeta: dict[str, str], ck: CustomerKey | None = None) -> dict[str, str]:
    """The ``x-amz-server-side-encryption*`` headers S3 sends about an object or upload."""
    mode = sse.mode_of(sysmeta)
    if mode == sse.SSE_S3:
        return {ALGORITHM: sse.SSE_S3}
    if mode == sse.SSE_KMS:
        return {ALGORITHM: sse.SSE_KMS, KMS_KEY_ID: sysmeta.get(sse.KMS_KEY, "")}
    if mode == sse.SSE_C:
        out = {CUSTOMER + "algorithm": "AES256"}
        if ck is not None:
            out[CUSTOMER + "key-MD5"] = ck.md5
        return out
    return {}


# -- Put/Get/DeleteBucketEncryption -------------------------------------------------------


def _parse_config(raw: bytes) -> dict[str, object]:
    try:
        root = parse(raw, "ServerSideEncryptionConfiguration")
    except XMLError:
        raise malformed_xml() from None
    rules = root.findall("Rule")
    if len(rules) != 1 or len(root) != 1:
        raise malformed_xml()  # S3 takes exactly one rule
    rule = rules[0]
    apply = rule.find("ApplyServerSideEncryptionByDefault")
    conf: dict[str, object] = {}
    for child in rule:
        if child.tag not in ("ApplyServerSideEncryptionByDefault", "BucketKeyEnabled"):
            raise malformed_xml()
    if apply is None:
        raise malformed_xml()
    alg_el, kms_el = apply.find("SSEAlgorithm"), apply.find("KMSMasterKeyID")
    if alg_el is None or any(c.tag not in ("SSEAlgorithm", "KMSMasterKeyID") for c in apply):
        raise malformed_xml()
    alg = (alg_el.text or "").strip()
    if alg == "aws:kms:dsse":
        raise S3Error(501, "NotImplemented", "Dual-layer server-side encryption (aws:kms:dsse) is not implemented "
                      "by this server: use aws:kms or AES256.")
    if alg not in (sse.SSE_S3, sse.SSE_KMS):
        raise malformed_xml()
    conf["SSEAlgorithm"] = alg
    if kms_el is not None:
        if alg != sse.SSE_KMS:
            raise invalid_argument("a KMSMasterKeyID is allowed only if SSEAlgorithm is set to aws:kms.",
                                   "ApplyServerSideEncryptionByDefault")
        conf["KMSMasterKeyID"] = (kms_el.text or "").strip()
    bk = rule.find("BucketKeyEnabled")
    if bk is not None:
        value = (bk.text or "").strip().lower()
        if value not in ("true", "false"):
            raise malformed_xml()
        conf["BucketKeyEnabled"] = value == "true"
    return conf


async def put_bucket_encryption(ctx: S3Request) -> web.StreamResponse:
    c = await s3policy.owned_bucket(ctx, write=True)
    conf = _parse_config(await s3body.read_small(ctx.request, ctx.auth, MAX_CONFIG_BODY))
    if conf["SSEAlgorithm"] == sse.SSE_KMS:
        key_id = str(conf.get("KMSMasterKeyID") or "")
        if not key_id:
            raise invalid_argument("This server has no default KMS key: give a KMSMasterKeyID with aws:kms.",
                                   "KMSMasterKeyID", "null")
        await _check_kms(ctx, key_id)
    else:
        ctx.storage.encryption_keys()  # refused where encryption is not available
    await ctx.storage.update_container_meta(c.key, {sse.DEFAULT_KEY: json.dumps(conf, separators=(",", ":"))})
    return web.Response(status=200)


async def get_bucket_encryption(ctx: S3Request) -> web.StreamResponse:
    c = await s3policy.owned_bucket(ctx, write=False)
    conf = sse.bucket_default(c.meta)
    if conf is None:
        raise S3Error(404, "ServerSideEncryptionConfigurationNotFoundError",
                      "The server side encryption configuration was not found", BucketName=ctx.bucket)
    apply = [element("SSEAlgorithm", str(conf["SSEAlgorithm"]))]
    if conf.get("KMSMasterKeyID"):
        apply.append(element("KMSMasterKeyID", str(conf["KMSMasterKeyID"])))
    rule = [element("ApplyServerSideEncryptionByDefault", apply),
            element("BucketKeyEnabled", bool(conf.get("BucketKeyEnabled", False)))]
    return xml_response(ctx, xml_doc("ServerSideEncryptionConfiguration", [element("Rule", rule)]))


async def delete_bucket_encryption(ctx: S3Request) -> web.StreamResponse:
    c = await s3policy.owned_bucket(ctx, write=True)
    await ctx.storage.update_container_meta(c.key, {sse.DEFAULT_KEY: None})
    return web.Response(status=204)
