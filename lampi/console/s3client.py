"""The few S3 requests the console makes (bucket tagging), signed as any S3 client signs
them: AWS Signature Version 4 (header form) with one of the user's own EC2 credentials.

S3 has no token authentication, and a bucket's tags are S3's alone
(Get/Put/DeleteBucketTagging), so the console signs these requests with an EC2
credential of the user for the session's project, read through the credentials API
with the user's token (Keystone returns the secret to its owner, as ``openstack ec2
credentials list`` shows it); when the user has none, the console makes one for the
request and deletes it after. The S3 API then authenticates and authorizes the request
as it does every other (``lampi.s3``): the console gains no right of its own.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import quote

from defusedxml import ElementTree

S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def sign(method: str, host: str, path: str, query: Mapping[str, str], body: bytes, access: str, secret: str,
         region: str, now: datetime.datetime | None = None) -> dict[str, str]:
    """The headers (Host, X-Amz-Date, X-Amz-Content-Sha256, Authorization) of a SigV4
    signed S3 request; ``path`` is the unencoded path (``/<bucket>``)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    payload = hashlib.sha256(body).hexdigest()
    headers = {"host": host, "x-amz-content-sha256": payload, "x-amz-date": amz_date}
    signed = ";".join(sorted(headers))
    canonical_query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query.items()))
    canonical = "\n".join([method, quote(path, safe="/-_.~"), canonical_query,
                           "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)), signed, payload])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(("AWS4" + secret).encode(), day), region), "s3"), "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return {"Host": host, "X-Amz-Date": amz_date, "X-Amz-Content-Sha256": payload,
            "Authorization": f"AWS4-HMAC-SHA256 Credential={access}/{scope}, SignedHeaders={signed}, "
                             f"Signature={signature}"}


def tagging_xml(tags: list[tuple[str, str]]) -> bytes:
    """A PutBucketTagging body (the values escaped)."""
    from xml.sax.saxutils import escape

    items = "".join(f"<Tag><Key>{escape(k)}</Key><Value>{escape(v)}</Value></Tag>" for k, v in tags)
    return f'<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet>{items}</TagSet></Tagging>'.encode()


def parse_tagging(raw: bytes) -> list[tuple[str, str]]:
    """The (key, value) pairs of a GetBucketTagging answer."""
    root = ElementTree.fromstring(raw)
    out = []
    for tag in root.iter():
        if tag.tag in (S3_NS + "Tag", "Tag"):
            k = tag.find(S3_NS + "Key") if tag.find(S3_NS + "Key") is not None else tag.find("Key")
            v = tag.find(S3_NS + "Value") if tag.find(S3_NS + "Value") is not None else tag.find("Value")
            out.append((k.text or "" if k is not None else "", v.text or "" if v is not None else ""))
    return out


def error_message(raw: bytes) -> str:
    """The <Message> of an S3 error body ("" when there is none)."""
    try:
        root = ElementTree.fromstring(raw)
    except Exception:  # not XML: no message to show
        return ""
    m = root.find("Message")
    return (m.text or "") if m is not None else ""


def parse_tag_lines(text: str) -> list[tuple[str, str]]:
    """Tags as the console's forms take them: one ``key=value`` (or ``key``) a line;
    blank lines skipped. The S3 API checks them (count, lengths,
    characters, duplicates) and its refusal is shown."""
    out = []
    for line in text.replace("\r", "\n").split("\n"):
        if not line.strip():
            continue
        k, _, v = line.partition("=")
        out.append((k.strip(), v.strip()))
    return out
