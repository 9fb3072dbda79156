"""PutBucketEncryption's document (lampi/s3/sse.py): one rule, S3's algorithms, its codes."""

from __future__ import annotations

import pytest

from lampi.s3.errors import S3Error
from lampi.s3.sse import _parse_config

NS = ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


def doc(rules: str) -> bytes:
    return f"<ServerSideEncryptionConfiguration{NS}>{rules}</ServerSideEncryptionConfiguration>".encode()


def rule(alg: str, kms: str | None = None, extra: str = "") -> str:
    k = f"<KMSMasterKeyID>{kms}</KMSMasterKeyID>" if kms is not None else ""
    return (f"<Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>{alg}</SSEAlgorithm>{k}"
            f"</ApplyServerSideEncryptionByDefault>{extra}</Rule>")


def test_valid_configurations() -> None:
    assert _parse_config(doc(rule("AES256"))) == {"SSEAlgorithm": "AES256"}
    assert _parse_config(doc(rule("aws:kms", "k1", "<BucketKeyEnabled>true</BucketKeyEnabled>"))) == {
        "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "k1", "BucketKeyEnabled": True}


@pytest.mark.parametrize("body,status,code", [
    (doc(rule("AES256") + rule("AES256")), 400, "MalformedXML"),  # S3 takes one rule
    (doc(""), 400, "MalformedXML"),
    (doc("<Rule></Rule>"), 400, "MalformedXML"),
    (doc(rule("AES128")), 400, "MalformedXML"),
    (doc(rule("AES256", extra="<Bogus/>")), 400, "MalformedXML"),
    (doc(rule("AES256", extra="<BucketKeyEnabled>maybe</BucketKeyEnabled>")), 400, "MalformedXML"),
    (doc(rule("AES256", "k1")), 400, "InvalidArgument"),
    (doc(rule("aws:kms:dsse", "k1")), 501, "NotImplemented"),
    (b"<NotIt/>", 400, "MalformedXML"),
    (b"not xml", 400, "MalformedXML"),
])
def test_invalid_configurations(body: bytes, status: int, code: str) -> None:
    with pytest.raises(S3Error) as e:
        _parse_config(body)
    assert (e.value.status, e.value.code) == (status, code)
