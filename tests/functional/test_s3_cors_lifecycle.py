"""Bucket CORS (Get/Put/DeleteBucketCors, unauthenticated preflights, headers on actual
responses) and lifecycle rules (configuration, x-amz-expiration, the background pass
deleting expired objects and aborting stale multipart uploads), with boto3 and raw HTTP."""

from __future__ import annotations

import json
import math
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import pytest
import requests
from botocore.exceptions import ClientError

from tests.functional.conftest import LampiServer
from tests.functional.test_s3_acl import new_project_keys
from tests.functional.test_s3_api import client, code
from tests.functional.test_s3_features import signed_request, xml_code

APP = "https://app.example.org"
RULES = [
    {"ID": "app", "AllowedOrigins": [APP], "AllowedMethods": ["GET", "PUT"],
     "AllowedHeaders": ["x-amz-*", "Content-Type"], "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 600},
    {"AllowedOrigins": ["https://*.example.net"], "AllowedMethods": ["GET", "HEAD"]},
]


def preflight(server, path: str, origin: str | None, method: str | None, headers: str = "") -> requests.Response:  # noqa: ANN001
    h = {}
    if origin:
        h["Origin"] = origin
    if method:
        h["Access-Control-Request-Method"] = method
    if headers:
        h["Access-Control-Request-Headers"] = headers
    return requests.options(server.url + path, headers=h, timeout=10)


# -- CORS -------------------------------------------------------------------------------


def test_bucket_cors(server, s3, swift_conn, ec2_keys, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    s3.put_object(Bucket=unique, Key="k", Body=b"data")
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_cors(Bucket=unique)
    assert code(exc) == (404, "NoSuchCORSConfiguration")
    r = preflight(server, f"/{unique}/k", APP, "GET")
    assert r.status_code == 403 and xml_code(r) == "CORSResponse"

    s3.put_bucket_cors(Bucket=unique, CORSConfiguration={"CORSRules": RULES})
    got = s3.get_bucket_cors(Bucket=unique)["CORSRules"]
    assert got[0] == RULES[0] and got[1]["AllowedOrigins"] == ["https://*.example.net"]
    # preflights without credentials
    r = preflight(server, f"/{unique}/k", APP, "PUT", "content-type, x-amz-meta-color")
    assert r.status_code == 200, r.text
    assert r.headers["Access-Control-Allow-Origin"] == APP
    assert r.headers["Access-Control-Allow-Methods"] == "GET, PUT"
    assert r.headers["Access-Control-Allow-Headers"] == "content-type, x-amz-meta-color"
    assert r.headers["Access-Control-Max-Age"] == "600"
    assert r.headers["Access-Control-Expose-Headers"] == "ETag"
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    assert r.headers["x-amz-request-id"]
    r = preflight(server, f"/{unique}/k", "https://www.example.net", "HEAD")
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == "https://www.example.net"
    for origin, method, hdrs in ((APP, "DELETE", ""), ("https://evil.example", "GET", ""),
                                 (APP, "PUT", "x-custom"), ("https://www.example.net", "PUT", "")):
        r = preflight(server, f"/{unique}/k", origin, method, hdrs)
        assert r.status_code == 403 and xml_code(r) == "CORSResponse", (origin, method, hdrs)
        assert "Access-Control-Allow-Origin" not in r.headers
    r = preflight(server, f"/{unique}/k", None, "GET")
    assert r.status_code == 400 and xml_code(r) == "BadRequest"
    r = preflight(server, f"/{unique}", APP, None)
    assert r.status_code == 400 and xml_code(r) == "BadRequest"
    # actual requests: signed, anonymous public link, and an error response
    r = signed_request("GET", f"{server.url}/{unique}/k", ec2_keys, extra={"Origin": APP})
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == APP
    assert r.headers["Access-Control-Expose-Headers"] == "ETag"
    r = signed_request("GET", f"{server.url}/{unique}/k", ec2_keys, extra={"Origin": "https://evil.example"})
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers
    r = requests.get(f"{server.url}/{unique}/k", headers={"Origin": APP}, timeout=10)
    assert r.status_code == 403 and r.headers["Access-Control-Allow-Origin"] == APP
    s3.put_object_acl(Bucket=unique, Key="k", ACL="public-read")
    r = requests.get(f"{server.url}/{unique}/k", headers={"Origin": APP}, timeout=10)
    assert r.status_code == 200 and r.content == b"data" and r.headers["Access-Control-Allow-Origin"] == APP
    # S3's CORS rules are not Swift metadata
    assert not any("access-control" in k for k in swift_conn.head_container(unique))

    s3.delete_bucket_cors(Bucket=unique)
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_cors(Bucket=unique)
    assert code(exc) == (404, "NoSuchCORSConfiguration")
    assert preflight(server, f"/{unique}/k", APP, "GET").status_code == 403
    # Swift's container CORS metadata is what S3 URLs answer with when there are no S3 rules
    swift_conn.post_container(unique, {"X-Container-Meta-Access-Control-Allow-Origin": APP,
                                       "X-Container-Meta-Access-Control-Max-Age": "30"})
    r = preflight(server, f"/{unique}/k", APP, "DELETE")
    assert r.status_code == 200 and r.headers["Access-Control-Max-Age"] == "30"
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_cors(Bucket=unique)
    assert code(exc) == (404, "NoSuchCORSConfiguration")


def test_bad_cors_changes_nothing(server, s3, ec2_keys, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    s3.put_bucket_cors(Bucket=unique, CORSConfiguration={"CORSRules": RULES[:1]})
    url = f"{server.url}/{unique}?cors"

    def rule(inner: str) -> bytes:
        return f"<CORSConfiguration><CORSRule>{inner}</CORSRule></CORSConfiguration>".encode()

    bad = {
        b"<CORSConfiguration><CORSRule>": "MalformedXML",
        (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
         + rule("<AllowedOrigin>&b;</AllowedOrigin><AllowedMethod>GET</AllowedMethod>")): "MalformedXML",
        rule("<AllowedMethod>GET</AllowedMethod>"): "MalformedXML",
        rule("<AllowedOrigin>*</AllowedOrigin><AllowedMethod>PATCH</AllowedMethod>"): "InvalidRequest",
        rule("<AllowedOrigin>*.*</AllowedOrigin><AllowedMethod>GET</AllowedMethod>"): "InvalidRequest",
        rule("<AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod><Bogus/>"): "MalformedXML",
        b"<CORSConfiguration/>": "MalformedXML",
        (b"<CORSConfiguration><CORSRule>" + b"<AllowedHeader>x</AllowedHeader>" * 3000
         + b"</CORSRule></CORSConfiguration>"):
            "MaxMessageLengthExceeded",
    }
    for body, want in bad.items():
        r = signed_request("PUT", url, ec2_keys, body=body)
        assert r.status_code == 400 and xml_code(r) == want, (body[:80], r.text)
        assert s3.get_bucket_cors(Bucket=unique)["CORSRules"] == RULES[:1]
    # another project may not read or change it
    _, _, o, _ = new_project_keys(server)
    for call in (lambda: o.get_bucket_cors(Bucket=unique), lambda: o.delete_bucket_cors(Bucket=unique)):
        with pytest.raises(ClientError) as exc:
            call()
        assert code(exc) == (403, "AccessDenied")
    assert s3.get_bucket_cors(Bucket=unique)["CORSRules"] == RULES[:1]


# -- lifecycle --------------------------------------------------------------------------


LIFECYCLE = [
    {"ID": "logs", "Filter": {"Prefix": "logs/"}, "Status": "Enabled", "Expiration": {"Days": 3}},
    {"ID": "tmp-tag", "Filter": {"And": {"Prefix": "tmp/", "Tags": [{"Key": "kind", "Value": "scratch"}]}},
     "Status": "Enabled", "Expiration": {"Days": 1}},
    {"ID": "dated", "Filter": {"Tag": {"Key": "old", "Value": "yes"}}, "Status": "Disabled",
     "Expiration": {"Date": datetime(2030, 1, 1, tzinfo=timezone.utc)}},
    {"ID": "mpu", "Filter": {"Prefix": ""}, "Status": "Enabled",
     "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}},
]


def test_lifecycle_configuration_and_expiration_header(server, s3, ec2_keys, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_lifecycle_configuration(Bucket=unique)
    assert code(exc) == (404, "NoSuchLifecycleConfiguration")
    s3.put_object(Bucket=unique, Key="logs/a", Body=b"a")
    s3.put_object(Bucket=unique, Key="other", Body=b"b")
    s3.put_bucket_lifecycle_configuration(Bucket=unique, LifecycleConfiguration={"Rules": LIFECYCLE})
    got = s3.get_bucket_lifecycle_configuration(Bucket=unique)["Rules"]
    assert [r["ID"] for r in got] == ["logs", "tmp-tag", "dated", "mpu"]
    assert got[0]["Filter"] == {"Prefix": "logs/"} and got[0]["Expiration"] == {"Days": 3}
    assert got[1]["Filter"]["And"] == {"Prefix": "tmp/", "Tags": [{"Key": "kind", "Value": "scratch"}]}
    assert got[2]["Status"] == "Disabled" and got[2]["Expiration"]["Date"].year == 2030
    assert got[3]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    # x-amz-expiration: Last-Modified + 3 days, at the next midnight UTC
    h = s3.head_object(Bucket=unique, Key="logs/a")
    exp = h["Expiration"]
    assert 'rule-id="logs"' in exp
    when = parsedate_to_datetime(exp.split('expiry-date="', 1)[1].split('"', 1)[0]).timestamp()
    lm = h["LastModified"].timestamp()
    assert when == math.ceil((lm + 3 * 86400) / 86400) * 86400
    assert s3.get_object(Bucket=unique, Key="logs/a")["Expiration"] == exp
    assert "Expiration" not in s3.head_object(Bucket=unique, Key="other")
    s3.put_object(Bucket=unique, Key="tmp/x", Body=b"x", Tagging="kind=scratch")
    s3.put_object(Bucket=unique, Key="tmp/y", Body=b"y", Tagging="kind=keep")
    assert 'rule-id="tmp-tag"' in s3.head_object(Bucket=unique, Key="tmp/x")["Expiration"]
    assert "Expiration" not in s3.head_object(Bucket=unique, Key="tmp/y")

    # bad configurations: S3's errors, the stored configuration unchanged
    url = f"{server.url}/{unique}?lifecycle"

    def lc(rule: str) -> bytes:
        return f"<LifecycleConfiguration><Rule>{rule}</Rule></LifecycleConfiguration>".encode()

    ok_filter = "<Filter><Prefix>a/</Prefix></Filter>"
    bad = {
        lc(f"<ID>x</ID>{ok_filter}<Status>Enabled</Status><Expiration><Days>0</Days></Expiration>"):
            "InvalidArgument",
        lc(f"<ID>x</ID>{ok_filter}<Status>Enabled</Status><Expiration><Date>2030-01-01T10:00:00Z</Date>"
           "</Expiration>"): "InvalidArgument",
        lc(f"<ID>x</ID>{ok_filter}<Status>Maybe</Status><Expiration><Days>1</Days></Expiration>"): "MalformedXML",
        lc(f"<ID>x</ID>{ok_filter}<Status>Enabled</Status>"): "InvalidRequest",
        lc("<ID>x</ID><Status>Enabled</Status><Expiration><Days>1</Days></Expiration>"): "MalformedXML",
        lc(f"<ID>x</ID>{ok_filter}<Status>Enabled</Status><Expiration><Days>1</Days><Date>2030-01-01T00:00:00Z"
           "</Date></Expiration>"): "MalformedXML",
        lc(f"<ID>x</ID>{ok_filter}<Status>Enabled</Status><Expiration><Days>x</Days></Expiration>"): "MalformedXML",
        (b"<LifecycleConfiguration>" + lc(f"<ID>x</ID>{ok_filter}<Status>Enabled</Status><Expiration><Days>1"
                                          "</Days></Expiration>")[24:-25] * 2 + b"</LifecycleConfiguration>"):
            "InvalidArgument",
        b"<LifecycleConfiguration><Rule>": "MalformedXML",
        (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
         + lc(f"<ID>&b;</ID>{ok_filter}<Status>Enabled</Status><Expiration><Days>1</Days></Expiration>")):
            "MalformedXML",
        lc("<ID>x</ID>" + "<Filter><Prefix>a</Prefix></Filter>" + "<Status>Enabled</Status>"
           + "<Expiration><Days>1</Days></Expiration>" + "<!-- pad -->" * 30000): "MaxMessageLengthExceeded",
    }
    for body, want in bad.items():
        r = signed_request("PUT", url, ec2_keys, body=body)
        assert r.status_code == 400 and xml_code(r) == want, (body[:120], r.text)
        assert [x["ID"] for x in s3.get_bucket_lifecycle_configuration(Bucket=unique)["Rules"]] == [
            "logs", "tmp-tag", "dated", "mpu"]
    r = signed_request("PUT", url, ec2_keys, body=lc(
        f"<ID>t</ID>{ok_filter}<Status>Enabled</Status><Transition><Days>1</Days>"
        "<StorageClass>GLACIER</StorageClass></Transition>"))
    assert r.status_code == 501 and xml_code(r) == "NotImplemented"
    # another project: no access to the configuration
    _, _, o, _ = new_project_keys(server)
    with pytest.raises(ClientError) as exc:
        o.put_bucket_lifecycle_configuration(Bucket=unique, LifecycleConfiguration={"Rules": LIFECYCLE[:1]})
    assert code(exc) == (403, "AccessDenied")

    s3.delete_bucket_lifecycle(Bucket=unique)
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_lifecycle_configuration(Bucket=unique)
    assert code(exc) == (404, "NoSuchLifecycleConfiguration")
    assert "Expiration" not in s3.head_object(Bucket=unique, Key="logs/a")


def test_lifecycle_expires_objects(fresh_server: LampiServer, monkeypatch) -> None:  # noqa: ANN001
    """A 'day' of 2 s (lifecycle_day_seconds, for tests): a 1-day rule fires in seconds."""
    monkeypatch.setenv("LAMPI_LIFECYCLE_DAY_SECONDS", "2")
    monkeypatch.setenv("LAMPI_EXPIRER_INTERVAL", "0.5")
    fresh_server.start()
    made = json.loads(fresh_server.cli("credential", "create", "admin", "admin", "--json").stdout)
    s3 = client(fresh_server, made["access"], made["secret"])
    s3.create_bucket(Bucket="life")
    for key, tags in (("logs/a", ""), ("logs/b", ""), ("keep/c", ""), ("tmp/x", "kind=scratch"),
                      ("tmp/y", "kind=keep"), ("off/z", "")):
        s3.put_object(Bucket="life", Key=key, Body=b"data", Tagging=tags)
    s3.put_bucket_lifecycle_configuration(Bucket="life", LifecycleConfiguration={"Rules": [
        {"ID": "logs", "Filter": {"Prefix": "logs/"}, "Status": "Enabled", "Expiration": {"Days": 1}},
        {"ID": "tmp", "Filter": {"And": {"Prefix": "tmp/", "Tags": [{"Key": "kind", "Value": "scratch"}]}},
         "Status": "Enabled", "Expiration": {"Days": 1}},
        {"ID": "off", "Filter": {"Prefix": "off/"}, "Status": "Disabled", "Expiration": {"Days": 1}},
        {"ID": "mpu", "Filter": {"Prefix": ""}, "Status": "Enabled",
         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}},
    ]})
    up = s3.create_multipart_upload(Bucket="life", Key="big")["UploadId"]
    s3.upload_part(Bucket="life", Key="big", UploadId=up, PartNumber=1, Body=b"p" * 1000)
    assert 'rule-id="logs"' in s3.head_object(Bucket="life", Key="logs/a")["Expiration"]
    deadline = time.time() + 15
    left: list[str] = []
    while time.time() < deadline:
        left = [o["Key"] for o in s3.list_objects_v2(Bucket="life").get("Contents", [])]
        if left == ["keep/c", "off/z", "tmp/y"] and not s3.list_multipart_uploads(Bucket="life").get("Uploads"):
            break
        time.sleep(0.5)
    assert left == ["keep/c", "off/z", "tmp/y"]
    assert not s3.list_multipart_uploads(Bucket="life").get("Uploads")
    with pytest.raises(ClientError) as exc:
        s3.list_parts(Bucket="life", Key="big", UploadId=up)
    assert code(exc) == (404, "NoSuchUpload")
    # the bucket's counters followed (the objects were really deleted)
    assert fresh_server.cli("fsck", "--grace", "0").returncode == 0


def test_cors_on_actual_requests_wildcards_and_request_method(server, s3, unique) -> None:  # noqa: ANN001
    """Origins with a wildcard anywhere; on an actual (non-OPTIONS) request the rule must
    allow Access-Control-Request-Method when it is sent, else the request's method (RGW)."""
    s3.create_bucket(Bucket=unique, ACL="public-read")
    s3.put_bucket_cors(Bucket=unique, CORSConfiguration={"CORSRules": [
        {"AllowedMethods": ["GET"], "AllowedOrigins": ["*suffix"]},
        {"AllowedMethods": ["GET"], "AllowedOrigins": ["start*end"]},
        {"AllowedMethods": ["PUT"], "AllowedOrigins": ["*.put"]}]})

    def allowed(method: str, path: str, origin: str, extra: dict[str, str] | None = None) -> tuple[int, str | None]:
        r = requests.request(method, f"{server.url}/{unique}{path}", timeout=30,
                             headers={"Origin": origin, "Content-Length": "0", **(extra or {})})
        return r.status_code, r.headers.get("Access-Control-Allow-Origin")

    assert allowed("GET", "", "foo.suffix") == (200, "foo.suffix")
    assert allowed("GET", "", "foo.suffix.get") == (200, None)
    assert allowed("GET", "", "start12end") == (200, "start12end")
    assert allowed("GET", "", "0start12end") == (200, None)
    assert allowed("GET", "/missing", "foo.suffix") == (404, "foo.suffix")  # errors carry them too
    assert allowed("PUT", "/k", "foo.suffix", {"Access-Control-Request-Method": "GET"}) == (403, "foo.suffix")
    assert allowed("PUT", "/k", "foo.suffix", {"Access-Control-Request-Method": "PUT"}) == (403, None)
    assert allowed("PUT", "/k", "foo.suffix") == (403, None)
    assert allowed("PUT", "/k", "foo.put") == (403, "foo.put")
