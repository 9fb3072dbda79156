"""The admin CLI (``lampi project|user|role|openrc``) on a running server's data dir,
with its effects checked through Keystone v3 and Swift by python-swiftclient."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
import swiftclient
from swiftclient.exceptions import ClientException

from tests.functional.conftest import LampiServer, lampi_cmd


def connect(server: LampiServer, user: str, password: str, project: str) -> swiftclient.Connection:
    return swiftclient.Connection(
        authurl=server.auth_url, user=user, key=password, auth_version="3", retries=0,
        os_options={"user_domain_name": "Default", "project_domain_name": "Default", "project_name": project},
    )


def can_login(server: LampiServer, user: str, password: str, project: str) -> bool:
    try:
        connect(server, user, password, project).head_account()
    except ClientException as exc:
        # swiftclient reports a failed Keystone login without an http_status
        assert exc.http_status == 401 or str(exc).startswith("Unauthorized"), exc
        return False
    return True


def no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr


def fails(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    assert proc.returncode != 0, proc.stdout
    no_traceback(proc)
    assert proc.stderr.startswith(("Error:", "Usage:")), proc.stderr
    for w in words:
        assert w.lower() in proc.stderr.lower(), proc.stderr


def test_project_create_list_delete(server: LampiServer, unique: str) -> None:
    created = json.loads(server.cli("project", "create", unique, "--description", "lab", "--json").stdout)
    assert created["name"] == unique
    assert created["domain_id"] == "default"
    assert len(created["id"]) == 32

    listed = json.loads(server.cli("project", "list", "--json").stdout)
    row = next(p for p in listed if p["name"] == unique)
    assert row == {"id": created["id"], "name": unique, "domain_id": "default", "description": "lab"}
    assert any(p["name"] == "admin" for p in listed)
    # the human table lists it as well
    assert unique in server.cli("project", "list").stdout

    # plain create prints just the id (scriptable)
    other = unique + "b"
    pid = server.cli("project", "create", other).stdout.strip()
    assert pid in {p["id"] for p in json.loads(server.cli("project", "list", "--json").stdout)}

    server.cli("project", "delete", unique)  # by name
    server.cli("project", "delete", pid)  # by id
    names = {p["name"] for p in json.loads(server.cli("project", "list", "--json").stdout)}
    assert unique not in names and other not in names


def test_user_lifecycle_through_keystone(server: LampiServer, unique: str) -> None:
    proj = unique + "-p"
    user = unique + "-u"
    server.cli("project", "create", proj)
    out = json.loads(server.cli("user", "create", user, "--password", "pw-one", "--project", proj,
                                "--role", "member", "--json").stdout)
    assert out["name"] == user
    assert len(out["id"]) == 32

    # the new user logs in with Keystone v3 and reaches its project's account
    conn = connect(server, user, "pw-one", proj)
    conn.put_container(unique)
    conn.put_object(unique, "o", b"data")
    assert conn.get_object(unique, "o")[1] == b"data"
    assert conn.url.endswith("/AUTH_" + out["default_project_id"])
    assert not can_login(server, user, "wrong", proj)

    users = json.loads(server.cli("user", "list", "--json").stdout)
    me = next(u for u in users if u["name"] == user)
    assert me["id"] == out["id"]
    assert me["enabled"] is True
    assert [(r["project"], r["role"]) for r in me["roles"]] == [(proj, "member")]
    assert user in server.cli("user", "list").stdout

    server.cli("user", "set-password", user, "--password", "pw-two")
    assert not can_login(server, user, "pw-one", proj)
    assert can_login(server, user, "pw-two", proj)

    # by id works as well as by name
    server.cli("user", "set-password", out["id"], "--password", "pw-three")
    assert can_login(server, user, "pw-three", proj)

    conn = connect(server, user, "pw-three", proj)
    conn.delete_object(unique, "o")
    conn.delete_container(unique)
    server.cli("user", "delete", user)
    assert not can_login(server, user, "pw-three", proj)
    assert user not in {u["name"] for u in json.loads(server.cli("user", "list", "--json").stdout)}
    server.cli("project", "delete", proj)


def test_role_grant_revoke(server: LampiServer, unique: str) -> None:
    proj_a, proj_b, user = unique + "-a", unique + "-b", unique + "-u"
    server.cli("project", "create", proj_a)
    server.cli("project", "create", proj_b)
    server.cli("user", "create", user, "--password", "pw", "--project", proj_a, "--role", "reader")

    # reader: can read, cannot write
    conn = connect(server, user, "pw", proj_a)
    conn.head_account()
    with pytest.raises(ClientException) as ei:
        conn.put_container(unique)
    assert ei.value.http_status == 403

    # no role on project b yet
    assert not can_login(server, user, "pw", proj_b)
    server.cli("role", "grant", user, proj_b, "member")
    conn_b = connect(server, user, "pw", proj_b)
    conn_b.put_container(unique)
    conn_b.delete_container(unique)
    roles = next(u for u in json.loads(server.cli("user", "list", "--json").stdout) if u["name"] == user)["roles"]
    assert sorted((r["project"], r["role"]) for r in roles) == [(proj_a, "reader"), (proj_b, "member")]

    server.cli("role", "revoke", user, proj_b, "member")
    assert not can_login(server, user, "pw", proj_b)
    assert can_login(server, user, "pw", proj_a)
    server.cli("role", "revoke", user, proj_a, "reader")
    assert not can_login(server, user, "pw", proj_a)

    server.cli("user", "delete", user)
    server.cli("project", "delete", proj_a)
    server.cli("project", "delete", proj_b)


def test_user_create_without_project_has_no_access(server: LampiServer, unique: str) -> None:
    server.cli("user", "create", unique, "--password", "pw")
    assert not can_login(server, unique, "pw", "admin")
    # --role makes no sense without --project
    fails(server.cli("user", "create", unique + "x", "--password", "pw", "--role", "admin", check=False),
          "--project")
    assert unique + "x" not in {u["name"] for u in json.loads(server.cli("user", "list", "--json").stdout)}
    server.cli("user", "delete", unique)


def test_password_prompt_from_stdin(server: LampiServer, unique: str) -> None:
    server.cli("user", "create", unique, "--project", "admin", "--role", "reader", input="pw-in\npw-in\n")
    assert can_login(server, unique, "pw-in", "admin")
    server.cli("user", "delete", unique)


def test_bad_admin_input(server: LampiServer, unique: str) -> None:
    server.cli("project", "create", unique)
    fails(server.cli("project", "create", unique, check=False), unique, "exists")
    fails(server.cli("project", "create", "", check=False), "project name")
    fails(server.cli("project", "delete", unique + "-nope", check=False), "could not find project")
    fails(server.cli("user", "delete", unique + "-nobody", check=False), "could not find user")
    fails(server.cli("user", "set-password", unique + "-nobody", "--password", "x", check=False),
          "could not find user")
    fails(server.cli("user", "create", unique, "--password", "x", "--project", unique + "-nope", check=False),
          "could not find project")
    # the failed create left no user behind
    assert unique not in {u["name"] for u in json.loads(server.cli("user", "list", "--json").stdout)}
    fails(server.cli("user", "create", unique, "--password", "x", "--project", unique, "--role", "boss",
                     check=False), "boss", "admin", "member", "reader")
    fails(server.cli("role", "grant", "admin", unique, "superuser", check=False), "superuser")
    fails(server.cli("role", "grant", unique + "-nobody", unique, "member", check=False), "could not find user")
    fails(server.cli("role", "grant", "admin", unique + "-nope", "member", check=False), "could not find project")
    fails(server.cli("role", "revoke", "admin", unique, "member", check=False), "not found")
    server.cli("user", "create", unique, "--password", "x")
    fails(server.cli("user", "create", unique, "--password", "y", check=False), unique, "exists")
    # the duplicate did not change the first user's password
    server.cli("role", "grant", unique, unique, "reader")
    assert can_login(server, unique, "x", unique)
    assert not can_login(server, unique, "y", unique)
    server.cli("user", "delete", unique)

    # a project with containers cannot be deleted
    server.cli("user", "create", unique + "-w", "--password", "pw", "--project", unique)
    conn = connect(server, unique + "-w", "pw", unique)
    conn.put_container(unique)
    fails(server.cli("project", "delete", unique, check=False), "container")
    assert conn.head_container(unique) is not None
    conn.delete_container(unique)
    server.cli("user", "delete", unique + "-w")
    server.cli("project", "delete", unique)


def test_openrc_evals_to_v3_env(server: LampiServer) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    cmd = " ".join(f"'{c}'" for c in lampi_cmd())
    proc = subprocess.run(["bash", "-c", f'eval "$({cmd} openrc --data-dir \'{server.data_dir}\')"; env'],
                          capture_output=True, text=True, env=env, check=True, timeout=60)
    got = dict(line.split("=", 1) for line in proc.stdout.splitlines() if line.startswith("OS_"))
    assert got["OS_AUTH_URL"] == f"{server.url}/v3"
    assert got["OS_IDENTITY_API_VERSION"] == "3"
    assert got["OS_USERNAME"] == "admin"
    assert got["OS_PASSWORD"]
    assert got["OS_USER_DOMAIN_NAME"] == "Default"
    assert got["OS_PROJECT_NAME"] == "admin"
    assert got["OS_PROJECT_DOMAIN_NAME"] == "Default"
    assert got["OS_REGION_NAME"] == "regionOne"
    assert got["OS_INTERFACE"] == "public"
    assert can_login(server, got["OS_USERNAME"], got["OS_PASSWORD"], got["OS_PROJECT_NAME"])


def test_openrc_after_swift_auth_works_with_openstack(server: LampiServer, tmp_path: Path) -> None:
    """`eval "$(swift auth)"` (as allas_conf) leaves OS_AUTH_TOKEN and OS_STORAGE_URL set,
    which `openstack` refuses beside a password: the RC file unsets them, as CSC's do."""
    import shutil

    if shutil.which("openstack") is None or shutil.which("swift") is None:
        pytest.skip("openstack or swift CLI not installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["HOME"] = str(tmp_path)  # no clouds.yaml of the developer's
    cmd = " ".join(f"'{c}'" for c in lampi_cmd())
    rc = f'eval "$({cmd} openrc --data-dir \'{server.data_dir}\')"'
    script = (f'{rc} && eval "$(swift auth)" && test -n "$OS_AUTH_TOKEN" && {rc} && '
              'test -z "$OS_AUTH_TOKEN$OS_STORAGE_URL" && openstack container list -f value && echo ok')
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=180)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stdout + proc.stderr
    text = (server.data_dir / "openrc.sh").read_text()
    assert "unset OS_AUTH_TOKEN OS_STORAGE_URL" in text


def test_openrc_missing_data_dir(tmp_path: Path) -> None:
    proc = subprocess.run([*lampi_cmd(), "openrc", "--data-dir", str(tmp_path / "nothing")],
                          capture_output=True, text=True, timeout=60)
    fails(proc, "lampi serve")


def test_data_dir_from_env(server: LampiServer) -> None:
    env = dict(os.environ, LAMPI_DATA_DIR=str(server.data_dir))
    env.pop("LAMPI_CONFIG", None)
    proc = subprocess.run([*lampi_cmd(), "openrc"], capture_output=True, text=True, env=env, timeout=60, check=True)
    assert proc.stdout == (server.data_dir / "openrc.sh").read_text()


def _commands() -> list[tuple[list[str], click.Command]]:
    from lampi.cli.main import cli

    out: list[tuple[list[str], click.Command]] = []

    def walk(path: list[str], cmd: click.Command) -> None:
        out.append((path, cmd))
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                walk([*path, name], sub)

    walk([], cli)
    return out


@pytest.mark.parametrize("path,cmd", _commands(), ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_help_mentions_every_option(path: list[str], cmd: click.Command) -> None:
    proc = subprocess.run([*lampi_cmd(), *path, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage: lampi"), proc.stdout
    for param in cmd.params:
        if isinstance(param, click.Option):
            for opt in param.opts:
                assert opt in proc.stdout, f"{opt} missing from `lampi {' '.join(path)} --help`"
    if isinstance(cmd, click.Group):
        for name in cmd.commands:
            assert name in proc.stdout


def test_python_m_lampi_help() -> None:
    proc = subprocess.run([sys.executable, "-m", "lampi", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for name in ("serve", "openrc", "project", "user", "role", "fsck"):
        assert name in proc.stdout
