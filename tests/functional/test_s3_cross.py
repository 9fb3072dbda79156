"""One namespace: what S3 writes Swift reads identically, and the reverse; the aws CLI."""

from __future__ import annotations

import os
import subprocess

import pytest


def test_s3_to_swift(s3, swift_conn, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    data = os.urandom(5000)
    s3.put_object(Bucket=unique, Key="d/s3.bin", Body=data, ContentType="image/png",
                  Metadata={"Owner-Name": "Ann"}, ContentDisposition="inline")
    headers, body = swift_conn.get_object(unique, "d/s3.bin")
    assert body == data
    assert headers["content-type"] == "image/png"
    assert headers["x-object-meta-owner-name"] == "Ann"
    assert headers["content-disposition"] == "inline"
    assert [c["name"] for c in swift_conn.get_account()[1]].count(unique) == 1
    assert [o["name"] for o in swift_conn.get_container(unique)[1]] == ["d/s3.bin"]


def test_swift_to_s3(s3, swift_conn, unique) -> None:  # noqa: ANN001
    swift_conn.put_container(unique)
    swift_conn.put_object(unique, "from swift.txt", b"swift bytes", content_type="text/x-swift",
                          headers={"X-Object-Meta-Lab": "bio"})
    g = s3.get_object(Bucket=unique, Key="from swift.txt")
    assert g["Body"].read() == b"swift bytes"
    assert g["ContentType"] == "text/x-swift"
    assert g["Metadata"] == {"lab": "bio"}
    listed = s3.list_objects_v2(Bucket=unique)["Contents"]
    assert [(o["Key"], o["Size"]) for o in listed] == [("from swift.txt", 11)]
    # an existing Swift container with a name S3 would refuse to create is still reachable
    odd = unique + "_Mixed"
    swift_conn.put_container(odd)
    swift_conn.put_object(odd, "o", b"x")
    assert s3.get_object(Bucket=odd, Key="o")["Body"].read() == b"x"


@pytest.fixture
def aws_env(server, ec2_keys, tmp_path):  # noqa: ANN001, ANN201
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OS_"))}
    env.update(AWS_ACCESS_KEY_ID=ec2_keys["access"], AWS_SECRET_ACCESS_KEY=ec2_keys["secret"],
               AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    return env


def aws(server, env, *args: str) -> str:  # noqa: ANN001
    out = subprocess.run(["aws", "--endpoint-url", server.url, *args], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_aws_cli(server, aws_env, s3, unique, tmp_path) -> None:  # noqa: ANN001
    aws(server, aws_env, "s3", "mb", f"s3://{unique}")
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("A")
    (src / "sub" / "b.txt").write_text("B" * 1000)
    aws(server, aws_env, "s3", "cp", "--recursive", str(src), f"s3://{unique}/up/")
    out = aws(server, aws_env, "s3", "ls", "--recursive", f"s3://{unique}/")
    assert "up/a.txt" in out and "up/sub/b.txt" in out
    aws(server, aws_env, "s3api", "put-object", "--bucket", unique, "--key", "api.txt", "--body",
        str(src / "a.txt"), "--metadata", "k=v")
    assert s3.head_object(Bucket=unique, Key="api.txt")["Metadata"] == {"k": "v"}
    dst = tmp_path / "dst.txt"
    aws(server, aws_env, "s3", "cp", f"s3://{unique}/up/sub/b.txt", str(dst))
    assert dst.read_text() == "B" * 1000
    aws(server, aws_env, "s3", "rm", "--recursive", f"s3://{unique}/")
    aws(server, aws_env, "s3", "rb", f"s3://{unique}")
    assert unique not in aws(server, aws_env, "s3", "ls")
