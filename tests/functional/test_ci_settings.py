"""What a CI job hard-codes: fixed admin password and S3 key pair, and --ephemeral.

`lampi serve --admin-password P --s3-access-key A --s3-secret-key S` (or LAMPI_ADMIN_PASSWORD,
LAMPI_S3_ACCESS_KEY, LAMPI_S3_SECRET_KEY) as people start MinIO in a pipeline; `--ephemeral`
for a throw-away store that is deleted at exit and never fsynced.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import requests

from tests.functional.conftest import LampiServer, free_port, lampi_cmd, spawn_server, stop_server, wait_healthy


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAMPI_", "OS_", "AWS_", "ST_"))}
    env["LAMPI_CONSOLE_PORT"] = "0"  # no console on 8081: servers of parallel tests would collide
    env.update(extra)
    return env


def v3_env(srv: LampiServer, password: str) -> dict[str, str]:
    return clean_env(OS_AUTH_URL=srv.auth_url, OS_IDENTITY_API_VERSION="3", OS_USERNAME="admin",
                     OS_PASSWORD=password, OS_PROJECT_NAME="admin", OS_USER_DOMAIN_NAME="Default",
                     OS_PROJECT_DOMAIN_NAME="Default")


def swift(srv: LampiServer, password: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([shutil.which("swift") or "swift", *args], env=v3_env(srv, password), capture_output=True,
                          text=True, timeout=120)


def aws(srv: LampiServer, access: str, secret: str, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = clean_env(AWS_ACCESS_KEY_ID=access, AWS_SECRET_ACCESS_KEY=secret, AWS_DEFAULT_REGION="us-east-1",
                    AWS_CONFIG_FILE=str(tmp / "aws-config"), AWS_SHARED_CREDENTIALS_FILE=str(tmp / "aws-creds"))
    return subprocess.run([shutil.which("aws") or "aws", "--endpoint-url", srv.url, *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_fixed_credentials_from_flags_and_env(tmp_path):
    srv = LampiServer(data_dir=tmp_path / "data", port=free_port(),
                      extra_args=["--admin-password", "ci-Secret-1", "--s3-access-key", "CIACCESSKEY1",
                                  "--s3-secret-key", "ci-secret-key-1"])
    srv.start()
    try:
        r = swift(srv, "ci-Secret-1", "post", "from-ci")
        assert r.returncode == 0, r.stderr
        r = aws(srv, "CIACCESSKEY1", "ci-secret-key-1", tmp_path, "s3", "ls")
        assert r.returncode == 0 and "from-ci" in r.stdout, r.stdout + r.stderr
        assert "ci-Secret-1" in (srv.data_dir / "openrc.sh").read_text()  # `lampi openrc` tells the truth
        assert "ci-Secret-1" not in srv.log() and "ci-secret-key-1" not in srv.log()  # never logged
    finally:
        srv.stop()
    # the same store started with other fixed values (from the environment this time): the
    # old password and key stop working, the new ones work, the data is still there
    srv.extra_args = []
    srv.env = {"LAMPI_ADMIN_PASSWORD": "ci-Secret-2", "LAMPI_S3_ACCESS_KEY": "CIACCESSKEY1",
               "LAMPI_S3_SECRET_KEY": "ci-secret-key-2"}
    srv.start()
    try:
        assert swift(srv, "ci-Secret-1", "list").returncode != 0
        r = swift(srv, "ci-Secret-2", "list")
        assert r.returncode == 0 and r.stdout.split() == ["from-ci"], r.stderr
        r = aws(srv, "CIACCESSKEY1", "ci-secret-key-1", tmp_path, "s3", "ls")
        assert r.returncode != 0 and "SignatureDoesNotMatch" in r.stderr, r.stderr
        r = aws(srv, "CIACCESSKEY1", "ci-secret-key-2", tmp_path, "s3", "ls")
        assert r.returncode == 0 and "from-ci" in r.stdout, r.stderr
        # and the same values again: nothing changes, the key still works
        srv.stop()
        srv.start()
        assert aws(srv, "CIACCESSKEY1", "ci-secret-key-2", tmp_path, "s3", "ls").returncode == 0
        assert swift(srv, "ci-Secret-2", "list").returncode == 0
    finally:
        srv.stop()


@pytest.mark.parametrize("args, message", [
    (["--s3-access-key", "ONLYACCESS"], "give both or neither"),
    (["--s3-secret-key", "only-a-secret"], "give both or neither"),
    (["--s3-access-key", "AK", "--s3-secret-key", "long-enough-secret"], "s3_access_key"),
    (["--s3-access-key", "BAD KEY!", "--s3-secret-key", "long-enough-secret"], "s3_access_key"),
    (["--s3-access-key", "GOODKEY", "--s3-secret-key", "short"], "s3_secret_key"),
    (["--admin-password", "-looks-like-an-option"], "admin_password"),
])
def test_fixed_credentials_refused(tmp_path, args, message):
    r = subprocess.run([*lampi_cmd(), "serve", "--data-dir", str(tmp_path / "d"), "--port", str(free_port()), *args],
                       env=clean_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert not (tmp_path / "d").exists()


def start(tmp_path: Path, *args: str, cwd: Path | None = None) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    log = tmp_path / f"serve-{port}.log"
    with open(log, "wb") as fh:
        proc = spawn_server([*lampi_cmd(), "serve", "--port", str(port), "--log-format", "json", *args],
                            stdout=fh, stderr=subprocess.STDOUT, env=clean_env(TMPDIR=str(tmp_path)),
                            cwd=cwd or tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
    except BaseException:
        stop_server(proc, signal.SIGKILL)
        raise
    return proc, url, log


def data_dir_of(log: Path) -> Path:
    line = next(ln for ln in log.read_text().splitlines() if "data dir:" in ln)
    return Path(line.split("data dir:", 1)[1].strip())


def test_ephemeral_without_data_dir(tmp_path):
    """A new temporary data dir, said so in the banner, gone when the server stops; the
    fixed credentials work on it as on any store."""
    proc, url, log = start(tmp_path, "--ephemeral", "--admin-password", "eph-pass-1")
    try:
        dd = data_dir_of(log)
        assert dd.is_dir() and dd.is_relative_to(tmp_path) and (dd / "meta.db").exists()
        assert "EPHEMERAL" in log.read_text()
        tok = requests.post(f"{url}/v3/auth/tokens", timeout=60, json={"auth": {"identity": {
            "methods": ["password"], "password": {"user": {"name": "admin", "domain": {"name": "Default"},
                                                           "password": "eph-pass-1"}}},
            "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}})
        assert tok.status_code == 201
        assert not (tmp_path / "lampi-data").exists()  # not the default ./lampi-data
    finally:
        assert stop_server(proc) == 0
    assert not dd.exists()


def test_ephemeral_with_a_new_data_dir(tmp_path):
    dd = tmp_path / "scratch"
    proc, url, log = start(tmp_path, "--ephemeral", "--data-dir", str(dd))
    try:
        assert (dd / "openrc.sh").exists()
    finally:
        assert stop_server(proc) == 0
    assert not dd.exists()


def test_ephemeral_refuses_a_store_or_anything_else(tmp_path):
    store = tmp_path / "store"
    subprocess.run([*lampi_cmd(), "init", "--data-dir", str(store)], env=clean_env(), check=True,
                   capture_output=True, timeout=120)
    before = sorted(p.name for p in store.iterdir())
    other = tmp_path / "papers"
    other.mkdir()
    (other / "thesis.tex").write_text("keep me")
    for dd, says in ((store, "holds a lampi store"), (other, "is not empty")):
        r = subprocess.run([*lampi_cmd(), "serve", "--ephemeral", "--data-dir", str(dd), "--port", str(free_port())],
                           env=clean_env(), capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and says in r.stderr, r.stderr
    assert sorted(p.name for p in store.iterdir()) == before
    assert (other / "thesis.tex").read_text() == "keep me"
