"""Bucket policies with real clients: boto3, the aws CLI (``s3api put-bucket-policy``...),
s3cmd (``setpolicy`` / ``info`` / ``delpolicy``), and Swift clients meeting the same
policy (one namespace: a policy is enforced on Swift requests too, as Ceph RGW does).
Conditions (source IP, prefix, existing object tags, request headers), deny over allow
and ACLs, the owner's policy operations, GetBucketPolicyStatus, malformed policies → 400
MalformedPolicy with nothing stored."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
from botocore.exceptions import ClientError

from tests.functional.swift_helpers import new_account
from tests.functional.test_s3_acl import new_project_keys
from tests.functional.test_s3_api import code
from tests.functional.test_s3_clients import S3CMD, run, s3cmd_config
from tests.functional.test_s3_features import signed_request, xml_code


@pytest.fixture(scope="module")
def other(server):  # noqa: ANN001, ANN201
    return new_project_keys(server)


@pytest.fixture
def owner(server):  # noqa: ANN001, ANN201
    """A project of its own (a member user, an S3 key, a Swift connection): the admin
    fixtures are the cloud admin, whom no bucket policy binds."""
    import swiftclient

    pid, name, s3c, keys = new_project_keys(server)
    conn = swiftclient.Connection(authurl=server.auth_url, user=name, key="pw-" + name, auth_version="3", retries=0,
                                  os_options={"user_domain_name": "Default", "project_domain_name": "Default",
                                              "project_name": name})
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update({"OS_AUTH_URL": server.auth_url, "OS_IDENTITY_API_VERSION": "3", "OS_USERNAME": name,
                "OS_PASSWORD": "pw-" + name, "OS_PROJECT_NAME": name, "OS_USER_DOMAIN_NAME": "Default",
                "OS_PROJECT_DOMAIN_NAME": "Default"})
    return pid, s3c, conn, env


def statement(action, resource, principal="*", effect="Allow", **kw) -> dict:  # noqa: ANN001
    return {"Effect": effect, "Principal": principal, "Action": action, "Resource": resource, **kw}


def policy(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def denied(call) -> None:  # noqa: ANN001
    with pytest.raises(ClientError) as exc:
        call()
    assert code(exc) == (403, "AccessDenied")


def test_policy_lifecycle_and_grants(s3, other, unique) -> None:  # noqa: ANN001
    o = other[2]
    s3.create_bucket(Bucket=unique)
    s3.put_object(Bucket=unique, Key="public/a", Body=b"a")
    s3.put_object(Bucket=unique, Key="private/b", Body=b"b")
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_policy(Bucket=unique)
    assert code(exc) == (404, "NoSuchBucketPolicy")
    assert s3.get_bucket_policy_status(Bucket=unique)["PolicyStatus"]["IsPublic"] is False
    denied(lambda: o.list_objects_v2(Bucket=unique))
    text = policy(statement("s3:ListBucket", f"arn:aws:s3:::{unique}"),
                  statement("s3:GetObject", f"arn:aws:s3:::{unique}/public/*"))
    assert s3.put_bucket_policy(Bucket=unique, Policy=text)["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert s3.get_bucket_policy(Bucket=unique)["Policy"] == text  # as put, byte for byte
    assert s3.get_bucket_policy_status(Bucket=unique)["PolicyStatus"]["IsPublic"] is True
    assert [x["Key"] for x in o.list_objects_v2(Bucket=unique)["Contents"]] == ["private/b", "public/a"]
    assert o.get_object(Bucket=unique, Key="public/a")["Body"].read() == b"a"
    denied(lambda: o.get_object(Bucket=unique, Key="private/b"))
    denied(lambda: o.put_object(Bucket=unique, Key="public/c", Body=b"c"))
    denied(lambda: o.get_bucket_policy(Bucket=unique))  # the policy's own operations stay the owner's
    # anonymous too (Principal "*"): the listing and the public object, nothing else
    assert requests.get(f"{server_url(s3)}/{unique}/public/a", timeout=10).content == b"a"
    assert requests.get(f"{server_url(s3)}/{unique}/private/b", timeout=10).status_code == 403
    assert "<Key>public/a</Key>" in requests.get(f"{server_url(s3)}/{unique}?list-type=2", timeout=10).text
    # an explicit Deny beats an allowing ACL (and the policy's own Allow)
    s3.put_object_acl(Bucket=unique, Key="public/a", ACL="public-read")
    s3.put_bucket_policy(Bucket=unique, Policy=policy(
        statement("s3:GetObject", f"arn:aws:s3:::{unique}/*"),
        statement("s3:GetObject", f"arn:aws:s3:::{unique}/public/*", effect="Deny")))
    denied(lambda: o.get_object(Bucket=unique, Key="public/a"))
    assert o.get_object(Bucket=unique, Key="private/b")["Body"].read() == b"b"
    assert requests.get(f"{server_url(s3)}/{unique}/public/a", timeout=10).status_code == 403
    s3.delete_bucket_policy(Bucket=unique)
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_policy(Bucket=unique)
    assert code(exc) == (404, "NoSuchBucketPolicy")
    assert o.get_object(Bucket=unique, Key="public/a")["Body"].read() == b"a"  # its ACL again
    denied(lambda: o.get_object(Bucket=unique, Key="private/b"))


def server_url(s3) -> str:  # noqa: ANN001
    return s3.meta.endpoint_url


def test_deny_applies_to_the_owner_but_not_to_policy_operations(owner, unique) -> None:  # noqa: ANN001
    s3 = owner[1]
    s3.create_bucket(Bucket=unique)
    s3.put_object(Bucket=unique, Key="k", Body=b"k")
    s3.put_bucket_policy(Bucket=unique, Policy=policy(
        statement("s3:*", [f"arn:aws:s3:::{unique}", f"arn:aws:s3:::{unique}/*"], effect="Deny")))
    denied(lambda: s3.get_object(Bucket=unique, Key="k"))
    denied(lambda: s3.list_objects_v2(Bucket=unique))
    denied(lambda: s3.put_object(Bucket=unique, Key="k2", Body=b"x"))
    assert json.loads(s3.get_bucket_policy(Bucket=unique)["Policy"])["Statement"][0]["Effect"] == "Deny"
    s3.delete_bucket_policy(Bucket=unique)
    assert s3.get_object(Bucket=unique, Key="k")["Body"].read() == b"k"


def test_conditions(owner, other, unique) -> None:  # noqa: ANN001
    """aws:SourceIp (Allas's documented IP allow-list: Deny + NotIpAddress), s3:prefix,
    s3:ExistingObjectTag, s3:x-amz-acl, aws:SecureTransport."""
    s3, o = owner[1], other[2]
    s3.create_bucket(Bucket=unique)
    for k, tag in (("t/pub", "public"), ("t/priv", "private")):
        s3.put_object(Bucket=unique, Key=k, Body=k.encode(), Tagging=f"security={tag}")
    res = [f"arn:aws:s3:::{unique}", f"arn:aws:s3:::{unique}/*"]
    s3.put_bucket_policy(Bucket=unique, Policy=policy(
        statement("s3:*", res, effect="Deny", Condition={"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}})))
    denied(lambda: s3.list_objects_v2(Bucket=unique))  # we are 127.0.0.1: even the owner
    s3.put_bucket_policy(Bucket=unique, Policy=policy(
        statement("s3:*", res, effect="Deny", Condition={"NotIpAddress": {"aws:SourceIp": ["127.0.0.0/8", "::1"]}}),
        statement("s3:ListBucket", res[0], Condition={"StringLike": {"s3:prefix": "t/*"}}),
        statement("s3:GetObject", res[1], Condition={"StringEquals": {"s3:ExistingObjectTag/security": "public"}}),
        statement("s3:PutObject", res[1], Condition={"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control"}}),
    ))
    assert [x["Key"] for x in s3.list_objects_v2(Bucket=unique)["Contents"]] == ["t/priv", "t/pub"]
    assert [x["Key"] for x in o.list_objects_v2(Bucket=unique, Prefix="t/")["Contents"]] == ["t/priv", "t/pub"]
    denied(lambda: o.list_objects_v2(Bucket=unique))  # no s3:prefix
    assert o.get_object(Bucket=unique, Key="t/pub")["Body"].read() == b"t/pub"
    denied(lambda: o.get_object(Bucket=unique, Key="t/priv"))
    denied(lambda: o.put_object(Bucket=unique, Key="t/new", Body=b"n"))
    o.put_object(Bucket=unique, Key="t/new", Body=b"n", ACL="bucket-owner-full-control")
    grants = s3.get_object_acl(Bucket=unique, Key="t/new")
    assert grants["Owner"]["ID"] == other[0]  # the writer owns it; the bucket owner has FULL_CONTROL
    assert {(g["Grantee"]["ID"], g["Permission"]) for g in grants["Grants"]} == {
        (other[0], "FULL_CONTROL"), (owner[0], "FULL_CONTROL")}
    # a missing key: 404 to whom may list that prefix, 403 to whom may not
    with pytest.raises(ClientError) as exc:
        o.head_object(Bucket=unique, Key="t/missing")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as exc:
        o.head_object(Bucket=unique, Key="u/missing")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    # plain HTTP is not a secure transport
    s3.put_bucket_policy(Bucket=unique, Policy=policy(
        statement("s3:GetObject", res[1], effect="Deny", Condition={"Bool": {"aws:SecureTransport": "false"}})))
    denied(lambda: s3.get_object(Bucket=unique, Key="t/pub"))
    s3.delete_bucket_policy(Bucket=unique)


def test_principals_by_project_and_user(server, s3, unique) -> None:  # noqa: ANN001
    """``arn:aws:iam::<project>:root`` (by id or name) and ``...:user/<name>``."""
    pid, pname, o, _ = new_project_keys(server)
    s3.create_bucket(Bucket=unique)
    s3.put_object(Bucket=unique, Key="k", Body=b"k")
    res = f"arn:aws:s3:::{unique}/*"
    for principal in ({"AWS": f"arn:aws:iam::{pid}:root"}, {"AWS": f"arn:aws:iam::{pname}:root"},
                      {"AWS": [f"arn:aws:iam::{pname}:user/{pname}"]}, {"CanonicalUser": pid}):
        s3.put_bucket_policy(Bucket=unique, Policy=policy(statement("s3:GetObject", res, principal)))
        assert o.get_object(Bucket=unique, Key="k")["Body"].read() == b"k", principal
        assert requests.get(f"{server.url}/{unique}/k", timeout=10).status_code == 403, principal
    s3.put_bucket_policy(Bucket=unique, Policy=policy(statement(
        "s3:GetObject", res, {"AWS": f"arn:aws:iam::{pname}:user/someone-else"})))
    denied(lambda: o.get_object(Bucket=unique, Key="k"))
    assert s3.get_bucket_policy_status(Bucket=unique)["PolicyStatus"]["IsPublic"] is False


def test_policy_on_swift_requests(server, owner, unique) -> None:  # noqa: ANN001
    """One namespace: the bucket policy decides Swift requests too (anonymous GET at the
    storage URL, another project's token, a Deny on the owner's own Swift requests)."""
    _, s3, swift_conn, env = owner
    acct = new_account(server)
    swift_conn.put_container(unique)
    swift_conn.put_object(unique, "pub/o", b"public through swift")
    swift_conn.put_object(unique, "priv/o", b"private")
    storage = swift_conn.get_auth()[0]
    assert requests.get(f"{storage}/{unique}/pub/o", timeout=10).status_code == 401
    s3.put_bucket_policy(Bucket=unique, Policy=policy(
        statement("s3:GetObject", f"arn:aws:s3:::{unique}/pub/*"),
        statement("s3:ListBucket", f"arn:aws:s3:::{unique}", {"AWS": acct.project_id}),
        statement("s3:PutObject", f"arn:aws:s3:::{unique}/drop/*", {"AWS": acct.project_id})))
    assert requests.get(f"{storage}/{unique}/pub/o", timeout=10).content == b"public through swift"
    assert requests.get(f"{storage}/{unique}/priv/o", timeout=10).status_code == 401
    # python-swiftclient with the other project's token at the owner's storage URL
    token = acct.token
    _, listing = swift_conn.get_container(unique)
    import swiftclient

    _, objs = swiftclient.client.get_container(storage, token, unique)
    assert [x["name"] for x in objs] == [x["name"] for x in listing]
    swiftclient.client.put_object(storage, token, unique, "drop/from-other", b"dropped")
    assert swift_conn.get_object(unique, "drop/from-other")[1] == b"dropped"
    with pytest.raises(swiftclient.ClientException) as exc:
        swiftclient.client.put_object(storage, token, unique, "elsewhere", b"x")
    assert exc.value.http_status == 403
    with pytest.raises(swiftclient.ClientException) as exc:
        swiftclient.client.get_object(storage, token, unique, "priv/o")
    assert exc.value.http_status == 403
    # a Deny stops the owner's own Swift requests too (the swift CLI)
    s3.put_bucket_policy(Bucket=unique, Policy=policy(statement(
        "s3:GetObject", f"arn:aws:s3:::{unique}/priv/*", effect="Deny",
        Condition={"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}})))
    got = subprocess.run(["swift", "download", unique, "priv/o", "-o", "-"], env=env, capture_output=True,
                         timeout=60)
    assert got.returncode != 0 and b"403" in got.stderr
    got = subprocess.run(["swift", "download", unique, "pub/o", "-o", "-"], env=env, capture_output=True,
                         timeout=60, check=True)
    assert got.stdout == b"public through swift"
    s3.delete_bucket_policy(Bucket=unique)
    assert swift_conn.get_object(unique, "priv/o")[1] == b"private"


@pytest.mark.skipif(not shutil.which("aws"), reason="aws CLI not installed")
def test_aws_cli_policy_commands(server, ec2_keys, unique, tmp_path) -> None:  # noqa: ANN001
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OS_"))}
    env.update(AWS_ACCESS_KEY_ID=ec2_keys["access"], AWS_SECRET_ACCESS_KEY=ec2_keys["secret"],
               AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))

    def aws(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(["aws", "--endpoint-url", server.url, "s3api", *args], env=env, capture_output=True,
                             text=True, timeout=120)
        assert (out.returncode == 0) is ok, (args, out.stdout, out.stderr)
        return out

    aws("create-bucket", "--bucket", unique)
    doc = tmp_path / "policy.json"
    doc.write_text(policy(statement("s3:GetObject", f"arn:aws:s3:::{unique}/*")))
    aws("put-bucket-policy", "--bucket", unique, "--policy", f"file://{doc}")
    assert json.loads(json.loads(aws("get-bucket-policy", "--bucket", unique).stdout)["Policy"]) == \
        json.loads(doc.read_text())
    assert json.loads(aws("get-bucket-policy-status", "--bucket", unique).stdout) == \
        {"PolicyStatus": {"IsPublic": True}}
    bad = aws("put-bucket-policy", "--bucket", unique, "--policy", '{"Statement": [{"Effect": "Allow"}]}', ok=False)
    assert "MalformedPolicy" in bad.stderr
    aws("put-public-access-block", "--bucket", unique, "--public-access-block-configuration",
        "BlockPublicAcls=true,IgnorePublicAcls=false,BlockPublicPolicy=true,RestrictPublicBuckets=false")
    assert json.loads(aws("get-public-access-block", "--bucket", unique).stdout)["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "IgnorePublicAcls": False, "BlockPublicPolicy": True, "RestrictPublicBuckets": False}
    refused = aws("put-bucket-policy", "--bucket", unique, "--policy", f"file://{doc}", ok=False)
    assert "AccessDenied" in refused.stderr  # BlockPublicPolicy
    aws("delete-public-access-block", "--bucket", unique)
    aws("delete-bucket-policy", "--bucket", unique)
    assert "NoSuchBucketPolicy" in aws("get-bucket-policy", "--bucket", unique, ok=False).stderr
    aws("put-bucket-ownership-controls", "--bucket", unique, "--ownership-controls",
        "Rules=[{ObjectOwnership=BucketOwnerEnforced}]")
    assert json.loads(aws("get-bucket-ownership-controls", "--bucket", unique).stdout)["OwnershipControls"] == {
        "Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    src = tmp_path / "o.txt"
    src.write_bytes(b"attributes")
    aws("put-object", "--bucket", unique, "--key", "o.txt", "--body", str(src))
    attrs = json.loads(aws("get-object-attributes", "--bucket", unique, "--key", "o.txt",
                           "--object-attributes", "ETag", "ObjectSize", "StorageClass").stdout)
    assert attrs["ObjectSize"] == 10 and attrs["StorageClass"] == "STANDARD" and len(attrs["ETag"]) == 32


@pytest.mark.skipif(not shutil.which("s3cmd") and not Path(S3CMD).exists(), reason="s3cmd not installed")
def test_s3cmd_setpolicy_info_delpolicy(server, ec2_keys, other, unique, tmp_path) -> None:  # noqa: ANN001
    cfg = s3cmd_config(tmp_path, server, ec2_keys, v2=False)
    s3c = [S3CMD, "-c", str(cfg), "--no-progress"]
    run([*s3c, "mb", f"s3://{unique}"])
    src = tmp_path / "f.txt"
    src.write_bytes(b"shared\n")
    run([*s3c, "put", str(src), f"s3://{unique}/f.txt"])
    doc = tmp_path / "p.json"
    doc.write_text(policy(statement("s3:GetObject", f"arn:aws:s3:::{unique}/*", {"AWS": other[0]})))
    run([*s3c, "setpolicy", str(doc), f"s3://{unique}"])
    info = run([*s3c, "info", f"s3://{unique}"]).stdout
    assert '"s3:GetObject"' in info and other[0] in info, info
    assert other[2].get_object(Bucket=unique, Key="f.txt")["Body"].read() == b"shared\n"
    run([*s3c, "delpolicy", f"s3://{unique}"])
    assert "Policy:    none" in run([*s3c, "info", f"s3://{unique}"]).stdout
    denied(lambda: other[2].get_object(Bucket=unique, Key="f.txt"))
    doc.write_text("{not json")
    bad = run([*s3c, "setpolicy", str(doc), f"s3://{unique}"], check=False)
    assert bad.returncode != 0 and "MalformedPolicy" in bad.stderr + bad.stdout


def test_malformed_policies_change_nothing(server, s3, ec2_keys, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    good = policy(statement("s3:GetObject", f"arn:aws:s3:::{unique}/*"))
    s3.put_bucket_policy(Bucket=unique, Policy=good)
    url = f"{server.url}/{unique}?policy"
    bad = [
        b"", b"not json", b"[]", b'{"Statement": []}', "{" * 200 + "}" * 200, b"\xff\xfe{}",
        policy(statement("s3:Fly", f"arn:aws:s3:::{unique}/*")),
        policy(statement("s3:GetObject", "arn:aws:s3:::someone-elses-bucket/*")),
        policy(statement("s3:GetObject", f"arn:aws:s3:::{unique}/*", {"AWS": "arn:aws:iam::p:role/r"})),
        policy({"Effect": "Allow", "NotPrincipal": {"AWS": "x"}, "Action": "s3:*", "Resource": "*"}),
        policy(statement("s3:GetObject", f"arn:aws:s3:::{unique}/*", Condition={"Fancy": {"a:b": "c"}})),
        json.dumps({"Version": "2012-10-17", "Statement": [statement("s3:GetObject", f"arn:aws:s3:::{unique}/*")],
                    "Id": "x" * 25000}),
    ]
    for body in bad:
        raw = body.encode() if isinstance(body, str) else body
        r = signed_request("PUT", url, ec2_keys, body=raw)
        assert r.status_code == 400 and xml_code(r) == "MalformedPolicy", (raw[:60], r.text)
        assert s3.get_bucket_policy(Bucket=unique)["Policy"] == good
    r = signed_request("PUT", url, ec2_keys, body=b"x" * (70 * 1024))
    assert r.status_code == 400 and xml_code(r) == "MaxMessageLengthExceeded"
    assert s3.get_bucket_policy(Bucket=unique)["Policy"] == good
