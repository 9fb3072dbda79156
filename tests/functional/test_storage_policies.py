"""Storage policies: named in config ([[storage_policy]] tables here), each keeping its
blobs in its own directory; Swift's X-Storage-Policy on container PUT (400 unknown, 409
on a change), /info, container HEAD, per-policy account stats and listings; the S3
side, the expirer and fsck over several blob roots. Real clients: swiftclient, the
``swift`` CLI, boto3, ``lampi fsck``."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import requests
import swiftclient

from tests.functional.conftest import LampiServer, free_port, lampi_cmd

CONFIG = """
expirer_interval = 1.0

[[storage_policy]]
name = "default-placement"
default = true

[[storage_policy]]
name = "gold"
path = "gold-disk"
"""


@pytest.fixture(scope="module")
def pol_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LampiServer]:
    base = tmp_path_factory.mktemp("policies")
    conf = base / "lampi.toml"
    conf.write_text(CONFIG)
    srv = LampiServer(data_dir=base / "data", port=free_port(), extra_args=["--config", str(conf)])
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def conn(pol_server: LampiServer) -> swiftclient.Connection:
    rc = pol_server.openrc()
    return swiftclient.Connection(authurl=rc["OS_AUTH_URL"], user=rc["OS_USERNAME"], key=rc["OS_PASSWORD"],
                                  os_options={"user_domain_name": "Default", "project_domain_name": "Default",
                                              "project_name": rc["OS_PROJECT_NAME"]},
                                  auth_version="3", retries=0)


def _blob_files(root: Path) -> set[str]:
    return {p.name for p in (root / "blobs").rglob("*") if p.is_file()}


def test_info_lists_policies(pol_server: LampiServer) -> None:
    info = requests.get(pol_server.url + "/info", timeout=30).json()
    assert info["swift"]["policies"] == [{"name": "default-placement", "aliases": "default-placement",
                                          "default": True}, {"name": "gold", "aliases": "gold"}]


def test_container_policy_places_the_bytes(pol_server: LampiServer, conn: swiftclient.Connection,
                                           unique: str) -> None:
    data = pol_server.data_dir
    gold_root = data / "gold-disk"
    before_gold, before_base = _blob_files(gold_root), _blob_files(data)
    conn.put_container(unique + "-g", headers={"X-Storage-Policy": "GOLD"})  # names match case-insensitively
    conn.put_container(unique + "-d")
    assert conn.head_container(unique + "-g")["x-storage-policy"] == "gold"
    assert conn.head_container(unique + "-d")["x-storage-policy"] == "default-placement"
    # past inline_max (64 KiB): blob files (small objects of the default policy live in
    # meta.db; a policy with a path keeps even those: test_inline_blobs.py)
    golden = b"golden bytes" * 6000
    conn.put_object(unique + "-g", "o", golden)
    conn.put_object(unique + "-d", "o", b"plain bytes" * 6000)
    new_gold = _blob_files(gold_root) - before_gold
    new_base = _blob_files(data) - before_base
    assert len(new_gold) == 1 and len(new_base) == 1
    assert (next(gold_root.glob(f"blobs/*/*/{new_gold.pop()}"))).read_bytes() == golden
    assert conn.get_object(unique + "-g", "o")[1] == golden
    # a copy across policies lands in the destination's
    conn.put_object(unique + "-d", "copy", b"", headers={"X-Copy-From": f"/{unique}-g/o"})
    assert conn.get_object(unique + "-d", "copy")[1] == golden
    assert len(_blob_files(data) - before_base) == 2
    # the account: per-policy stats and the listing's storage_policy
    h = conn.head_account()
    assert int(h["x-account-storage-policy-gold-object-count"]) >= 1
    assert int(h["x-account-storage-policy-gold-bytes-used"]) >= 12
    assert int(h["x-account-storage-policy-gold-container-count"]) >= 1
    listed = {c["name"]: c for c in conn.get_account()[1]}
    assert listed[unique + "-g"]["storage_policy"] == "gold"
    assert listed[unique + "-d"]["storage_policy"] == "default-placement"
    r = requests.get(conn.get_auth()[0] + "?format=xml", headers={"X-Auth-Token": conn.get_auth()[1]}, timeout=30)
    assert "<storage_policy>gold</storage_policy>" in r.text


def test_unknown_and_changed_policy(pol_server: LampiServer, conn: swiftclient.Connection, unique: str) -> None:
    with pytest.raises(swiftclient.ClientException) as exc:
        conn.put_container(unique, headers={"X-Storage-Policy": "platinum"})
    assert exc.value.http_status == 400
    assert exc.value.http_response_content == b"Invalid X-Storage-Policy 'platinum'"
    with pytest.raises(swiftclient.ClientException):
        conn.head_container(unique)  # nothing was made
    conn.put_container(unique, headers={"X-Storage-Policy": "gold"})
    conn.put_container(unique, headers={"X-Storage-Policy": "gold"})  # the same: 202
    with pytest.raises(swiftclient.ClientException) as exc:
        conn.put_container(unique, headers={"X-Storage-Policy": "default-placement"})
    assert exc.value.http_status == 409
    conn.put_container(unique)  # no policy asked: fine, it stays gold
    conn.post_container(unique, {"X-Storage-Policy": "default-placement"})  # POST: ignored, as Swift
    assert conn.head_container(unique)["x-storage-policy"] == "gold"


def test_swift_cli_storage_policy(pol_server: LampiServer, unique: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ST_"))}
    env.update(pol_server.openrc())
    (tmp_path / "f.txt").write_text("via swift upload")
    res = subprocess.run(["swift", "post", "-H", "X-Storage-Policy: gold", unique], env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    res = subprocess.run(["swift", "upload", unique, "f.txt"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    res = subprocess.run(["swift", "stat", unique], env=env, capture_output=True, text=True, timeout=120)
    assert "Policy: gold" in res.stdout or "X-Storage-Policy: gold" in res.stdout, res.stdout


def test_s3_reads_and_multipart_in_a_policy(pol_server: LampiServer, conn: swiftclient.Connection,
                                             unique: str) -> None:
    keys = json.loads(pol_server.cli("credential", "create", "admin", "admin", "--json").stdout)
    s3 = boto3.client("s3", endpoint_url=pol_server.url, aws_access_key_id=keys["access"],
                      aws_secret_access_key=keys["secret"], region_name="us-east-1")
    conn.put_container(unique, headers={"X-Storage-Policy": "gold"})
    gold_root = pol_server.data_dir / "gold-disk"
    before = _blob_files(gold_root)
    up = s3.create_multipart_upload(Bucket=unique, Key="mp")
    parts = []
    for n in (1, 2):
        body = bytes([n]) * (5 * 1024 * 1024 if n == 1 else 10)
        etag = s3.upload_part(Bucket=unique, Key="mp", PartNumber=n, UploadId=up["UploadId"], Body=body)["ETag"]
        parts.append({"PartNumber": n, "ETag": etag})
    s3.complete_multipart_upload(Bucket=unique, Key="mp", UploadId=up["UploadId"],
                                 MultipartUpload={"Parts": parts})
    assert len(_blob_files(gold_root) - before) == 3  # two parts and the manifest body
    got = s3.get_object(Bucket=unique, Key="mp")["Body"].read()
    assert got == b"\x01" * (5 * 1024 * 1024) + b"\x02" * 10
    s3.delete_object(Bucket=unique, Key="mp")
    assert _blob_files(gold_root) == before


def test_expirer_and_fsck_over_every_root(pol_server: LampiServer, conn: swiftclient.Connection,
                                          unique: str) -> None:
    gold_root = pol_server.data_dir / "gold-disk"
    conn.put_container(unique, headers={"X-Storage-Policy": "gold"})
    before = _blob_files(gold_root)
    conn.put_object(unique, "short-lived", b"gone soon", headers={"X-Delete-After": "1"})
    conn.put_object(unique, "kept", b"stays")
    assert len(_blob_files(gold_root) - before) == 2
    deadline = time.monotonic() + 120
    while len(_blob_files(gold_root) - before) != 1:  # the expirer reclaims the gold blob
        assert time.monotonic() < deadline, "expired object's blob not reclaimed"
        time.sleep(0.5)
    # an orphan in the gold root (old enough) is found and removed; live gold blobs are not
    orphan_dir = gold_root / "blobs" / "ff" / "ee"
    orphan_dir.mkdir(parents=True, exist_ok=True)
    orphan = orphan_dir / ("ffee" + "0" * 28)
    orphan.write_bytes(b"nobody's")
    os.utime(orphan, (time.time() - 3600, time.time() - 3600))
    res = subprocess.run([*lampi_cmd(), "fsck", "--data-dir", str(pol_server.data_dir), "--config",
                          str(pol_server.data_dir.parent / "lampi.toml"), "--json"],
                         capture_output=True, text=True, timeout=120)
    rep = json.loads(res.stdout)
    assert res.returncode == 0, res.stdout + res.stderr
    assert rep["missing_blobs"] == [] and ("gold:" + orphan.name) in rep["orphan_blobs"]
    assert not orphan.exists()
    assert conn.get_object(unique, "kept")[1] == b"stays"


@pytest.mark.parametrize("policies,default,word", [
    ("gold,GOLD", "", "twice"), ("a b", "", "invalid"), ("gold", "silver", "silver"),
    ("one=x,two=x", "", "share"),
])
def test_bad_policy_settings_are_config_errors(tmp_path: Path, policies: str, default: str, word: str) -> None:
    args = ["--storage-policies", policies] + (["--default-storage-policy", default] if default else [])
    res = subprocess.run([*lampi_cmd(), "serve", "--port", str(free_port()), "--data-dir", str(tmp_path / "d"),
                          "--console-port", "0", *args], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert res.returncode == 2 and word in res.stderr, res.stderr


def test_per_policy_account_quotas_count_their_policy(pol_server: LampiServer, conn, unique: str) -> None:  # noqa: ANN001
    """X-Account-Quota-Bytes/-Count-Policy-<name> (set by a reseller) apply to the
    containers of that policy and count the account's usage in it, as Swift's
    account_quotas with per-policy account stats; every configured policy may have one."""
    pol_server.cli("project", "create", f"p{unique}")
    pol_server.cli("user", "create", f"u{unique}", "--password", "pw", "--project", f"p{unique}", "--role", "member")
    pol_server.cli("user", "create", f"r{unique}", "--password", "pw", "--project", f"p{unique}", "--role",
                   "ResellerAdmin")

    def connect(user: str) -> swiftclient.Connection:
        return swiftclient.Connection(authurl=pol_server.auth_url, user=user, key="pw", auth_version="3", retries=0,
                                      os_options={"user_domain_name": "Default", "project_domain_name": "Default",
                                                  "project_name": f"p{unique}"})

    user = connect(f"u{unique}")
    url, token = connect(f"r{unique}").get_auth()
    r = requests.post(url, headers={"X-Auth-Token": token, "X-Account-Quota-Bytes-Policy-gold": "100",
                                    "X-Account-Quota-Count-Policy-default-placement": "2"}, timeout=30)
    assert r.status_code == 204
    h = user.head_account()
    assert h["x-account-quota-bytes-policy-gold"] == "100"
    assert h["x-account-quota-count-policy-default-placement"] == "2"
    user.put_container(unique + "-g", headers={"X-Storage-Policy": "gold"})
    user.put_container(unique + "-d")
    user.put_object(unique + "-d", "big", b"x" * 500)  # the gold quota does not count default-placement
    user.put_object(unique + "-g", "a", b"x" * 60)
    user.put_object(unique + "-g", "b", b"x" * 30)
    with pytest.raises(swiftclient.ClientException) as exc:  # 90 + 20 > 100 in gold
        user.put_object(unique + "-g", "c", b"x" * 20)
    assert exc.value.http_status == 413
    user.put_object(unique + "-d", "small", b"x")  # a second default-placement object
    with pytest.raises(swiftclient.ClientException) as exc:  # a third: over the count quota
        user.put_object(unique + "-d", "third", b"x")
    assert exc.value.http_status == 413
    user.put_object(unique + "-g", "c", b"x" * 10)  # gold has no count quota, and room for 10 bytes


def test_default_policy_that_is_not_the_first(tmp_path: Path) -> None:
    """--default-storage-policy names the policy of containers made without
    X-Storage-Policy, also when it is not the first configured one."""
    srv = LampiServer(data_dir=tmp_path / "data", port=free_port(),
                      extra_args=["--storage-policies", "default-placement,gold=gold-disk",
                                  "--default-storage-policy", "gold"])
    srv.start()
    try:
        rc = srv.openrc()
        c = swiftclient.Connection(authurl=rc["OS_AUTH_URL"], user=rc["OS_USERNAME"], key=rc["OS_PASSWORD"],
                                   os_options={"user_domain_name": "Default", "project_domain_name": "Default",
                                               "project_name": rc["OS_PROJECT_NAME"]}, auth_version="3", retries=0)
        c.put_container("plain")
        c.put_container("first", headers={"X-Storage-Policy": "default-placement"})
        assert c.head_container("plain")["x-storage-policy"] == "gold"
        assert c.head_container("first")["x-storage-policy"] == "default-placement"
        c.put_object("plain", "o", b"gold bytes")
        assert _blob_files(tmp_path / "data" / "gold-disk"), "the default policy's directory holds the bytes"
        info = requests.get(f"{srv.url}/info", timeout=30).json()["swift"]["policies"]
        assert [p["name"] for p in info if p.get("default")] == ["gold"]
    finally:
        srv.stop()
