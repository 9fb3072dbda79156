"""Master-key rotation (issue 13), as Fernet's MultiFernet and Keystone's fernet_rotate:
two gateways with data dirs of their own over one PostgreSQL (test_shared_keys.py's
pair). The documented procedure, end to end: (1) every gateway gets "new,old" and is
restarted; (2) `lampi master-key rotate` re-seals every row of the keys table with the
new key; (3) the old key is dropped. Tokens, S3 keys, temp URLs and SSE-S3/KMS objects
made before still work on both gateways after each step; a gateway or admin command
with only the old key is refused in one line; bad key lists change nothing.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.fernet import Fernet
from swiftclient.utils import generate_temp_url

from tests.functional.conftest import LampiServer, free_port, lampi_cmd
from tests.functional.test_shared_keys import (  # noqa: F401 (pg: the module fixture)
    Pair,
    _refused,
    generate_master_key,
    pg,
    running_pair,
    s3,
    token,
    valid_on,
)
from tests.pgcluster import PGCluster


@pytest.fixture(scope="module")
def pair(pg: PGCluster, ceph: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:  # noqa: F811
    with running_pair(pg, ceph, tmp_path_factory.mktemp("master-rotation")) as p:
        yield p


def rows(url: str) -> dict[str, str]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return {f"{r}-{n}": sealed for r, n, sealed in conn.execute("SELECT ring, n, sealed FROM keys")}


def rotate(srv: Any, env: dict[str, str]) -> Any:
    import subprocess

    meta = srv.extra_args[srv.extra_args.index("--meta-url") + 1]
    return subprocess.run([*lampi_cmd(), "master-key", "rotate", "--json", "--data-dir", str(srv.data_dir),
                           "--meta-url", meta], capture_output=True, text=True, timeout=120,
                          env={**{k: v for k, v in __import__("os").environ.items() if not k.startswith("LAMPI_")},
                               **env})


class Made:
    """What clients made before the rotation, and the checks that it all still works."""

    def __init__(self, pair: Pair) -> None:
        rc = pair.a.openrc()
        self.rc = rc
        self.token, self.project = token(pair.a, rc)
        user = requests.get(f"{pair.a.url}/v3/auth/tokens", timeout=60,
                            headers={"X-Auth-Token": self.token, "X-Subject-Token": self.token}).json()
        r = requests.post(f"{pair.a.url}/v3/users/{user['token']['user']['id']}/credentials/OS-EC2",
                          headers={"X-Auth-Token": self.token}, json={"tenant_id": self.project}, timeout=60)
        assert r.status_code == 201, r.text
        cred = r.json()["credential"]
        self.access, self.secret = cred["access"], cred["secret"]
        self.bucket = "rot-" + uuid.uuid4().hex[:8]
        a = s3(pair.a, self.access, self.secret)
        a.create_bucket(Bucket=self.bucket)
        a.put_object(Bucket=self.bucket, Key="plain", Body=b"plain bytes")
        a.put_object(Bucket=self.bucket, Key="sse", Body=b"sse-s3 bytes", ServerSideEncryption="AES256")
        pair.a.cli("kms", "create", "rot")
        a.put_object(Bucket=self.bucket, Key="kms", Body=b"kms bytes", ServerSideEncryption="aws:kms",
                     SSEKMSKeyId="rot")
        # a temp URL (the account's key, kept in the metadata store) for the plain object
        r = requests.post(f"{pair.a.url}/v1/AUTH_{self.project}", timeout=60,
                          headers={"X-Auth-Token": self.token, "X-Account-Meta-Temp-URL-Key": "rotkey"})
        assert r.status_code == 204, r.text
        self.temp_url = generate_temp_url(f"/v1/AUTH_{self.project}/{self.bucket}/plain", int(time.time()) + 3600,
                                          "rotkey", "GET")

    def check(self, pair: Pair, step: str) -> None:
        for srv in (pair.a, pair.b):
            assert valid_on(srv, self.token, self.project) == 204, step
            c = s3(srv, self.access, self.secret)
            for key, body in (("plain", b"plain bytes"), ("sse", b"sse-s3 bytes"), ("kms", b"kms bytes")):
                assert c.get_object(Bucket=self.bucket, Key=key)["Body"].read() == body, (step, key)
            r = requests.get(srv.url + self.temp_url, timeout=60)
            assert r.status_code == 200 and r.content == b"plain bytes", (step, r.status_code, r.text)
        # and new things made on one work on the other
        tok, _ = token(pair.b, self.rc)
        assert valid_on(pair.a, tok, self.project) == 204, step
        name = f"new-{uuid.uuid4().hex[:6]}"
        s3(pair.b, self.access, self.secret).put_object(Bucket=self.bucket, Key=name, Body=step.encode(),
                                                       ServerSideEncryption="AES256")
        got = s3(pair.a, self.access, self.secret).get_object(Bucket=self.bucket, Key=name)["Body"].read()
        assert got == step.encode()


def set_keys(pair: Pair, keys: list[str]) -> None:
    """Give both gateways ``keys`` (A: LAMPI_MASTER_KEY comma-separated; B: its file, one a line)."""
    pair.a.env["LAMPI_MASTER_KEY"] = ",".join(keys)
    pair.key_file.write_text("\n".join(keys) + "\n")


def restart(pair: Pair) -> None:
    for srv in (pair.a, pair.b):
        srv.stop()
        srv.start()


def test_master_key_rotation_end_to_end(pair: Pair, tmp_path: Path) -> None:
    old, new = pair.key, generate_master_key()
    made = Made(pair)
    made.check(pair, "before")
    before = rows(pair.url)
    assert len(before) >= 5  # master check, fernet, credential, sse, kms/rot

    # bad input: a malformed key in the list, an empty list, keys none of which opens the
    # rows: exit status 2, one line, nothing changed
    for env, says in (({"LAMPI_MASTER_KEY": f"{new},not-a-key"}, "key 2 of 2"),
                      ({"LAMPI_MASTER_KEY": " , "}, "holds no master key"),
                      ({"LAMPI_MASTER_KEY": new}, "is not the master key"),
                      ({"LAMPI_MASTER_KEY": f"{new},{generate_master_key()}"}, "none of the 2 master keys")):
        res = rotate(pair.a, env)
        assert res.returncode == 2, (env, res.stdout, res.stderr)
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and says in lines[0] and "Traceback" not in res.stderr, res.stderr
        assert new not in res.stderr and old not in res.stderr
        assert rows(pair.url) == before
    empty = tmp_path / "empty.key"
    empty.write_text("\n")
    res = rotate(pair.a, {"LAMPI_MASTER_KEY_FILE": str(empty)})
    assert res.returncode == 2 and "holds no master key" in res.stderr, res.stderr
    assert rows(pair.url) == before

    # (1) every gateway gets "new,old" and is restarted: everything works, nothing re-sealed yet
    set_keys(pair, [new, old])
    restart(pair)
    made.check(pair, "new,old")
    after_1 = rows(pair.url)
    assert all(after_1[k] == before[k] for k in before)  # rows from before untouched

    # a gateway C that skipped step 1 (old key alone), running through step 2
    c = LampiServer(data_dir=tmp_path / "data-c", port=free_port(), extra_args=list(pair.a.extra_args),
                    env={"LAMPI_MASTER_KEY": old})
    c.start()
    try:
        assert valid_on(c, made.token, made.project) == 204
        _rotate_and_check(pair, made, old, new, after_1, c)
    finally:
        c.stop()
    _after_rotation(pair, made, old, new, tmp_path)


def _rotate_and_check(pair: Pair, made: Made, old: str, new: str, after_1: dict[str, str], c: LampiServer) -> None:
    # (2) re-seal every row with the new key, through an admin command with A's settings
    res = rotate(pair.a, {"LAMPI_MASTER_KEY": f"{new},{old}"})
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["resealed"] == len(after_1) == out["rows"], out
    resealed = rows(pair.url)
    for name, sealed in resealed.items():
        Fernet(new.encode()).decrypt(sealed.encode())  # every row opens with the new key
    again = json.loads(rotate(pair.a, {"LAMPI_MASTER_KEY_FILE": str(pair.key_file)}).stdout)
    assert again == {"resealed": 0, "rows": len(resealed)}  # idempotent; the file's two lines work too
    assert rows(pair.url) == resealed
    made.check(pair, "rotated")  # the running gateways go on serving, no restart needed
    # a token key made now is sealed with the new key: C, which lacks it, answers a token
    # signed with it 503 (and logs why), never a wrong answer, never a 500
    pair.a.cli("token", "rotate-key")
    time.sleep(1.5)  # A signs with the new token key within a second
    tok, _ = token(pair.a, made.rc)
    assert valid_on(pair.b, tok, made.project) == 204
    assert valid_on(c, tok, made.project) == 503
    assert "re-sealed with a master key this lampi was not given" in c.log()
    assert valid_on(c, made.token, made.project) == 204  # the keys it holds still serve what they signed


def _after_rotation(pair: Pair, made: Made, old: str, new: str, tmp_path: Path) -> None:
    resealed = rows(pair.url)
    # a gateway (or admin command) with only the old key is refused, in one line, never serves
    serve = [*lampi_cmd(), "serve", "--host", "127.0.0.1", "--port", str(free_port()), "--data-dir",
             str(tmp_path / "late"), "--meta-url", pair.url, "--console-port", "0"]
    res = _refused(serve, {"LAMPI_MASTER_KEY": old})
    assert "is not the master key" in res.stderr and old not in res.stderr
    res = _refused([*lampi_cmd(), "project", "list", "--data-dir", str(tmp_path / "late"), "--meta-url", pair.url],
                   {"LAMPI_MASTER_KEY": old})
    assert "is not the master key" in res.stderr

    # (3) drop the old key: restarted with the new key alone, everything made before still works
    set_keys(pair, [new])
    restart(pair)
    made.check(pair, "new alone")
    # and keys made from now on are sealed with it
    pair.a.cli("token", "rotate-key")
    added = {k: v for k, v in rows(pair.url).items() if k not in resealed}
    assert added and all(Fernet(new.encode()).decrypt(v.encode()) for v in added.values())
    made.check(pair, "token key rotated after")
