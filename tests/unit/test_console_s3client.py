"""lampi.console.s3client: its SigV4 signature is botocore's, its tagging XML parses back."""

from __future__ import annotations

import datetime

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from lampi.console import s3client


def test_signature_matches_botocore() -> None:
    body = s3client.tagging_xml([("project", "alpha"), ("a&b", "<x>")])
    req = AWSRequest(method="PUT", url="http://127.0.0.1:8080/my-bucket?tagging=", data=body)
    S3SigV4Auth(Credentials("AKID", "secret/key+1"), "s3", "regionOne").add_auth(req)
    when = datetime.datetime.strptime(req.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(
        tzinfo=datetime.timezone.utc)  # botocore's clock, for ours
    ours = s3client.sign("PUT", "127.0.0.1:8080", "/my-bucket", {"tagging": ""}, body, "AKID", "secret/key+1",
                         "regionOne", when)
    assert ours["Authorization"] == req.headers["Authorization"]
    assert ours["X-Amz-Content-Sha256"] == req.headers["X-Amz-Content-SHA256"]


def test_tagging_xml_round_trip_and_lines() -> None:
    tags = [("project", "alpha"), ("a&b", "<x>"), ("empty", "")]
    assert s3client.parse_tagging(s3client.tagging_xml(tags)) == tags
    assert s3client.parse_tag_lines("a=1\r\n\n b = x=y \nflag") == [("a", "1"), ("b", "x=y"), ("flag", "")]
    assert s3client.error_message(b"<Error><Code>InvalidTag</Code><Message>bad</Message></Error>") == "bad"
    assert s3client.error_message(b"not xml") == ""
