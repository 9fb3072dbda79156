"""Request bodies of S3 writes, streamed and verified on the fly.

Handles ``x-amz-content-sha256`` as a hex digest (checked at the end),
``UNSIGNED-PAYLOAD``, and the aws-chunked encodings
``STREAMING-AWS4-HMAC-SHA256-PAYLOAD`` (each chunk signature verified, chained from
the seed signature), ``STREAMING-UNSIGNED-PAYLOAD-TRAILER`` and
``STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`` (trailer signature verified). Flexible
checksums (``x-amz-checksum-*`` as a header or a trailer) are computed while
streaming and compared at the end.

Only decoded bytes are yielded: the chunk framing never reaches the blob. Every
check fails *inside* the iterator, before it finishes, so the storage core aborts the
new blob and the previous version of the object stays untouched.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

from lampi.http.expect import send_continue
from lampi.http.transfer import body_chunks
from lampi.s3 import checksums
from lampi.s3.errors import S3Error, invalid_argument, invalid_request
from lampi.s3.sigv4 import EMPTY_SHA256, UNSIGNED, Auth, hmac_hex

READ_SIZE = 256 * 1024
MAX_CHUNK_LINE = 4096
MAX_TRAILER_BYTES = 16 * 1024
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
_SHA_RE = frozenset("0123456789abcdef")


@dataclass
class Body:
    """What to expect of the body; ``checksum`` holds the verified value after streaming."""

    mode: str  # "plain" (maybe sha256-checked), or one of the STREAMING-* modes
    decoded_length: int | None
    content_md5: str | None  # hex, for the core's expected_etag
    checksum_alg: str | None = None
    checksum_value: str | None = None  # from the header, when not a trailer
    checksum_in_trailer: bool = False
    checksum: dict[str, str] = field(default_factory=dict)


def _content_md5(request: web.Request) -> str | None:
    v = request.headers.get("Content-MD5")
    if v is None:
        return None
    try:
        raw = base64.b64decode(v, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 16:
        raise S3Error(400, "InvalidDigest", "The Content-MD5 you specified was invalid.")
    return raw.hex()


def plan(request: web.Request, auth: Auth, *, checksum_headers: bool = True) -> Body:
    """Read the headers describing the body; reject what cannot be honoured up front.
    ``checksum_headers=False``: ``x-amz-checksum-*`` headers are not the body's (on
    CompleteMultipartUpload they name the whole object's checksum)."""
    h = request.headers
    payload = auth.payload or UNSIGNED
    md5 = _content_md5(request)
    if payload in (STREAMING_SIGNED, STREAMING_UNSIGNED_TRAILER, STREAMING_SIGNED_TRAILER):
        dl = h.get("X-Amz-Decoded-Content-Length")
        if dl is None and payload == STREAMING_SIGNED:
            raise S3Error(411, "MissingContentLength", "You must provide the Content-Length HTTP header.")
        try:
            decoded = int(dl) if dl is not None else None
        except ValueError:
            raise invalid_argument("x-amz-decoded-content-length is not a number") from None
        body = Body(payload, decoded, md5)
    elif payload.startswith("STREAMING-"):
        raise S3Error(501, "NotImplemented", f"x-amz-content-sha256 {payload} is not implemented by this server.")
    elif payload == UNSIGNED or (len(payload) == 64 and set(payload) <= _SHA_RE):
        body = Body("plain", request.content_length, md5)
    else:
        raise invalid_argument("x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, "
                               "STREAMING-AWS4-HMAC-SHA256-PAYLOAD or a valid sha256 value.",
                               "x-amz-content-sha256", payload)
    trailer = h.get("X-Amz-Trailer")
    if trailer:
        name = trailer.strip().lower()
        if body.mode not in (STREAMING_UNSIGNED_TRAILER, STREAMING_SIGNED_TRAILER):
            raise invalid_request("The x-amz-trailer header is only allowed with a streaming trailer payload.")
        alg = name.removeprefix("x-amz-checksum-")
        if not name.startswith("x-amz-checksum-") or alg not in checksums.ALGORITHMS:
            raise invalid_request(f"The value specified in the x-amz-trailer header is not supported: {trailer}")
        body.checksum_alg, body.checksum_in_trailer = alg, True
    elif checksum_headers:
        found = [a for a in checksums.ALGORITHMS if f"x-amz-checksum-{a}" in h]
        if len(found) > 1:
            raise invalid_request("Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.")
        if found:
            alg = found[0]
            value = h[f"x-amz-checksum-{alg}"]
            if not checksums.valid_value(alg, value):  # no such digest can match: RGW's BadDigest
                raise _bad_digest(alg)
            body.checksum_alg, body.checksum_value = alg, value
    return body


def _bad_digest(alg: str) -> S3Error:
    return S3Error(400, "BadDigest", f"The {alg.upper()} you specified did not match the calculated checksum.")


async def stream(request: web.Request, auth: Auth, body: Body, max_size: int) -> AsyncIterator[bytes]:
    """The decoded, verified body bytes."""
    # a deferred "100 Continue" (Expect: 100-continue) goes out only now that the
    # signature and the headers were accepted: see lampi.gateway.app.expect_handler
    await send_continue(request)
    hasher = checksums.new(body.checksum_alg) if body.checksum_alg else None
    total = 0

    def feed(data: bytes) -> None:
        nonlocal total
        total += len(data)
        if total > max_size:
            raise S3Error(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
        if hasher is not None:
            hasher.update(data)

    if body.mode == "plain":
        sha = hashlib.sha256() if auth.payload and auth.payload != UNSIGNED else None
        # the chunks as received, never joined or split (iter_chunked copied every byte
        # once more to cut exact READ_SIZE pieces, iter_any joins what was buffered while
        # the loop was busy; the Swift PUT reads so too)
        async for data in body_chunks(request.content):
            feed(data)
            if sha is not None:
                sha.update(data)
            yield data
        if sha is not None and sha.hexdigest() != auth.payload:
            raise S3Error(400, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does "
                          "not match what was computed.", ClientComputedContentSHA256=auth.payload or "",
                          S3ComputedContentSHA256=sha.hexdigest())
    else:
        async for data in _aws_chunked(request, auth, body, feed):
            yield data
    if hasher is not None:
        got = checksums.encode(hasher.digest())
        if body.checksum_value is None:
            raise invalid_request(f"x-amz-checksum-{body.checksum_alg} trailer is missing")
        if got != body.checksum_value:
            raise _bad_digest(body.checksum_alg or "")
        body.checksum[f"x-amz-checksum-{body.checksum_alg}"] = got


def _incomplete() -> S3Error:
    return S3Error(400, "IncompleteBody", "The request body terminated unexpectedly")


async def _line(request: web.Request, limit: int = MAX_CHUNK_LINE) -> bytes:
    try:
        line = await request.content.readuntil(b"\n")
    except asyncio.IncompleteReadError:
        raise _incomplete() from None
    except (ValueError, asyncio.LimitOverrunError):
        raise invalid_request("aws-chunked framing: line too long") from None
    if len(line) > limit or not line.endswith(b"\r\n"):
        raise invalid_request("aws-chunked framing: malformed chunk line")
    return line[:-2]


async def _aws_chunked(request: web.Request, auth: Auth, body: Body, feed) -> AsyncIterator[bytes]:  # noqa: ANN001
    signed = body.mode in (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER)
    prev = auth.signature
    content = request.content
    if not request.body_exists:  # no body at all: not even the final chunk (and aiohttp's
        raise _incomplete()      # empty reader cannot readuntil)
    while True:
        line = await _line(request)
        size_s, _, ext = line.decode("latin-1").partition(";")
        try:
            size = int(size_s.strip(), 16)
        except ValueError:
            raise invalid_request("aws-chunked framing: invalid chunk size") from None
        if size < 0:
            raise invalid_request("aws-chunked framing: invalid chunk size")
        chunk_sig = None
        if signed:
            k, _, v = ext.strip().partition("=")
            if k != "chunk-signature" or not v:
                raise S3Error(403, "SignatureDoesNotMatch", "The chunk is missing its chunk-signature.")
            chunk_sig = v.lower()
        sha = hashlib.sha256() if signed else None
        remaining = size
        while remaining:
            try:
                data = await content.readexactly(min(remaining, READ_SIZE))
            except asyncio.IncompleteReadError:
                raise _incomplete() from None
            remaining -= len(data)
            feed(data)
            if sha is not None:
                sha.update(data)
            yield data
        if signed:
            assert sha is not None and chunk_sig is not None
            sts = "\n".join(("AWS4-HMAC-SHA256-PAYLOAD", auth.amz_date, auth.scope, prev, EMPTY_SHA256,
                             sha.hexdigest()))
            expect = hmac_hex(auth.signing_key, sts)
            if not hmac.compare_digest(expect, chunk_sig):
                raise S3Error(403, "SignatureDoesNotMatch", "The chunk signature we calculated does not match "
                              "the signature you provided.", StringToSign=sts, SignatureProvided=chunk_sig)
            prev = chunk_sig
        if size == 0:
            break
        try:
            crlf = await content.readexactly(2)
        except asyncio.IncompleteReadError:
            raise _incomplete() from None
        if crlf != b"\r\n":
            raise invalid_request("aws-chunked framing: chunk data not followed by CRLF")
    if body.mode == STREAMING_SIGNED:
        line = await _line(request)  # the final chunk ends with an empty line
        if line:
            raise invalid_request("aws-chunked framing: data after the final chunk")
    else:
        await _trailers(request, auth, body, prev)


async def _trailers(request: web.Request, auth: Auth, body: Body, prev: str) -> None:
    seen = 0
    trailers: list[tuple[str, str]] = []
    trailer_sig = None
    while True:
        line = await _line(request, MAX_TRAILER_BYTES)
        if not line:
            break
        seen += len(line)
        if seen > MAX_TRAILER_BYTES:
            raise invalid_request("aws-chunked framing: trailers too large")
        k, sep, v = line.decode("latin-1").partition(":")
        if not sep:
            raise invalid_request("aws-chunked framing: malformed trailer")
        k, v = k.strip().lower(), v.strip()
        if k == "x-amz-trailer-signature":
            trailer_sig = v.lower()
        else:
            trailers.append((k, v))
    if body.mode == STREAMING_SIGNED_TRAILER:
        canon = "".join(f"{k}:{v}\n" for k, v in trailers)
        sts = "\n".join(("AWS4-HMAC-SHA256-TRAILER", auth.amz_date, auth.scope, prev,
                         hashlib.sha256(canon.encode()).hexdigest()))
        expect = hmac_hex(auth.signing_key, sts)
        if trailer_sig is None or not hmac.compare_digest(expect, trailer_sig):
            raise S3Error(403, "SignatureDoesNotMatch", "The trailer signature we calculated does not match "
                          "the signature you provided.", StringToSign=sts)
    want = f"x-amz-checksum-{body.checksum_alg}" if body.checksum_alg else None
    for k, v in trailers:
        if k == want:
            if not checksums.valid_value(body.checksum_alg or "", v):
                raise invalid_request(f"Value for {k} trailing header is invalid.")
            body.checksum_value = v
        elif k.startswith("x-amz-checksum-"):
            raise invalid_request(f"The trailer {k} was not declared in x-amz-trailer.")


async def read_small(request: web.Request, auth: Auth, cap: int, *, checksum_headers: bool = True) -> bytes:
    """A small body (XML), verified like any other, refused beyond ``cap`` bytes."""
    body = plan(request, auth, checksum_headers=checksum_headers)
    if body.decoded_length is not None and body.decoded_length > cap:
        raise S3Error(400, "MaxMessageLengthExceeded", "Your request was too big.")
    buf = bytearray()
    async for data in stream(request, auth, body, 1 << 62):
        buf += data
        if len(buf) > cap:
            raise S3Error(400, "MaxMessageLengthExceeded", "Your request was too big.")
    if body.content_md5 is not None and hashlib.md5(buf, usedforsecurity=False).hexdigest() != body.content_md5:
        raise S3Error(400, "BadDigest", "The Content-MD5 you specified did not match what we received.")
    return bytes(buf)
