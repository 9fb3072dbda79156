"""A small AWS Signature Version 4 signer for the S3 phases of ``lampi bench``.

Header authentication (``Authorization: AWS4-HMAC-SHA256 ...``), path-style URLs,
service ``s3``. It signs ``host``, ``x-amz-content-sha256`` and ``x-amz-date``, as
boto3 does. The payload hash is the caller's: the SHA-256 of a small body (computed
once per phase, every small PUT sends the same bytes), the empty-body hash for GET,
HEAD and DELETE, and ``UNSIGNED-PAYLOAD`` for large bodies, so they are streamed and
never hashed (or held) whole on the client.

No dependency: ``hashlib`` and ``hmac``, and lampi's HMAC from pads hashed once
(``lampi.core.hmacs``, the server's too). The signing key is derived once per day.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
import urllib.parse
from collections.abc import Mapping

from lampi.core.hmacs import hmac_sha256_hex

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED = "UNSIGNED-PAYLOAD"
SIGNED_HEADERS = "host;x-amz-content-sha256;x-amz-date"


def _enc(s: str, slash: bool) -> str:
    """AWS ``UriEncode``: everything but unreserved characters (and ``/`` in paths)."""
    return urllib.parse.quote(s, safe="-_.~/" if slash else "-_.~")


_PLAIN = re.compile(r"[A-Za-z0-9/_.~-]*")


class Signer:
    """Signs each request anew (date, canonical request, string to sign, signature);
    what does not change between requests is kept: the signing key (per day), the
    ``x-amz-date`` text (per second) and a URL's host and canonical path. On this 2-core
    machine the client shares the CPU with the server, so the client's own cost per
    request lowers the measured S3 rate: signing took ~58 µs a request at first, ~6 µs
    with what is kept, ~4 µs with the HMAC's pads hashed once a day (``lampi.core.hmacs``), against
    ~1 µs for a Swift request's token header."""

    def __init__(self, access: str, secret: str, region: str = "us-east-1", service: str = "s3") -> None:
        self.access, self.secret, self.region, self.service = access, secret, region, service
        self._day = ""
        self._key = b""
        self._second: int | None = None
        self._amz_date = ""
        self._urls: dict[str, tuple[str, str]] = {}

    def _signing_key(self, day: str) -> bytes:
        if day != self._day:
            k = hmac.new(("AWS4" + self.secret).encode(), day.encode(), hashlib.sha256).digest()
            for part in (self.region, self.service, "aws4_request"):
                k = hmac.new(k, part.encode(), hashlib.sha256).digest()
            self._day, self._key = day, k
        return self._key

    def _target(self, url: str) -> tuple[str, str]:
        """(host, canonical path) of a URL without a query string."""
        hit = self._urls.get(url)
        if hit is None:
            u = urllib.parse.urlsplit(url)
            # aiohttp sends host:port for a non-default port, so sign that
            path = u.path if _PLAIN.fullmatch(u.path) and u.path else _enc(urllib.parse.unquote(u.path) or "/", True)
            hit = (u.netloc, path)
            if len(self._urls) >= 100_000:
                self._urls.clear()
            self._urls[url] = hit
        return hit

    def headers(self, method: str, url: str, query: Mapping[str, str] | None = None,
                payload: str = EMPTY_SHA256, now: float | None = None) -> dict[str, str]:
        """Headers to add to a request for ``url`` (no query string in it; pass ``query``)."""
        host, path = self._target(url)
        cquery = "&".join(f"{k}={v}" for k, v in sorted((_enc(k, False), _enc(str(v), False))
                                                        for k, v in query.items())) if query else ""
        t = int(time.time() if now is None else now)
        if t != self._second:
            self._second, self._amz_date = t, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t))
        amz_date = self._amz_date
        day = amz_date[:8]
        canonical = (f"{method}\n{path}\n{cquery}\nhost:{host}\nx-amz-content-sha256:{payload}\n"
                     f"x-amz-date:{amz_date}\n\n{SIGNED_HEADERS}\n{payload}")
        scope = f"{day}/{self.region}/{self.service}/aws4_request"
        sts = f"{ALGORITHM}\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        sig = hmac_sha256_hex(self._signing_key(day), sts.encode())
        return {"Host": host, "X-Amz-Date": amz_date, "X-Amz-Content-SHA256": payload,
                "Authorization": f"{ALGORITHM} Credential={self.access}/{scope}, "
                                 f"SignedHeaders={SIGNED_HEADERS}, Signature={sig}"}
