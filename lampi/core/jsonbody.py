"""JSON sent by clients: request bodies (Keystone auth, EC2 credentials, Swift SLO
manifests) and JSON in headers (``X-Account-Access-Control``).

``json.loads`` lets three kinds of hostile input through to a 500: nesting deeper than
the interpreter's recursion limit (``RecursionError``, not a ``ValueError``), strings
holding lone surrogates (``"\\ud800"`` is valid JSON, but no UTF-8 store, log line or
response can hold the result) and, further down, nesting that later code walks
recursively. ``loads`` turns each into a ``ValueError``, which every caller already
answers with its protocol's 400.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 100  # far beyond any document lampi reads (Keystone's auth body is 6 deep)
_SURROGATE = re.compile("[\ud800-\udfff]")


def loads(raw: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse untrusted JSON; ``ValueError`` for anything that is not plain, valid JSON
    text nested at most ``max_depth`` deep."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:  # iterative: the check must not recurse either
        v, depth = stack.pop()
        if isinstance(v, str):
            if _SURROGATE.search(v):
                raise ValueError("JSON string is not valid Unicode text (lone surrogate)")
        elif isinstance(v, (list, dict)):
            if depth > max_depth:
                raise ValueError(f"JSON nested deeper than {max_depth}")
            if isinstance(v, dict):
                stack.extend((k, depth) for k in v)
                v = v.values()
            stack.extend((x, depth + 1) for x in v)
    return value
