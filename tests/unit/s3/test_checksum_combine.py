"""CRC combination (FULL_OBJECT multipart checksums) against the CRCs of the whole."""

from hypothesis import given, settings
from hypothesis import strategies as st

from lampi.s3 import checksums


def _digest(alg: str, data: bytes) -> bytes:
    h = checksums.new(alg)
    h.update(data)
    return h.digest()


@settings(max_examples=60, deadline=None)
@given(alg=st.sampled_from(checksums.CRC_ALGORITHMS), chunks=st.lists(st.binary(max_size=300), max_size=6))
def test_combined_crc_is_the_crc_of_the_whole(alg: str, chunks: list[bytes]) -> None:
    combined = checksums.combine(alg, [(_digest(alg, c), len(c)) for c in chunks])
    assert combined == _digest(alg, b"".join(chunks))


def test_known_values_from_s3_tests() -> None:
    # s3-tests' test_multipart_use_cksum_helper_crc32: three 5 MiB parts of A, B and C
    size = 5 * 1024 * 1024
    parts = [(_digest("crc32", ch * size), size) for ch in (b"A", b"B", b"C")]
    assert checksums.encode(parts[0][0]) == "JRTCyQ=="
    assert checksums.encode(checksums.combine("crc32", parts)) == "WgDhBQ=="


def test_checksum_type() -> None:
    assert checksums.checksum_type("uWBwpe1dxI4Vw8Gf0X9ynOdw/SS6VBzfWm9giiv1sf4=-3") == "COMPOSITE"
    assert checksums.checksum_type("WgDhBQ==") == "FULL_OBJECT"
