"""Keys out of the data dir (issue 13): two gateways with data dirs of their own (no file
shared) over one PostgreSQL (and one Ceph pool for the bytes) keep their token keys, EC2-secret sealing keys and SSE keys
in the database, sealed with a master key each gets from its configuration
(LAMPI_MASTER_KEY; --master-key-file). A token issued by one validates on the other; an
S3 key made on one signs on the other; rotations made on one (admin commands with its
settings) are honoured by the other; a gateway or admin command with another master key,
or none, is refused with one line.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import CEPH_POOL
from tests.functional.conftest import LampiServer, free_port, lampi_cmd
from tests.pgcluster import PGCluster, running


def generate_master_key() -> str:
    out = subprocess.run([*lampi_cmd(), "master-key", "generate"], capture_output=True, text=True, check=True,
                         timeout=60)
    key = out.stdout.strip()
    assert len(key) == 44, out.stdout
    return key


@pytest.fixture(scope="module")
def pg() -> Iterator[PGCluster]:
    with running() as c:
        yield c


class Pair:
    def __init__(self, pg: PGCluster, ceph: Any, base: Path) -> None:
        self.url = pg.create_db()
        blobs = ["--blob-url", f"{ceph.url(CEPH_POOL)}&namespace={uuid.uuid4().hex}"]
        self.key = generate_master_key()
        self.key_file = key_file = base / "master.key"
        key_file.write_text(self.key + "\n")
        key_file.chmod(0o600)
        self.a = LampiServer(data_dir=base / "data-a", port=free_port(), extra_args=["--meta-url", self.url, *blobs],
                             env={"LAMPI_MASTER_KEY": self.key})
        self.b = LampiServer(data_dir=base / "data-b", port=free_port(),
                             extra_args=["--meta-url", self.url, *blobs, "--master-key-file", str(key_file)])


@contextlib.contextmanager
def running_pair(pg: PGCluster, ceph: Any, base: Path) -> Iterator[Pair]:
    """Both gateways started, for the ``with`` block (a module fixture's body)."""
    p = Pair(pg, ceph, base)
    try:
        p.a.start()
        p.b.start()
        yield p
    finally:
        for s in (p.a, p.b):
            if s.proc is not None:
                s.stop()


@pytest.fixture(scope="module")
def pair(pg: PGCluster, ceph: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    with running_pair(pg, ceph, tmp_path_factory.mktemp("shared-keys")) as p:
        yield p


def token(srv: LampiServer, rc: dict[str, str]) -> tuple[str, str]:
    """(token, project id) from ``srv``'s Keystone."""
    r = requests.post(f"{srv.url}/v3/auth/tokens", timeout=60, json={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": rc["OS_USERNAME"], "domain": {"name": "Default"}, "password": rc["OS_PASSWORD"]}}},
        "scope": {"project": {"name": rc["OS_PROJECT_NAME"], "domain": {"name": "Default"}}}}})
    assert r.status_code == 201, r.text
    return r.headers["X-Subject-Token"], r.json()["token"]["project"]["id"]


def valid_on(srv: LampiServer, tok: str, project: str) -> int:
    """The status of a Swift request on ``srv`` with ``tok`` (204: it validated)."""
    return requests.head(f"{srv.url}/v1/AUTH_{project}", headers={"X-Auth-Token": tok}, timeout=60).status_code


def s3(srv: LampiServer, access: str, secret: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=srv.url, aws_access_key_id=access, aws_secret_access_key=secret,
                        region_name="us-east-1")


def test_nothing_another_gateway_needs_is_on_local_disk(pair: Pair) -> None:
    for s in (pair.a, pair.b):
        assert not (s.data_dir / "keys").exists(), sorted(p.name for p in s.data_dir.iterdir())
        assert not (s.data_dir / "master.key").exists()  # the master key came from the configuration
    # and the database holds the keys sealed: no key text in clear
    import psycopg

    with psycopg.connect(pair.url, autocommit=True) as conn:
        rings = {r[0] for r in conn.execute("SELECT ring FROM keys")}
        assert {"master", "fernet"} <= rings
        for (sealed,) in conn.execute("SELECT sealed FROM keys"):
            assert sealed.startswith("gAAAAA")  # Fernet tokens of the master key


def test_token_issued_by_one_validates_on_the_other(pair: Pair) -> None:
    rc = pair.a.openrc()
    tok, project = token(pair.a, rc)
    assert valid_on(pair.b, tok, project) == 204
    r = requests.get(f"{pair.b.url}/v3/auth/tokens", headers={"X-Auth-Token": tok, "X-Subject-Token": tok},
                     timeout=60)
    assert r.status_code == 200 and r.json()["token"]["project"]["id"] == project
    tok_b, _ = token(pair.b, rc)
    assert valid_on(pair.a, tok_b, project) == 204


def test_ec2_key_made_on_one_signs_on_the_other_and_survives_rotation(pair: Pair) -> None:
    rc = pair.a.openrc()
    tok, project = token(pair.a, rc)
    user = requests.get(f"{pair.a.url}/v3/auth/tokens", headers={"X-Auth-Token": tok, "X-Subject-Token": tok},
                        timeout=60).json()["token"]["user"]["id"]
    r = requests.post(f"{pair.a.url}/v3/users/{user}/credentials/OS-EC2", headers={"X-Auth-Token": tok},
                      json={"tenant_id": project}, timeout=60)
    assert r.status_code == 201, r.text
    cred = r.json()["credential"]
    a, b = s3(pair.a, cred["access"], cred["secret"]), s3(pair.b, cred["access"], cred["secret"])
    bucket = "keys-" + uuid.uuid4().hex[:8]
    b.create_bucket(Bucket=bucket)
    a.put_object(Bucket=bucket, Key="k", Body=b"hello")
    assert b.get_object(Bucket=bucket, Key="k")["Body"].read() == b"hello"
    # rotated through an admin command with A's settings: both gateways go on signing
    out = json.loads(pair.a.cli("credential", "rotate-key", "--json").stdout)
    assert out["resealed"] >= 1 and out["removed_keys"], out
    assert b.get_object(Bucket=bucket, Key="k")["Body"].read() == b"hello"
    assert a.list_objects_v2(Bucket=bucket)["KeyCount"] == 1
    # SSE-S3: a new master key made on A; objects encrypted by either read on the other
    b.put_object(Bucket=bucket, Key="enc-before", Body=b"secret 1", ServerSideEncryption="AES256")
    new = json.loads(pair.a.cli("sse", "rotate-key", "--json").stdout)["primary_key"]
    time.sleep(1.5)  # gateways take a new primary in within a second
    a.put_object(Bucket=bucket, Key="enc-after", Body=b"secret 2", ServerSideEncryption="AES256")
    assert b.get_object(Bucket=bucket, Key="enc-after")["Body"].read() == b"secret 2"
    assert a.get_object(Bucket=bucket, Key="enc-before")["Body"].read() == b"secret 1"
    import psycopg

    with psycopg.connect(pair.url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM keys WHERE ring = 'sse' AND kid = %s", (new,)).fetchone()[0] == 1
    # KMS keys made by an admin command are known to both gateways
    pair.b.cli("kms", "create", "lab", "--master-key-file", str(pair.key_file))
    b.put_object(Bucket=bucket, Key="kms", Body=b"secret 3", ServerSideEncryption="aws:kms", SSEKMSKeyId="lab")
    assert a.get_object(Bucket=bucket, Key="kms")["Body"].read() == b"secret 3"


def test_token_key_rotation_on_one_is_honoured_by_the_other(pair: Pair) -> None:
    rc = pair.a.openrc()
    old, project = token(pair.a, rc)
    assert valid_on(pair.b, old, project) == 204  # B holds the first key only
    for _ in range(2):
        out = json.loads(pair.a.cli("token", "rotate-key", "--keep", "2", "--json").stdout)
    assert len(out["removed_keys"]) == 1  # keys 1 and 2 kept, key 0 gone
    time.sleep(1.5)  # A signs with the newest key once it has seen it (within a second)
    new, _ = token(pair.a, rc)
    assert valid_on(pair.b, new, project) == 204  # signed with a key B had never loaded
    assert valid_on(pair.a, old, project) == 401  # the removed key's tokens no longer validate
    assert valid_on(pair.b, old, project) == 401  # B re-read the ring when it met the new key


def _refused(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(args, capture_output=True, text=True, timeout=120,
                         env={**{k: v for k, v in os.environ.items() if not k.startswith("LAMPI_")}, **env})
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr, res.stderr
    # one clear line (besides the server's JSON log lines from before the check)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip() and not ln.startswith("{")]
    assert len(lines) == 1 and lines[0].startswith(("lampi: ", "Error: ")), res.stderr
    return res


def test_wrong_or_missing_master_key_is_refused_in_one_line(pair: Pair, tmp_path: Path) -> None:
    serve = [*lampi_cmd(), "serve", "--host", "127.0.0.1", "--port", str(free_port()), "--data-dir",
             str(tmp_path / "c"), "--meta-url", pair.url]
    res = _refused(serve, {"LAMPI_MASTER_KEY": generate_master_key()})
    assert "is not the master key" in res.stderr and "same master key" in res.stderr
    assert pair.key not in res.stderr
    res = _refused(serve, {})  # none given, and no master.key in its data dir
    assert "was not given" in res.stderr and "LAMPI_MASTER_KEY" in res.stderr
    res = _refused(serve, {"LAMPI_MASTER_KEY": "not-a-key"})
    assert "is not a master key" in res.stderr
    res = _refused(serve[:-2] + ["--meta-url", pair.url, "--master-key-file", str(tmp_path / "nope")], {})
    assert "does not exist" in res.stderr
    # an admin command too
    res = _refused([*lampi_cmd(), "project", "list", "--data-dir", str(tmp_path / "c"), "--meta-url", pair.url],
                   {"LAMPI_MASTER_KEY": generate_master_key()})
    assert "is not the master key" in res.stderr
    # the gateways are unaffected
    rc = pair.a.openrc()
    tok, project = token(pair.b, rc)
    assert valid_on(pair.a, tok, project) == 204


def test_first_gateway_without_a_master_key_makes_one_and_imports_key_files(pg: PGCluster, tmp_path: Path) -> None:
    """Zero config on a new database: the first gateway writes master.key (0600) into its
    data dir. A data dir from before keys moved (keys/ files, here made by a single-node
    server) has them copied into the database, so what they sealed still opens."""
    single = LampiServer(data_dir=tmp_path / "data", port=free_port())
    single.start()
    try:
        out = json.loads(single.cli("kms", "create", "old", "--json").stdout)
    finally:
        single.stop()
    assert (tmp_path / "data" / "keys" / "fernet-0").exists()
    url = pg.create_db()
    srv = LampiServer(data_dir=tmp_path / "data", port=free_port(), extra_args=["--meta-url", url])
    srv.start()
    try:
        key_file = tmp_path / "data" / "master.key"
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert "copied the key files" in srv.log()
        import psycopg

        from lampi.store.keyring import key_id

        with psycopg.connect(url, autocommit=True) as conn:
            rows = dict(conn.execute("SELECT ring || '-' || n, kid FROM keys").fetchall())
        assert rows["fernet-0"] == key_id((tmp_path / "data" / "keys" / "fernet-0").read_bytes())
        assert rows["kms/old-0"] == out["version"]
        # a second gateway with the same master key (from the first one's file) joins
        other = LampiServer(data_dir=tmp_path / "data2", port=free_port(),
                            extra_args=["--meta-url", url, "--master-key-file", str(key_file)])
        other.start()
        try:
            rc = srv.openrc()
            tok, project = token(srv, rc)
            assert valid_on(other, tok, project) == 204
        finally:
            other.stop()
    finally:
        srv.stop()
