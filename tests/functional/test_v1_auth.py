"""Swift v1.0 auth (``-A .../auth/v1.0 -U project:user -K key``) and the
``OS_AUTH_TOKEN`` + ``OS_STORAGE_URL`` pair that Allas's ``allas_conf`` exports."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
import swiftclient
from swiftclient.exceptions import ClientException

from tests.functional.conftest import LampiServer


def swift_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ST_"))}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    return env


def run_swift(args: list[str], env: dict[str, str], cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(["swift", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60)
    if check:
        assert res.returncode == 0, (args, res.stdout, res.stderr)
    return res


@pytest.fixture(scope="module")
def v1_user(server: LampiServer) -> dict[str, str]:
    tag = uuid.uuid4().hex[:10]
    project, user, key = f"v1proj-{tag}", f"v1user-{tag}", f"key-{tag}:with:colons"
    pid = server.cli("project", "create", project).stdout.strip()
    server.cli("user", "create", user, "--password", key, "--project", project, "--role", "member")
    return {"project": project, "project_id": pid, "user": user, "key": key}


def test_raw_v1_auth(server: LampiServer, v1_user: dict[str, str]) -> None:
    r = requests.get(f"{server.url}/auth/v1.0", timeout=10, headers={
        "X-Auth-User": f"{v1_user['project']}:{v1_user['user']}", "X-Auth-Key": v1_user["key"]})
    assert r.status_code == 200
    assert r.headers["X-Storage-Url"] == f"{server.url}/v1/AUTH_{v1_user['project_id']}"
    token = r.headers["X-Auth-Token"]
    assert r.headers["X-Storage-Token"] == token
    assert 8 * 3600 - 60 < int(r.headers["X-Auth-Token-Expires"]) <= 8 * 3600
    assert "X-Trans-Id" in r.headers
    h = requests.head(r.headers["X-Storage-Url"], headers={"X-Auth-Token": token}, timeout=10)
    assert h.status_code == 204
    # the token is a Keystone token: identity accepts it too
    p = requests.get(f"{server.auth_url}/auth/projects", headers={"X-Auth-Token": token}, timeout=10)
    assert [x["id"] for x in p.json()["projects"]] == [v1_user["project_id"]]
    # tempauth's older header names work as well
    r2 = requests.get(f"{server.url}/auth/v1.0", timeout=10, headers={
        "X-Storage-User": f"{v1_user['project']}:{v1_user['user']}", "X-Storage-Pass": v1_user["key"]})
    assert r2.status_code == 200


@pytest.mark.parametrize("headers", [
    {},
    {"X-Auth-User": "nocolon", "X-Auth-Key": "k"},
    {"X-Auth-User": "{project}:{user}"},
    {"X-Auth-User": "{project}:{user}", "X-Auth-Key": "wrong"},
    {"X-Auth-User": "{project}:{user}", "X-Auth-Key": ""},
    {"X-Auth-User": "{project}:nosuchuser", "X-Auth-Key": "{key}"},
    {"X-Auth-User": "nosuchproject:{user}", "X-Auth-Key": "{key}"},
    {"X-Auth-User": "admin:{user}", "X-Auth-Key": "{key}"},  # a project the user has no role on
    {"X-Auth-User": ":{user}", "X-Auth-Key": "{key}"},
])
def test_v1_auth_refusals_are_401(server: LampiServer, v1_user: dict[str, str], headers: dict[str, str]) -> None:
    h = {k: v.format(**v1_user) for k, v in headers.items()}
    r = requests.get(f"{server.url}/auth/v1.0", headers=h, timeout=10)
    assert r.status_code == 401
    assert "X-Auth-Token" not in r.headers and "X-Storage-Url" not in r.headers
    assert r.headers["Content-Type"].startswith("text/")


def test_v1_auth_wrong_method(server: LampiServer) -> None:
    assert requests.post(f"{server.url}/auth/v1.0", timeout=10).status_code == 405


def test_swiftclient_auth_version_1(server: LampiServer, v1_user: dict[str, str], tmp_path: Path) -> None:
    conn = swiftclient.Connection(authurl=f"{server.url}/auth/v1.0", user=f"{v1_user['project']}:{v1_user['user']}",
                                  key=v1_user["key"], auth_version="1", retries=0)
    c = "v1c-" + uuid.uuid4().hex[:8]
    conn.put_container(c)
    conn.put_object(c, "hello.txt", b"hello v1", content_type="text/plain")
    assert conn.get_object(c, "hello.txt")[1] == b"hello v1"
    assert conn.url == f"{server.url}/v1/AUTH_{v1_user['project_id']}"
    conn.delete_object(c, "hello.txt")
    conn.delete_container(c)
    bad = swiftclient.Connection(authurl=f"{server.url}/auth/v1.0", user=f"{v1_user['project']}:{v1_user['user']}",
                                 key="wrong", auth_version="1", retries=0)
    with pytest.raises(ClientException) as exc:
        bad.head_account()
    assert exc.value.http_status == 401


def test_swift_cli_v1_auth(server: LampiServer, v1_user: dict[str, str], tmp_path: Path) -> None:
    base = ["-A", f"{server.url}/auth/v1.0", "-U", f"{v1_user['project']}:{v1_user['user']}", "-K", v1_user["key"]]
    out = run_swift([*base, "stat"], swift_env()).stdout
    assert f"Account: AUTH_{v1_user['project_id']}" in out
    c = "v1cli-" + uuid.uuid4().hex[:8]
    (tmp_path / "f.txt").write_text("from the v1 CLI")
    run_swift([*base, "upload", c, "f.txt"], swift_env(), cwd=tmp_path)
    assert run_swift([*base, "list", c], swift_env()).stdout.split() == ["f.txt"]
    run_swift([*base, "delete", c], swift_env())
    res = run_swift(["-A", f"{server.url}/auth/v1.0", "-U", f"{v1_user['project']}:{v1_user['user']}", "-K", "bad",
                     "stat"], swift_env(), check=False)
    assert res.returncode != 0
    assert "401" in res.stderr or "Unauthorized" in res.stderr


def allas_conf_env(server: LampiServer, v1_user: dict[str, str], url_form: str) -> dict[str, str]:
    """What ``source allas_conf`` leaves in the environment (without -k)."""
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "id": v1_user["user"], "password": v1_user["key"]}}},
        "scope": {"project": {"domain": {"id": "default"}, "name": v1_user["project"]}}}}
    r = requests.post(f"{server.auth_url}/auth/tokens", json=body, timeout=10)
    assert r.status_code == 201, r.text
    storage_url = next(e["url"] for svc in r.json()["token"]["catalog"] if svc["type"] == "object-store"
                       for e in svc["endpoints"] if e["interface"] == "public")
    assert "/swift/v1/AUTH_" in storage_url  # the catalog has Allas's form
    if url_form == "v1":
        storage_url = storage_url.replace("/swift/v1/AUTH_", "/v1/AUTH_")
    env = swift_env()
    env.update({"OS_AUTH_TOKEN": r.headers["X-Subject-Token"], "OS_STORAGE_URL": storage_url})
    return env


@pytest.mark.parametrize("url_form", ["v1", "swift"])
@pytest.mark.parametrize("keep", ["only-token-and-url", "as-allas_conf-leaves-it"])
def test_swift_cli_with_os_auth_token_and_storage_url(server: LampiServer, v1_user: dict[str, str], tmp_path: Path,
                                                     url_form: str, keep: str) -> None:
    env = allas_conf_env(server, v1_user, url_form)
    if keep == "as-allas_conf-leaves-it":
        # allas_conf keeps these too but unsets the password: the CLI must not try to log in
        env.update({"OS_AUTH_URL": server.auth_url, "OS_USERNAME": v1_user["user"],
                    "OS_PROJECT_NAME": v1_user["project"]})
    c = "tok-" + uuid.uuid4().hex[:8]
    (tmp_path / "data.bin").write_bytes(b"\x00token upload\xff" * 100)
    run_swift(["upload", c, "data.bin"], env, cwd=tmp_path)
    assert c in run_swift(["list"], env).stdout.split()
    assert run_swift(["list", c], env).stdout.split() == ["data.bin"]
    stat = run_swift(["stat", c, "data.bin"], env).stdout
    assert "Content Length: 1400" in stat
    out = tmp_path / "out"
    out.mkdir()
    run_swift(["download", c, "data.bin"], env, cwd=out)
    assert (out / "data.bin").read_bytes() == (tmp_path / "data.bin").read_bytes()
    run_swift(["delete", c], env)
    assert c not in run_swift(["list"], env).stdout.split()


def test_python_swiftclient_preauth(server: LampiServer, v1_user: dict[str, str]) -> None:
    """rclone/swiftclient with a pre-obtained token and URL (``env_auth``)."""
    env = allas_conf_env(server, v1_user, "swift")
    conn = swiftclient.Connection(preauthurl=env["OS_STORAGE_URL"], preauthtoken=env["OS_AUTH_TOKEN"], retries=0)
    headers, _ = conn.get_account()
    assert "x-account-container-count" in headers
    bad = swiftclient.Connection(preauthurl=env["OS_STORAGE_URL"], preauthtoken=env["OS_AUTH_TOKEN"][:-3] + "abc",
                                 retries=0)
    with pytest.raises(ClientException) as exc:
        bad.get_account()
    assert exc.value.http_status == 401
