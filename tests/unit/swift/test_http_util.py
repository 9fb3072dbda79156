"""Swift header helpers: Range, conditionals and metadata limits, as swob / Swift's
constraints.check_metadata answer them."""

from __future__ import annotations

import time
from email.utils import formatdate

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from lampi.core import errors
from lampi.core.models import ObjectRecord
from lampi.swift import constraints as C
from lampi.http.dates import http_date
from lampi.swift.http_util import check_conditionals, header_text, nbytes, parse_meta, parse_range


def H(*pairs: tuple[str, str], **kw: str) -> CIMultiDictProxy[str]:
    md: CIMultiDict[str] = CIMultiDict(pairs)
    for k, v in kw.items():
        md.add(k.replace("_", "-"), v)
    return CIMultiDictProxy(md)


# -- Range ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header,length,want",
    [
        ("bytes=0-0", 10, [(0, 1)]),
        ("bytes=2-5", 10, [(2, 6)]),
        ("bytes=2-", 10, [(2, 10)]),
        ("bytes=-3", 10, [(7, 10)]),
        ("bytes=-30", 10, [(0, 10)]),  # suffix longer than the object: all of it
        ("bytes=5-100", 10, [(5, 10)]),  # end clipped
        ("bytes=0-1,4-5", 10, [(0, 2), (4, 6)]),
        ("bytes=0-1,-2", 10, [(0, 2), (8, 10)]),
        ("bytes=20-30,2-3", 10, [(2, 4)]),  # unsatisfiable parts dropped
        ("bytes=-0,2-3", 10, [(2, 4)]),
        ("Bytes=1-2", 10, [(1, 3)]),
        ("bytes= 1 - 2 , 4-5", 10, [(1, 3), (4, 6)]),  # swob removes spaces
        ("bytes = 1-2", 10, [(1, 3)]),
        ("bytes=9-", 10, [(9, 10)]),
    ],
)
def test_parse_range(header, length, want):
    assert parse_range(header, length) == want


@pytest.mark.parametrize(
    "header",
    [
        None, "", "bytes", "bytes=", "bytes=-", "bytes=a-b", "bytes=1-a", "bytes=5-2",
        "items=0-1", "bytes=0-1,", "bytes=,0-1", "bytes=1", "bytes=--1", "bytes=0-1,x-2",
        "bytes=1--2", "0-1",
    ],
)
def test_parse_range_invalid_syntax_is_ignored(header):
    # Swift ignores a syntactically invalid Range header: the whole object (200)
    assert parse_range(header, 10) is None


@pytest.mark.parametrize("header", ["bytes=10-", "bytes=10-20", "bytes=-0", "bytes=100-200,50-", "bytes=-0,-0"])
def test_parse_range_unsatisfiable(header):
    with pytest.raises(errors.RangeNotSatisfiable):
        parse_range(header, 10)


def test_parse_range_zero_length_object():
    with pytest.raises(errors.RangeNotSatisfiable):
        parse_range("bytes=0-", 0)
    # swob: a suffix range on an empty object finds a (0, 0) range; Swift then
    # serves the whole (empty) object with 200
    assert parse_range("bytes=-5", 0) == [(0, 0)]


def test_parse_range_many_ranges():
    """swob's guard against egregious ranges: > 50 ranges, > 2 overlapping pairs, or
    >= 8 ranges out of order → 416; up to 50 ascending disjoint ranges are served."""
    ok = ",".join(f"{i * 10}-{i * 10 + 1}" for i in range(50))
    assert len(parse_range("bytes=" + ok, 1000)) == 50
    too_many = ",".join(f"{i * 10}-{i * 10 + 1}" for i in range(51))
    with pytest.raises(errors.RangeNotSatisfiable):
        parse_range("bytes=" + too_many, 1000)
    # only satisfiable ranges count
    assert len(parse_range("bytes=" + ok + ",5000-6000", 1000)) == 50
    # overlaps: two overlapping pairs are fine, a third is not
    assert parse_range("bytes=0-10,5-15,12-20", 100) == [(0, 11), (5, 16), (12, 21)]
    with pytest.raises(errors.RangeNotSatisfiable):
        parse_range("bytes=0-10,5-15,8-20", 100)
    # out of order: fine below 8 ranges, refused from 8
    seven = ",".join(f"{i * 10}-{i * 10 + 1}" for i in reversed(range(7)))
    assert len(parse_range("bytes=" + seven, 1000)) == 7
    eight = ",".join(f"{i * 10}-{i * 10 + 1}" for i in reversed(range(8)))
    with pytest.raises(errors.RangeNotSatisfiable):
        parse_range("bytes=" + eight, 1000)
    # a huge number of specs is refused without trouble
    with pytest.raises(errors.RangeNotSatisfiable):
        parse_range("bytes=" + ",".join(["0-0"] * 10000), 10)
    # and syntax errors anywhere still mean "ignore the header"
    assert parse_range("bytes=" + too_many + ",x", 1000) is None


# -- conditionals ------------------------------------------------------------------

ETAG = "0123456789abcdef0123456789abcdef"
LM = 1_700_000_000.25  # an X-Timestamp; Last-Modified is its ceiling (…001 s)


def obj() -> ObjectRecord:
    return ObjectRecord("c", "o", "b", 3, ETAG, "text/plain", LM)


def outcome(**headers: str) -> int:
    try:
        check_conditionals(H(**headers), obj())
    except errors.NotModified:
        return 304
    except errors.PreconditionFailed:
        return 412
    return 200


def date(ts: float) -> str:
    return formatdate(ts, usegmt=True)


def test_http_date_is_the_ceiling():
    assert http_date(LM) == date(1_700_000_001)


@pytest.mark.parametrize(
    "value,want",
    [
        (f'"{ETAG}"', 200), (ETAG, 200), ("*", 200), (f'"x", "{ETAG}"', 200), (f'"x",{ETAG}', 200),
        ('"other"', 412), (f'W/"{ETAG}"', 412),  # If-Match is a strong comparison
        (f'"{ETAG.upper()}"', 412), ("", 412),
    ],
)
def test_if_match(value, want):
    assert outcome(If_Match=value) == want


@pytest.mark.parametrize(
    "value,want",
    [
        (f'"{ETAG}"', 304), (ETAG, 304), ("*", 304), (f'"a", "{ETAG}"', 304),
        ('"other"', 200), ("", 200),
        (f'W/"{ETAG}"', 200),  # swob compares the tag as given: a weak tag never matches
    ],
)
def test_if_none_match(value, want):
    assert outcome(If_None_Match=value) == want


@pytest.mark.parametrize(
    "when,want",
    [
        (1_700_000_001, 304),  # equal to Last-Modified (whole seconds): not modified
        (1_700_000_000, 200),  # the stored time is .25 s later: the ceiling counts
        (1_700_000_002, 304),
        (1_600_000_000, 200),
    ],
)
def test_if_modified_since(when, want):
    assert outcome(If_Modified_Since=date(when)) == want


@pytest.mark.parametrize(
    "when,want",
    [(1_700_000_001, 200), (1_700_000_002, 200), (1_700_000_000, 412), (1_600_000_000, 412)],
)
def test_if_unmodified_since(when, want):
    assert outcome(If_Unmodified_Since=date(when)) == want


@pytest.mark.parametrize("bad", ["yesterday", "", "Mon, 99 Foo 2020 00:00:00 GMT", "1700000000"])
def test_unparseable_dates_are_ignored(bad):
    assert outcome(If_Modified_Since=bad) == 200
    assert outcome(If_Unmodified_Since=bad) == 200


def test_conditional_precedence_as_swob():
    # swob order: If-None-Match (304), If-Match (412), If-Modified-Since (304),
    # If-Unmodified-Since (412)
    assert outcome(If_None_Match=ETAG, If_Match='"other"') == 304
    assert outcome(If_Match=ETAG, If_Modified_Since=date(time.time() + 60)) == 304
    assert outcome(If_Match='"other"', If_Modified_Since=date(time.time() + 60)) == 412
    assert outcome(If_Modified_Since=date(2_000_000_000), If_Unmodified_Since=date(1)) == 304
    assert outcome(If_Modified_Since=date(1), If_Unmodified_Since=date(1)) == 412
    # swob applies If-Modified-Since even next to a non-matching If-None-Match
    assert outcome(If_None_Match='"other"', If_Modified_Since=date(2_000_000_000)) == 304
    assert outcome(If_None_Match='"other"', If_Modified_Since=date(1)) == 200


# -- metadata limits ---------------------------------------------------------------


def test_parse_meta_basic():
    got = parse_meta(
        H(("X-Object-Meta-Color", "blue"), ("x-object-meta-EMPTY", ""), ("X-Remove-Object-Meta-Old", "x"),
          ("X-Container-Meta-Other", "ignored"), ("Content-Type", "text/plain")),
        "object",
    )
    assert got == {"color": "blue", "empty": None, "old": None}
    assert parse_meta(H(("X-Remove-Object-Meta-Old", "x")), "object", allow_remove=False) == {}
    assert parse_meta(H(("X-Container-Meta-A", "1")), "container") == {"a": "1"}
    assert parse_meta(H(("X-Account-Meta-A", "1")), "account") == {"a": "1"}


def meta_headers(n: int, key_len: int = 5, value_len: int = 5) -> CIMultiDictProxy[str]:
    return H(*[(f"X-Object-Meta-{i:0{key_len}d}", "v" * value_len) for i in range(n)])


def invalid(headers) -> str:
    with pytest.raises(errors.InvalidMetadata) as exc:
        parse_meta(headers, "object")
    return exc.value.message


def test_meta_count_limit():
    assert len(parse_meta(meta_headers(C.MAX_META_COUNT), "object")) == 90
    assert invalid(meta_headers(C.MAX_META_COUNT + 1)) == "Too many metadata items; max 90"


def test_meta_name_length():
    ok = "k" * 128
    assert parse_meta(H((f"X-Object-Meta-{ok}", "v")), "object") == {ok: "v"}
    msg = invalid(H((f"X-Object-Meta-{ok}x", "v")))
    assert msg.startswith("Metadata name too long: x-object-meta-")
    # bytes, not characters
    assert invalid(H(("X-Object-Meta-" + "é" * 65, "v"))).startswith("Metadata name too long")


def test_meta_value_length():
    assert parse_meta(H(("X-Object-Meta-K", "v" * 256)), "object") == {"k": "v" * 256}
    assert invalid(H(("X-Object-Meta-K", "v" * 257))) == "Metadata value longer than 256: x-object-meta-K"
    assert invalid(H(("X-Object-Meta-K", "ä" * 129))).startswith("Metadata value longer than 256")


def test_meta_overall_size():
    # 16 items of (8-byte key + 248-byte value) = 4096 bytes: exactly the limit
    at_limit = H(*[(f"X-Object-Meta-k{i:07d}", "v" * 248) for i in range(16)])
    assert len(parse_meta(at_limit, "object")) == 16
    over = H(*[(f"X-Object-Meta-k{i:07d}", "v" * 248) for i in range(16)], ("X-Object-Meta-z", "1"))
    assert invalid(over) == "Total metadata too large; max 4096"


def test_meta_empty_name():
    assert invalid(H(("X-Object-Meta-", "v"))) == "Metadata name cannot be empty"


def test_meta_not_utf8():
    """aiohttp hands undecodable header bytes over as surrogate escapes. Swift's
    check_metadata refuses them for accounts and containers (400, not an encoding crash)
    and keeps an object's as sent, counting the bytes received."""
    for kind in ("container", "account"):
        with pytest.raises(errors.InvalidMetadata) as exc:
            parse_meta(H((f"X-{kind.title()}-Meta-K", "caf\udce9")), kind)
        assert exc.value.message == "Metadata must be valid UTF-8"
    assert parse_meta(H(("X-Object-Meta-K", "caf\udce9")), "object") == {"k": "caf\udce9"}
    assert parse_meta(H(("X-Object-Meta-K\udcff", "v")), "object") == {"k\udcff": "v"}
    # 256 bytes: at the limit with one undecodable byte counted as one
    assert parse_meta(H(("X-Object-Meta-K", "v" * 255 + "\udce9")), "object")
    assert invalid(H(("X-Object-Meta-K", "v" * 256 + "\udce9"))).startswith("Metadata value longer than 256")


def test_header_text_replaces_undecodable_bytes():
    assert header_text("caf\udce9") == "caf\ufffd"
    assert header_text("café") == "café" and header_text("plain") == "plain"
    assert nbytes("caf\udce9") == 4 and nbytes("café") == 5
