"""``bucket_namespace``: container/bucket names service-wide (``global``, Allas's, the
default) or per project (``project``, as Ceph RGW's tenants), with real clients.

- per project: two projects each have their own ``shared`` container (Swift) and
  bucket (S3); every feature that names a container by name (SLO and DLO segments,
  symlinks, copies, legacy versioning, bulk delete, listings, ACLs) resolves it in the
  account it is used from; S3 names another project's bucket ``<project_id>:<bucket>``
  (anonymous public links, cross-project grants);
- global: a container shared with project B through an ACL is reachable by B through
  B's own storage URL (Allas: a bucket name means one bucket from every account);
- the setting is read at each start: a global store can be served per project, and a
  per-project store with a name used twice is refused in the global namespace with a
  clear error; a bad value is a usage error.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import requests
import swiftclient
from botocore.exceptions import ClientError
from botocore.handlers import validate_bucket_name

from tests.functional.conftest import LampiServer, free_port, lampi_cmd
from tests.functional.swift_helpers import Account, new_account


@pytest.fixture(scope="module")
def ns_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LampiServer]:
    srv = LampiServer(data_dir=tmp_path_factory.mktemp("ns") / "data", port=free_port(),
                      extra_args=["--bucket-namespace", "project"])
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def two(ns_server: LampiServer) -> tuple[Account, Account]:
    return new_account(ns_server), new_account(ns_server)


def _s3(server: LampiServer, acct: Account, tenants: bool = False):  # noqa: ANN202
    keys = json.loads(server.cli("credential", "create", acct.user, acct.project, "--json").stdout)
    client = boto3.client("s3", endpoint_url=server.url, aws_access_key_id=keys["access"],
                          aws_secret_access_key=keys["secret"], region_name="us-east-1")
    if tenants:  # "<tenant>:<bucket>" (RGW's form) is not a bucket name botocore lets through
        client.meta.events.unregister("before-parameter-build.s3", validate_bucket_name)
    return client


def test_same_container_name_in_two_projects(two: tuple[Account, Account], unique: str) -> None:
    a, b = two
    a.conn.put_container(unique)
    b.conn.put_container(unique)  # global namespace: 409
    a.conn.put_object(unique, "o", b"from a")
    b.conn.put_object(unique, "o", b"from b, longer")
    assert a.conn.get_object(unique, "o")[1] == b"from a"
    assert b.conn.get_object(unique, "o")[1] == b"from b, longer"
    ha, hb = a.conn.head_container(unique), b.conn.head_container(unique)
    assert (ha["x-container-bytes-used"], hb["x-container-bytes-used"]) == ("6", "14")
    assert [c["name"] for c in a.conn.get_account()[1]] == [unique]
    assert [c["name"] for c in b.conn.get_account()[1]] == [unique]
    # metadata and deletion of one leave the other alone
    a.conn.post_container(unique, {"X-Container-Meta-Owner": "a"})
    assert "x-container-meta-owner" not in b.conn.head_container(unique)
    a.conn.delete_object(unique, "o")
    a.conn.delete_container(unique)
    assert b.conn.get_object(unique, "o")[1] == b"from b, longer"
    with pytest.raises(swiftclient.ClientException) as exc:
        a.conn.head_container(unique)
    assert exc.value.http_status == 404


def test_features_resolve_names_in_their_own_account(two: tuple[Account, Account], unique: str) -> None:
    """SLO/DLO segments, symlinks, X-Copy-From, legacy versioning, bulk delete: a
    container name means the container of the account the request is in."""
    a, b = two
    seg, arch = unique + "_segments", unique + "-arch"
    for acct, tag in ((a, b"A"), (b, b"B")):
        for c in (unique, seg, arch):
            acct.conn.put_container(c)
        acct.conn.put_object(seg, "part1", tag * 10)
        acct.conn.put_object(seg, "part2", tag.lower() * 5)
        acct.conn.put_object(unique, "src", tag + b"-source")
    for acct, tag in ((a, b"A"), (b, b"B")):
        manifest = [{"path": f"/{seg}/part1"}, {"path": f"/{seg}/part2"}]
        acct.conn.put_object(unique, "slo", json.dumps(manifest), query_string="multipart-manifest=put")
        acct.conn.put_object(unique, "dlo", b"", headers={"X-Object-Manifest": f"{seg}/part"})
        acct.conn.put_object(unique, "link", b"", headers={"X-Symlink-Target": f"{unique}/src"})
        acct.conn.put_object(unique, "copy", b"", headers={"X-Copy-From": f"/{unique}/src"})
        acct.conn.post_container(unique, {"X-Versions-Location": arch})
        acct.conn.put_object(unique, "v", b"one")
        acct.conn.put_object(unique, "v", b"two")
    for acct, tag in ((a, b"A"), (b, b"B")):
        whole = tag * 10 + tag.lower() * 5
        assert acct.conn.get_object(unique, "slo")[1] == whole
        assert acct.conn.get_object(unique, "dlo")[1] == whole
        assert acct.conn.get_object(unique, "link")[1] == tag + b"-source"
        assert acct.conn.get_object(unique, "copy")[1] == tag + b"-source"
        assert len(acct.conn.get_container(arch)[1]) == 1
        acct.conn.delete_object(unique, "v")  # stack mode: the archived version comes back
        assert acct.conn.get_object(unique, "v")[1] == b"one"
    # bulk delete in A removes A's segments only
    resp = requests.post(a.url + "?bulk-delete", headers={"X-Auth-Token": a.token, "Accept": "application/json",
                                                          "Content-Type": "text/plain"},
                         data=f"/{seg}/part1\n/{seg}/part2\n", timeout=30)
    assert resp.json()["Number Deleted"] == 2, resp.text
    assert a.conn.get_container(seg)[1] == []
    assert [o["name"] for o in b.conn.get_container(seg)[1]] == ["part1", "part2"]
    assert b.conn.get_object(unique, "slo")[1] == b"B" * 10 + b"b" * 5


def test_acl_grant_reaches_the_owners_container_by_its_account(two: tuple[Account, Account],
                                                                 unique: str) -> None:
    a, b = two
    a.conn.put_container(unique, headers={"X-Container-Read": f"{b.project_id}:*"})
    b.conn.put_container(unique)
    a.conn.put_object(unique, "o", b"a's")
    b.conn.put_object(unique, "o", b"b's")
    # B reads A's through A's storage URL, its own through its own
    other = swiftclient.Connection(preauthurl=a.url, preauthtoken=b.token, retries=0)
    assert other.get_object(unique, "o")[1] == b"a's"
    assert b.conn.get_object(unique, "o")[1] == b"b's"
    with pytest.raises(swiftclient.ClientException) as exc:
        other.put_object(unique, "o", b"overwrite")  # read grant only
    assert exc.value.http_status == 403


def test_s3_buckets_per_project(ns_server: LampiServer, two: tuple[Account, Account], unique: str) -> None:
    a, b = two
    sa, sb = _s3(ns_server, a), _s3(ns_server, b, tenants=True)
    sa.create_bucket(Bucket=unique)
    sb.create_bucket(Bucket=unique)  # global: BucketAlreadyExists
    sa.put_object(Bucket=unique, Key="k", Body=b"a")
    sb.put_object(Bucket=unique, Key="k", Body=b"bb")
    assert sa.get_object(Bucket=unique, Key="k")["Body"].read() == b"a"
    assert sb.get_object(Bucket=unique, Key="k")["Body"].read() == b"bb"
    assert unique in [x["Name"] for x in sa.list_buckets()["Buckets"]]
    assert unique in [x["Name"] for x in sb.list_buckets()["Buckets"]]
    # a multipart upload lands in the caller's own bucket
    up = sb.create_multipart_upload(Bucket=unique, Key="mp")
    etag = sb.upload_part(Bucket=unique, Key="mp", PartNumber=1, UploadId=up["UploadId"], Body=b"x" * 10)["ETag"]
    sb.complete_multipart_upload(Bucket=unique, Key="mp", UploadId=up["UploadId"],
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert [o["Key"] for o in sa.list_objects_v2(Bucket=unique)["Contents"]] == ["k"]
    assert [o["Key"] for o in sb.list_objects_v2(Bucket=unique)["Contents"]] == ["k", "mp"]
    # another project's bucket by <tenant>:<bucket>: nothing without a grant, then read
    theirs = f"{a.project_id}:{unique}"
    with pytest.raises(ClientError) as err:
        sb.get_object(Bucket=theirs, Key="k")
    assert err.value.response["Error"]["Code"] == "AccessDenied"
    sa.put_bucket_acl(Bucket=unique, GrantRead=f"id={b.project_id}")
    assert [o["Key"] for o in sb.list_objects_v2(Bucket=theirs)["Contents"]] == ["k"]
    # a copy from the other project's bucket into the caller's own
    a.conn.post_container(unique, {"X-Container-Read": f"{b.project_id}:*"})
    sb.copy_object(Bucket=unique, Key="copied", CopySource={"Bucket": theirs, "Key": "k"})
    assert sb.get_object(Bucket=unique, Key="copied")["Body"].read() == b"a"
    # creating a bucket in another project is refused
    with pytest.raises(ClientError) as err:
        sb.create_bucket(Bucket=f"{a.project_id}:{unique}x")
    assert err.value.response["Error"]["Code"] == "AccessDenied"


def test_s3_anonymous_public_link_names_the_tenant(ns_server: LampiServer, two: tuple[Account, Account],
                                                     unique: str) -> None:
    a, _ = two
    a.conn.put_container(unique, headers={"X-Container-Read": ".r:*,.rlistings"})
    a.conn.put_object(unique, "pub.txt", b"public")
    r = requests.get(f"{ns_server.url}/{a.project_id}:{unique}/pub.txt", timeout=30)
    assert (r.status_code, r.content) == (200, b"public")
    r = requests.get(f"{ns_server.url}/{a.project_id}:{unique}/", timeout=30)
    assert r.status_code == 200 and b"<Key>pub.txt</Key>" in r.content
    # without the tenant a name means nothing to an anonymous caller
    r = requests.get(f"{ns_server.url}/{unique}/pub.txt", timeout=30)
    assert r.status_code == 404 and b"NoSuchBucket" in r.content


def test_swift_cli_in_project_namespace(ns_server: LampiServer, two: tuple[Account, Account], unique: str,
                                        tmp_path: Path) -> None:
    a, b = two
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ST_"))}
    (tmp_path / "f.txt").write_text("hello")
    for acct in (a, b):
        e = dict(env, OS_AUTH_URL=ns_server.auth_url, OS_USERNAME=acct.user, OS_PASSWORD=acct.password,
                 OS_PROJECT_NAME=acct.project, OS_USER_DOMAIN_NAME="Default", OS_PROJECT_DOMAIN_NAME="Default",
                 OS_IDENTITY_API_VERSION="3")
        res = subprocess.run(["swift", "upload", unique, "f.txt"], cwd=tmp_path, env=e, capture_output=True,
                             text=True, timeout=120)
        assert res.returncode == 0 and "409" not in res.stderr, res.stderr
        res = subprocess.run(["swift", "list", unique], env=e, capture_output=True, text=True, timeout=120)
        assert res.stdout.split() == ["f.txt"]


# -- the global namespace (default) ------------------------------------------------------


def test_global_shared_container_through_own_storage_url(server: LampiServer, unique: str) -> None:
    """Allas: B reaches A's container, shared through an ACL, through B's own storage
    URL; without the grant it gets 403; a PUT of the name stays 409."""
    a, b = new_account(server), new_account(server)
    a.conn.put_container(unique, headers={"X-Container-Read": f"{b.project_id}:*"})
    a.conn.put_object(unique, "o.txt", b"shared data")
    assert b.conn.get_object(unique, "o.txt")[1] == b"shared data"  # /v1/AUTH_<B>/<A's container>
    assert [o["name"] for o in b.conn.get_container(unique)[1]] == ["o.txt"]
    assert b.url.endswith(b.project_id)
    with pytest.raises(swiftclient.ClientException) as exc:
        b.conn.put_object(unique, "x", b"no write grant")
    assert exc.value.http_status == 403
    with pytest.raises(swiftclient.ClientException) as exc:
        b.conn.put_container(unique)
    assert exc.value.http_status == 409
    # the container stays A's: not in B's listing, counted in A's account
    assert unique not in [c["name"] for c in b.conn.get_account()[1]]
    c = new_account(server)
    with pytest.raises(swiftclient.ClientException) as exc:
        c.conn.get_object(unique, "o.txt")
    assert exc.value.http_status == 403


def test_global_shared_container_with_swift_cli(server: LampiServer, unique: str, tmp_path: Path) -> None:
    a, b = new_account(server), new_account(server)
    a.conn.put_container(unique, headers={"X-Container-Read": f"{b.project_id}:*"})
    a.conn.put_object(unique, "o.txt", b"via the cli")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ST_"))}
    env.update(OS_AUTH_URL=server.auth_url, OS_USERNAME=b.user, OS_PASSWORD=b.password, OS_PROJECT_NAME=b.project,
               OS_USER_DOMAIN_NAME="Default", OS_PROJECT_DOMAIN_NAME="Default", OS_IDENTITY_API_VERSION="3")
    res = subprocess.run(["swift", "download", unique, "o.txt", "-o", "-"], env=env, capture_output=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout == b"via the cli"


# -- choosing the namespace ------------------------------------------------------------


def _serve(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> LampiServer:
    srv = LampiServer(data_dir=data_dir, port=free_port(), extra_args=list(args))
    srv.start()
    return srv


def _exit_of(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("LAMPI_")}
    full["LAMPI_CONSOLE_PORT"] = "0"
    full.update(env or {})
    return subprocess.run([*lampi_cmd(), "serve", "--host", "127.0.0.1", "--port", str(free_port()),
                           "--data-dir", str(data_dir), *args], capture_output=True, text=True, timeout=120,
                          env=full, stdin=subprocess.DEVNULL)


def _conn(srv: LampiServer, acct: Account) -> swiftclient.Connection:
    """``acct``'s connection to ``srv`` (each start is on a port of its own)."""
    return swiftclient.Connection(authurl=srv.auth_url, user=acct.user, key=acct.password, auth_version="3",
                                  os_options={"user_domain_name": "Default", "project_domain_name": "Default",
                                              "project_name": acct.project}, retries=0)


def test_switching_namespaces(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = _serve(data)  # global
    try:
        a = new_account(srv)
        a.conn.put_container("kept")
        a.conn.put_object("kept", "o", b"made in global")
    finally:
        srv.stop()
    srv = _serve(data, "--bucket-namespace", "project")
    try:
        assert _conn(srv, a).get_object("kept", "o")[1] == b"made in global"
        b = new_account(srv)
        b.conn.put_container("kept")  # now per project: B may have its own
        b.conn.put_object("kept", "o", b"b's own")
        assert _conn(srv, a).get_object("kept", "o")[1] == b"made in global"
    finally:
        srv.stop()
    res = _exit_of(data)  # back to global: "kept" means two containers
    assert res.returncode == 2, res.stderr
    assert "'kept'" in res.stderr and "--bucket-namespace project" in res.stderr, res.stderr
    srv = _serve(data, "--bucket-namespace", "project")
    try:
        _conn(srv, b).delete_object("kept", "o")
        _conn(srv, b).delete_container("kept")
    finally:
        srv.stop()
    srv = _serve(data)  # one "kept" again: global works
    try:
        assert _conn(srv, a).get_object("kept", "o")[1] == b"made in global"
    finally:
        srv.stop()


@pytest.mark.parametrize("how", ["flag", "env", "toml"])
def test_bad_namespace_value_is_a_clear_config_error(tmp_path: Path, how: str) -> None:
    data = tmp_path / "data"
    args: list[str] = []
    env: dict[str, str] = {}
    if how == "flag":
        args = ["--bucket-namespace", "tenant"]
    elif how == "env":
        env = {"LAMPI_BUCKET_NAMESPACE": "tenant"}
    else:
        conf = tmp_path / "lampi.toml"
        conf.write_text('bucket_namespace = "tenant"\n')
        args = ["--config", str(conf)]
    res = _exit_of(data, *args, env=env)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "tenant" in res.stderr and "global" in res.stderr and "project" in res.stderr, res.stderr
    assert not (data / "meta.db").exists()


def test_help_shows_the_option() -> None:
    """The conformance runner passes --bucket-namespace project once the help shows it."""
    res = subprocess.run([*lampi_cmd(), "serve", "--help"], capture_output=True, text=True, timeout=60)
    assert "--bucket-namespace" in res.stdout
    assert uuid  # (module used by fixtures)
