"""Secrets at rest (issue 9, item 6): the data dir is private to the service user (0700,
every file 0600, every directory 0700, also after uploads and admin commands, and an
older data dir left open is fixed at start with one warning line); EC2 secrets are
sealed in meta.db with a key under keys/, so the database alone yields no usable S3
key; stores of older versions with clear secrets are sealed at start, once; the key can
be rotated while the server runs."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import requests
import swiftclient
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from .conftest import LampiServer
from .test_s3_features import signed_request, xml_code

# the credentials table as lampi created it before secrets were sealed
OLD_CREDENTIALS_DDL = """CREATE TABLE credentials (
    access TEXT PRIMARY KEY, secret TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    created_at REAL NOT NULL
)"""


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Start servers and admin commands the way most shells do: umask 022."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def not_private(root: Path) -> list[str]:
    """Every path under the data dir (itself included) that is not 0700 (dir) / 0600 (file)."""
    bad = []
    for path in [root, *root.rglob("*")]:
        st = path.lstat()
        want = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
        if stat.S_IMODE(st.st_mode) != want:
            bad.append(f"{path.relative_to(root)} {stat.S_IMODE(st.st_mode):o}")
    return bad


def open_up(root: Path) -> None:
    """Modes as older versions left them under umask 022: dirs 0755, files 0644."""
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def os_env(server: LampiServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "AWS_"))}
    env.update(server.openrc())
    return env


def openstack(server: LampiServer, *args: str) -> object:
    out = subprocess.run(["openstack", *args, "-f", "json"], env=os_env(server), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def s3_client(server: LampiServer, keys: dict[str, str]):  # noqa: ANN201
    return boto3.client("s3", endpoint_url=server.url, aws_access_key_id=keys["access"],
                        aws_secret_access_key=keys["secret"], region_name="us-east-1",
                        config=Config(retries={"max_attempts": 1}))


def swift(server: LampiServer) -> swiftclient.Connection:
    rc = server.openrc()
    return swiftclient.Connection(authurl=rc["OS_AUTH_URL"], user=rc["OS_USERNAME"], key=rc["OS_PASSWORD"],
                                  os_options={"user_domain_name": "Default", "project_domain_name": "Default",
                                              "project_name": rc["OS_PROJECT_NAME"]},
                                  auth_version="3", retries=0)


def s3_works(server: LampiServer, keys: dict[str, str]) -> None:
    """The key pair signs requests the server accepts: SigV4 (boto3) and SigV2 (s3cmd's
    default signer, through botocore's HmacV1)."""
    s3 = s3_client(server, keys)
    bucket = "b" + uuid.uuid4().hex[:12]
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"sealed but usable")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"sealed but usable"
    v2 = boto3.client("s3", endpoint_url=server.url, aws_access_key_id=keys["access"],
                      aws_secret_access_key=keys["secret"], region_name="us-east-1",
                      config=Config(signature_version="s3", retries={"max_attempts": 1}))
    assert bucket in [b["Name"] for b in v2.list_buckets()["Buckets"]]


def ec2_create(server: LampiServer) -> dict[str, str]:
    made = openstack(server, "ec2", "credentials", "create")
    assert isinstance(made, dict) and made["secret"]  # shown once, at creation, as Keystone does
    return {"access": made["access"], "secret": made["secret"]}


def cli_create(server: LampiServer, user: str = "admin", project: str = "admin") -> dict[str, str]:
    return json.loads(server.cli("credential", "create", user, project, "--json").stdout)


def assert_not_in_store(data_dir: Path, secrets: list[str]) -> None:
    """No secret in the raw bytes of meta.db (and its -wal/-shm), nor in any value of any
    row of any table."""
    raw = b"".join(p.read_bytes() for p in sorted(data_dir.glob("meta.db*")))
    assert raw
    assert [s for s in secrets if s.encode() in raw] == []
    with sqlite3.connect(f"file:{data_dir / 'meta.db'}?mode=ro", uri=True) as c:
        tables = [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        values = [str(v) for t in tables for row in c.execute(f'SELECT * FROM "{t}"') for v in row]
    assert [s for s in secrets if any(s in v for v in values)] == []


# -- file modes ---------------------------------------------------------------------------


def test_data_dir_and_everything_in_it_are_private(fresh_server: LampiServer, open_umask: None,
                                                   tmp_path: Path) -> None:
    fresh_server.workers = 2
    fresh_server.start()
    root = fresh_server.data_dir
    assert not_private(root) == []
    # uploads: Swift, S3 (a multipart upload too), versions, a temp-URL key
    conn = swift(fresh_server)
    conn.put_container("c", headers={"X-Versions-Enabled": "true"})
    for i in range(3):
        conn.put_object("c", "o", b"v%d" % i)
    conn.post_account({"X-Account-Meta-Temp-URL-Key": "tempurl-key"})
    keys = ec2_create(fresh_server)
    s3 = s3_client(fresh_server, keys)
    s3.create_bucket(Bucket="mpu-bucket")
    big = tmp_path / "big"
    big.write_bytes(os.urandom(6 * 1024 * 1024))
    s3.upload_file(str(big), "mpu-bucket", "big",
                   Config=TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024))
    s3.create_multipart_upload(Bucket="mpu-bucket", Key="pending")
    assert not_private(root) == []
    # admin commands, each creating or rewriting files
    fresh_server.cli("project", "create", "p2")
    fresh_server.cli("user", "create", "u2", "--password", "pw", "--project", "p2")
    cli_create(fresh_server, "u2", "p2")
    fresh_server.cli("credential", "rotate-key")
    fresh_server.cli("fsck")
    (root / "openrc.sh").unlink()  # rewritten (a new admin password) at the next start
    fresh_server.stop()
    fresh_server.start()
    assert (root / "openrc.sh").exists()
    assert not_private(root) == []
    assert "open to other users" not in fresh_server.log()


def test_an_open_data_dir_is_made_private_at_start_with_one_warning(fresh_server: LampiServer,
                                                                     open_umask: None) -> None:
    fresh_server.start()
    conn = swift(fresh_server)
    conn.put_container("c")
    conn.put_object("c", "o", b"data")
    keys = ec2_create(fresh_server)
    fresh_server.stop()
    root = fresh_server.data_dir
    open_up(root)
    opened = not_private(root)
    assert {"meta.db 644", ". 755", "keys 755", "openrc.sh 644", "blobs 755"} <= set(opened)
    fresh_server.start()
    assert not_private(root) == []
    warnings = [json.loads(line) for line in fresh_server.log().splitlines()
                if line.startswith("{") and "open to other users" in line]
    assert len(warnings) == 1, fresh_server.log()
    msg = warnings[0]["msg"] if "msg" in warnings[0] else json.dumps(warnings[0])
    assert warnings[0].get("level", "").lower().startswith("warn")
    for name in ("meta.db", "openrc.sh", "keys"):
        assert name in msg
    assert f"{len(opened)} path(s)" in msg
    assert conn.get_object("c", "o")[1] == b"data"
    s3_works(fresh_server, keys)
    # a private data dir: nothing to say at the next start
    fresh_server.stop()
    fresh_server.start()
    assert "open to other users" not in fresh_server.log()


# -- EC2 secrets sealed in meta.db ---------------------------------------------------------


def test_meta_db_holds_no_ec2_secret_in_clear(fresh_server: LampiServer) -> None:
    fresh_server.workers = 2
    fresh_server.start()
    made = [ec2_create(fresh_server), cli_create(fresh_server)]
    # the generic credentials API with a secret of the caller's choosing
    rc = fresh_server.openrc()
    tok = requests.post(f"{fresh_server.url}/v3/auth/tokens", json={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": rc["OS_USERNAME"], "domain": {"name": "Default"}, "password": rc["OS_PASSWORD"]}}},
        "scope": {"project": {"name": rc["OS_PROJECT_NAME"], "domain": {"name": "Default"}}}}}, timeout=30)
    project_id = tok.json()["token"]["project"]["id"]
    chosen = {"access": "chosen-" + uuid.uuid4().hex, "secret": "my-own-secret-" + uuid.uuid4().hex}
    r = requests.post(f"{fresh_server.url}/v3/credentials", headers={"X-Auth-Token": tok.headers["X-Subject-Token"]},
                      json={"credential": {"type": "ec2", "project_id": project_id, "blob": json.dumps(chosen)}},
                      timeout=30)
    assert r.status_code == 201, r.text
    made.append(chosen)
    secrets = [k["secret"] for k in made]
    assert_not_in_store(fresh_server.data_dir, secrets)  # the WAL holds the writes still
    for keys in made:
        s3_works(fresh_server, keys)
    # the owner still reads the secret back, as from Keystone
    listed = openstack(fresh_server, "ec2", "credentials", "list")
    assert {(k["Access"], k["Secret"]) for k in listed} >= {(k["access"], k["secret"]) for k in made}  # type: ignore[union-attr]
    shown = openstack(fresh_server, "ec2", "credentials", "show", made[0]["access"])
    assert shown["secret"] == made[0]["secret"]  # type: ignore[index]
    out = subprocess.run(["aws", "--endpoint-url", fresh_server.url, "s3", "ls"], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "AWS_ACCESS_KEY_ID": made[1]["access"],
                                           "AWS_SECRET_ACCESS_KEY": made[1]["secret"],
                                           "AWS_DEFAULT_REGION": "us-east-1"})
    assert out.returncode == 0, out.stderr
    fresh_server.stop()  # checkpointed into meta.db
    assert_not_in_store(fresh_server.data_dir, secrets)
    # meta.db without keys/ gives nothing usable: the server says so, and refuses the key
    for p in (fresh_server.data_dir / "keys").glob("credential-*"):
        p.unlink()
    fresh_server.start()
    r = signed_request("GET", fresh_server.url + "/", made[0])
    assert (r.status_code, xml_code(r)) == (503, "ServiceUnavailable")
    r = requests.get(f"{fresh_server.url}/v3/credentials", headers={"X-Auth-Token": tok.headers["X-Subject-Token"]},
                     timeout=30)
    assert r.status_code == 503 and r.json()["error"]["code"] == 503 and "keys" in r.json()["error"]["message"]
    assert "cannot be unsealed" in fresh_server.log() and made[0]["secret"] not in fresh_server.log()


def make_old_store(data_dir: Path, creds: list[dict[str, str]]) -> None:
    """Turn a stopped server's data dir into one of an older version: the credentials
    table without key_hash, the secrets in clear, no sealing key, modes left open."""
    with sqlite3.connect(data_dir / "meta.db", isolation_level=None) as c:
        c.execute("PRAGMA secure_delete=OFF")  # the default of most SQLite builds
        rows = {a: (u, p, t) for a, u, p, t in c.execute("SELECT access, user_id, project_id, created_at "
                                                         "FROM credentials")}
        c.execute("DROP TABLE credentials")
        c.execute(OLD_CREDENTIALS_DDL)
        c.execute("CREATE INDEX credentials_by_user ON credentials (user_id)")
        for k in creds:
            c.execute("INSERT INTO credentials VALUES (?, ?, ?, ?, ?)", (k["access"], k["secret"], *rows[k["access"]]))
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for p in (data_dir / "keys").glob("credential-*"):
        p.unlink()
    open_up(data_dir)
    raw = (data_dir / "meta.db").read_bytes()
    assert all(k["secret"].encode() in raw for k in creds)


def test_an_old_store_with_clear_secrets_is_sealed_at_start_once(fresh_server: LampiServer) -> None:
    fresh_server.start()
    fresh_server.cli("project", "create", "lab")
    fresh_server.cli("user", "create", "alice", "--password", "pw-alice", "--project", "lab")
    made = [ec2_create(fresh_server), cli_create(fresh_server, "alice", "lab"), cli_create(fresh_server)]
    fresh_server.stop()
    make_old_store(fresh_server.data_dir, made)

    fresh_server.start()
    sealed = [line for line in fresh_server.log().splitlines() if "stored in clear" in line]
    assert len(sealed) == 1 and "sealed 3 EC2 secret" in sealed[0], fresh_server.log()
    assert not_private(fresh_server.data_dir) == []
    assert_not_in_store(fresh_server.data_dir, [k["secret"] for k in made])
    assert [p.name for p in (fresh_server.data_dir / "keys").glob("credential-*")] == ["credential-0"]
    for keys in made:
        s3_works(fresh_server, keys)
    # once: the next start has nothing to seal, and the keys still work
    fresh_server.stop()
    fresh_server.start()
    assert "stored in clear" not in fresh_server.log()
    for keys in made:
        s3_works(fresh_server, keys)
    fresh_server.stop()
    assert_not_in_store(fresh_server.data_dir, [k["secret"] for k in made])


def test_rotating_the_key_beside_a_running_server(fresh_server: LampiServer) -> None:
    fresh_server.workers = 2
    fresh_server.start()
    made = [ec2_create(fresh_server), cli_create(fresh_server)]
    for keys in made:  # both workers resolve (and cache) the keys before the rotation
        assert {signed_request("GET", fresh_server.url + "/", keys).status_code for _ in range(10)} == {200}
    keys_dir = fresh_server.data_dir / "keys"
    before = (keys_dir / "credential-0").read_bytes()
    out = json.loads(fresh_server.cli("credential", "rotate-key", "--json").stdout)
    assert out["resealed"] == 2 and out["unopenable"] == []
    assert sorted(p.name for p in keys_dir.glob("credential-*")) == ["credential-1"]
    assert (keys_dir / "credential-1").read_bytes() != before
    # every worker reads the re-sealed rows with the new key; new keys are sealed with it
    made.append(ec2_create(fresh_server))
    for keys in made:
        assert {signed_request("GET", fresh_server.url + "/", keys).status_code for _ in range(10)} == {200}
        s3_works(fresh_server, keys)
    with sqlite3.connect(f"file:{fresh_server.data_dir / 'meta.db'}?mode=ro", uri=True) as c:
        assert len({r[0] for r in c.execute("SELECT key_hash FROM credentials")}) == 1
