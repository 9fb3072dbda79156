"""HTTP dates (RFC 7231 IMF-fixdate), as both front-ends send them."""

from __future__ import annotations

import functools
import math
from email.utils import formatdate


def http_date(ts: float) -> str:
    return _http_date(math.ceil(ts))


@functools.lru_cache(maxsize=1024)
def _http_date(secs: int) -> str:  # formatdate builds a datetime each call
    return formatdate(secs, usegmt=True)
