"""S3 through real command-line clients (s3cmd v2 and v4, rclone, aws cli) and a large
boto3 listing, all with keys made by `openstack ec2 credentials create`."""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

S3CMD = shutil.which("s3cmd") or str(Path(os.__file__).parents[3] / "bin" / "s3cmd")
RCLONE = shutil.which("rclone") or "/usr/bin/rclone"


def run(cmd: list[str], env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError(f"{cmd} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


def tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


# -- s3cmd ------------------------------------------------------------------------------


def s3cmd_config(tmp_path: Path, server, keys: dict[str, str], v2: bool) -> Path:  # noqa: ANN001
    host = f"127.0.0.1:{server.port}"
    cfg = tmp_path / ("s3cfg-v2" if v2 else "s3cfg-v4")
    cfg.write_text(
        "[default]\n"
        f"access_key = {keys['access']}\nsecret_key = {keys['secret']}\n"
        f"host_base = {host}\nhost_bucket = {host}\n"  # no %(bucket)s: path style
        "use_https = False\ncheck_ssl_certificate = False\n"
        f"signature_v2 = {'True' if v2 else 'False'}\nbucket_location = us-east-1\n"
    )
    return cfg


@pytest.mark.skipif(not shutil.which("s3cmd") and not Path(S3CMD).exists(), reason="s3cmd not installed")
@pytest.mark.parametrize("v2", [True, False], ids=["sigv2", "sigv4"])
def test_s3cmd(server, ec2_keys, unique, tmp_path, swift_conn, v2) -> None:  # noqa: ANN001
    cfg = s3cmd_config(tmp_path, server, ec2_keys, v2)
    s3c = [S3CMD, "-c", str(cfg), "--no-progress"]
    bucket = unique
    run([*s3c, "mb", f"s3://{bucket}"])
    src = tmp_path / "hello.txt"
    src.write_bytes(b"hello from s3cmd\n" * 100)
    run([*s3c, "put", str(src), f"s3://{bucket}/dir/hello.txt"])
    # same bytes through Swift
    assert swift_conn.get_object(bucket, "dir/hello.txt")[1] == src.read_bytes()
    out = run([*s3c, "ls", f"s3://{bucket}/dir/"]).stdout
    assert f"s3://{bucket}/dir/hello.txt" in out and " 1700 " in out
    assert f"s3://{bucket}" in run([*s3c, "ls"]).stdout
    dst = tmp_path / "back.txt"
    run([*s3c, "get", f"s3://{bucket}/dir/hello.txt", str(dst)])
    assert dst.read_bytes() == src.read_bytes()
    url = run([*s3c, "signurl", f"s3://{bucket}/dir/hello.txt", "+600"]).stdout.strip().splitlines()[-1]
    r = requests.get(url, timeout=10)
    assert r.status_code == 200, r.text
    assert r.content == src.read_bytes()
    tampered = url.replace("Expires=", "Expires=1")  # another expiry: signature no longer matches
    r = requests.get(tampered, timeout=10)
    assert r.status_code == 403 and "<Code>" in r.text
    # rb refuses a non-empty bucket
    p = run([*s3c, "rb", f"s3://{bucket}"], check=False)
    assert p.returncode != 0 and "BucketNotEmpty" in p.stderr + p.stdout
    run([*s3c, "del", f"s3://{bucket}/dir/hello.txt"])
    assert run([*s3c, "ls", f"s3://{bucket}"]).stdout.strip() == ""
    run([*s3c, "rb", f"s3://{bucket}"])
    assert bucket not in run([*s3c, "ls"]).stdout
    # a wrong secret is refused with S3's error
    bad = tmp_path / "bad.cfg"
    bad.write_text(cfg.read_text().replace(ec2_keys["secret"], "0" * 32))
    p = run([S3CMD, "-c", str(bad), "ls"], check=False)
    assert p.returncode != 0 and "SignatureDoesNotMatch" in p.stderr + p.stdout


# -- rclone -----------------------------------------------------------------------------


def rclone_env(server, keys: dict[str, str], tmp_path: Path) -> dict[str, str]:  # noqa: ANN001
    # no AWS_* (an AWS_CA_BUNDLE makes rclone's SDK refuse its plain-HTTP transport)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RCLONE_", "AWS_"))}
    env.update({
        "RCLONE_CONFIG": str(tmp_path / "rclone.conf"),  # empty: remotes come from the env
        "RCLONE_CONFIG_LAMPI_TYPE": "s3", "RCLONE_CONFIG_LAMPI_PROVIDER": "Other",
        "RCLONE_CONFIG_LAMPI_ENDPOINT": server.url,
        "RCLONE_CONFIG_LAMPI_ACCESS_KEY_ID": keys["access"],
        "RCLONE_CONFIG_LAMPI_SECRET_ACCESS_KEY": keys["secret"],
    })
    return env


@pytest.mark.skipif(not Path(RCLONE).exists(), reason="rclone not installed")
def test_rclone(server, ec2_keys, unique, tmp_path, swift_conn) -> None:  # noqa: ANN001
    env = rclone_env(server, ec2_keys, tmp_path)
    files = {"a.txt": b"alpha\n", "sub/b.bin": os.urandom(70_000), "sub/deeper/c.txt": b"gamma" * 1000,
             "space name ü.txt": b"unicode\n"}
    src = tree(tmp_path / "src", files)
    rc = [RCLONE, "--retries", "1", "--low-level-retries", "1"]
    run([*rc, "copy", str(src), f"lampi:{unique}/data"], env)
    assert sorted(run([*rc, "lsf", "-R", "--files-only", f"lampi:{unique}/data"], env).stdout.split("\n")[:-1]) \
        == sorted(files)
    assert swift_conn.get_object(unique, "data/sub/b.bin")[1] == files["sub/b.bin"]
    run([*rc, "check", str(src), f"lampi:{unique}/data"], env)
    # change the source: sync uploads the change and deletes what is gone
    (src / "a.txt").write_bytes(b"alpha, changed\n")
    (src / "sub/deeper/c.txt").unlink()
    (src / "new.txt").write_bytes(b"new\n")
    run([*rc, "sync", str(src), f"lampi:{unique}/data"], env)
    listed = set(run([*rc, "lsf", "-R", "--files-only", f"lampi:{unique}/data"], env).stdout.split())
    assert "new.txt" in listed and "sub/deeper/c.txt" not in listed
    run([*rc, "check", str(src), f"lampi:{unique}/data"], env)
    assert swift_conn.get_object(unique, "data/a.txt")[1] == b"alpha, changed\n"
    # check notices a difference
    (src / "new.txt").write_bytes(b"different\n")
    assert run([*rc, "check", str(src), f"lampi:{unique}/data"], env, check=False).returncode != 0
    back = tmp_path / "back"
    run([*rc, "copy", f"lampi:{unique}/data", str(back)], env)
    assert (back / "sub/b.bin").read_bytes() == files["sub/b.bin"]
    run([*rc, "delete", f"lampi:{unique}/data"], env)
    assert run([*rc, "lsf", "-R", f"lampi:{unique}"], env).stdout.strip() == ""


# -- aws cli ----------------------------------------------------------------------------


def aws_env(keys: dict[str, str], tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ACCESS_KEY_ID": keys["access"], "AWS_SECRET_ACCESS_KEY": keys["secret"],
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(tmp_path / "aws-config"),
                "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials")})
    return env


def test_aws_cli(server, ec2_keys, unique, tmp_path, s3) -> None:  # noqa: ANN001
    aws = [shutil.which("aws") or "aws", "--endpoint-url", server.url]
    env = aws_env(ec2_keys, tmp_path)
    files = {"one.txt": b"1\n", "two/three.bin": os.urandom(200_000), "two/four.txt": b"4" * 5000}
    src = tree(tmp_path / "src", files)
    run([*aws, "s3", "mb", f"s3://{unique}"], env)
    run([*aws, "s3", "cp", "--recursive", str(src), f"s3://{unique}/in/"], env)
    out = run([*aws, "s3", "ls", "--recursive", f"s3://{unique}/"], env).stdout
    for name, data in files.items():
        assert f"{len(data)} in/{name}" in " ".join(out.split()), out
    assert s3.get_object(Bucket=unique, Key="in/two/three.bin")["Body"].read() == files["two/three.bin"]
    # sync: only the changed file goes up; --delete removes the missing one
    (src / "one.txt").write_bytes(b"one, changed\n")
    (src / "two/four.txt").unlink()
    out = run([*aws, "s3", "sync", "--delete", str(src), f"s3://{unique}/in/"], env).stdout
    assert "one.txt" in out and "three.bin" not in out and "delete: s3://" in out
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=unique)["Contents"])
    assert keys == ["in/one.txt", "in/two/three.bin"]
    back = tmp_path / "back"
    run([*aws, "s3", "sync", f"s3://{unique}/in/", str(back)], env)
    assert filecmp.cmp(back / "two/three.bin", src / "two/three.bin", shallow=False)
    assert (back / "one.txt").read_bytes() == b"one, changed\n"
    # an unknown bucket: the CLI reports S3's error
    p = run([*aws, "s3", "ls", f"s3://{unique}-missing"], env, check=False)
    assert p.returncode != 0 and "NoSuchBucket" in p.stderr


# -- boto3: a big paginated listing -----------------------------------------------------


def test_boto3_paginated_listing_2500(s3, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    keys = [f"d{i % 5}/k{i:05d}" for i in range(2400)] + [f"top{i:03d}" for i in range(100)]

    def put(k: str) -> None:
        s3.put_object(Bucket=unique, Key=k, Body=b"")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, keys))
    pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket=unique, Delimiter="/"))
    assert [p["Prefix"] for p in pages[0]["CommonPrefixes"]] == [f"d{i}/" for i in range(5)]
    assert [o["Key"] for o in pages[0]["Contents"]] == sorted(k for k in keys if k.startswith("top"))
    seen = []
    pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket=unique, Prefix="d3/", Delimiter="/",
                                                              PaginationConfig={"PageSize": 170}))
    assert len(pages) == 3
    for p in pages:
        seen += [o["Key"] for o in p["Contents"]]
    assert seen == sorted(k for k in keys if k.startswith("d3/"))
    # all 2,500 without a delimiter, v1 and v2, in pages of 1000
    v2 = [o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket=unique) for o in p["Contents"]]
    v1_pages = list(s3.get_paginator("list_objects").paginate(Bucket=unique))
    v1 = [o["Key"] for p in v1_pages for o in p["Contents"]]
    assert v2 == v1 == sorted(keys) and len(v1_pages) == 3
    versions = [v["Key"] for p in s3.get_paginator("list_object_versions").paginate(Bucket=unique)
                for v in p.get("Versions", [])]
    assert versions == sorted(keys)
