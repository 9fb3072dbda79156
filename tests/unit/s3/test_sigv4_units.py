"""SigV4's building blocks against their references: the HMAC from pads hashed once
(lampi.core.hmacs; keys longer than a block too) against OpenSSL's HMAC, and the
Authorization header's split against the regex every header used to go through."""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import given, settings
from hypothesis import strategies as st

from lampi.core.hmacs import hmac_sha256_hex
from lampi.s3 import sigv4


@settings(max_examples=300)
@given(key=st.binary(max_size=200), msg=st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_hmac_hex_is_hmac_sha256(key: bytes, msg: bytes | str) -> None:
    raw = msg if isinstance(msg, bytes) else msg.encode("utf-8", "surrogateescape")
    expected = hmac.new(key, raw, hashlib.sha256).hexdigest()
    assert hmac_sha256_hex(key, raw) == expected
    assert hmac_sha256_hex(key, raw) == expected  # from the cached pads
    if isinstance(msg, str):
        assert sigv4.hmac_hex(key, msg) == expected


def test_hmac_hex_of_a_signing_key() -> None:
    key = sigv4.signing_key("secret", "20261207", "us-east-1", "s3")
    assert sigv4.hmac_hex(key, "string to sign\n") == hmac.digest(key, b"string to sign\n", "sha256").hex()
    assert sigv4.hmac_hex(key, "other") != sigv4.hmac_hex(key, "string to sign\n")


def _by_regex(text: str) -> tuple[str | None, str | None, str | None]:
    fields = dict(sigv4._KV.findall(text))
    return fields.get("Credential"), fields.get("SignedHeaders"), fields.get("Signature")


_PIECES = st.sampled_from(["Credential=", "SignedHeaders=", "Signature=", ",", ", ", " ", "\t", "\n", "\u00a0",
                           "=", "AKID/20261207/us-east-1/s3/aws4_request", "host;x-amz-date", "ab12", "x", ";"])


@settings(max_examples=3000)
@given(st.lists(_PIECES, max_size=14).map("".join))
def test_authorization_fields_read_as_the_regex_does(text: str) -> None:
    assert sigv4.authorization_fields(text) == _by_regex(text)


@settings(max_examples=1000)
@given(st.text(max_size=40), st.text(max_size=40), st.text(max_size=70),
       st.sampled_from([", ", ",", " , ", ",  ", ",\t"]))
def test_authorization_fields_of_any_values(cred: str, signed: str, sig: str, sep: str) -> None:
    text = f" Credential={cred}{sep}SignedHeaders={signed}{sep}Signature={sig}"
    assert sigv4.authorization_fields(text) == _by_regex(text)


def test_authorization_fields_of_an_sdk_header() -> None:
    text = (" Credential=AKID/20261207/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=0123abcd")
    assert sigv4.authorization_fields(text) == (
        "AKID/20261207/us-east-1/s3/aws4_request", "host;x-amz-content-sha256;x-amz-date", "0123abcd")


def _canonical_headers_before(headers: dict[str, list[str]], signed: list[str], host: str | None) -> str:
    """_canonical_headers as it was before its one-value fast path (session 19)."""
    lines = []
    for name in signed:
        values = [host] if name == "host" and host is not None else headers.get(name, [])
        lines.append(f"{name}:{','.join(' '.join(x.split()) for x in values)}\n")
    return "".join(lines)


_HEADER_VALUES = st.lists(st.text(alphabet=st.sampled_from("ab ,\t;\u00a0x-"), max_size=12), max_size=3)


@settings(max_examples=300)
@given(values=st.dictionaries(st.sampled_from(["x-amz-date", "x-amz-meta-a", "content-md5", "range"]),
                              _HEADER_VALUES, max_size=4),
       host=st.one_of(st.none(), st.text(alphabet=st.sampled_from("ab. :1"), max_size=10)))
def test_canonical_headers_as_before(values: dict[str, list[str]], host: str | None) -> None:
    from aiohttp.test_utils import make_mocked_request
    from multidict import CIMultiDict

    headers = CIMultiDict([(k, v) for k, vs in values.items() for v in vs])
    request = make_mocked_request("GET", "/b/k", headers=headers)
    signed = ["host", "x-amz-date", "x-amz-meta-a", "content-md5", "range"]
    names, joined = sigv4._signed_names(" Host;X-Amz-Date ;x-amz-meta-a;;content-md5;RANGE")
    assert list(names) == signed and joined == ";".join(signed)
    expected = _canonical_headers_before({k: [v for v in vs] for k, vs in values.items()}, signed, host)
    assert sigv4._canonical_headers(request, names, host) == expected
