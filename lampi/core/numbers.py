"""Whole numbers written by clients: ranges, part numbers, limits, quotas.

``str.isdigit()`` is true for "²" and "①", which ``int()`` refuses, and ``int()`` accepts
"١٢٣" and " 7 ", which no HTTP grammar allows, and refuses a string of more than 4,300
digits (CVE-2020-10735): each a ValueError, far from the parser that let it through, and a
500. ``uint`` is the one reading of ``1*DIGIT`` every parser uses.
"""

from __future__ import annotations

MAX_UINT = 2**63 - 1  # what SQLite's INTEGER holds; beyond any size, offset or count


def uint(text: str) -> int | None:
    """``text`` as a whole number if it is ASCII digits only (leading zeros allowed),
    else None. A value above ``MAX_UINT`` (of any length) is ``MAX_UINT``."""
    if not (text.isascii() and text.isdigit()):
        return None
    digits = text.lstrip("0")
    if len(digits) > 19:  # never convert thousands of digits
        return MAX_UINT
    return min(int(digits or "0"), MAX_UINT)
