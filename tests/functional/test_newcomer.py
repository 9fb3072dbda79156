"""A newcomer's first hour with the CLI: admin commands never create a store (only
`lampi serve` and `lampi init` do), `lampi init`, users and projects named with
--user/--project as well as positionally, help that says what lampi serves."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import boto3
import click
import pytest
import swiftclient
from swiftclient.exceptions import ClientException

from tests.functional.conftest import LampiServer, free_port, lampi_cmd

# one way to call each command that takes --data-dir (serve and init create one)
CALLS = {
    "openrc": [],
    "fsck": [],
    "project create": ["p1"],
    "project list": [],
    "project delete": ["p1"],
    "project set-quota": ["p1", "--bytes", "5"],
    "user create": ["u1", "--password", "pw"],
    "user list": [],
    "user delete": ["u1"],
    "user set-password": ["u1", "--password", "pw"],
    "domain create": ["d1"],
    "domain list": [],
    "domain delete": ["d1"],
    "role create": ["r1"],
    "role list": [],
    "role delete": ["r1"],
    "role grant": ["u1", "p1", "member"],
    "role revoke": ["--user", "u1", "--project", "p1", "--role", "member"],
    "credential create": ["--user", "u1", "--project", "p1"],
    "credential list": [],
    "credential delete": ["AKIA"],
    "credential rotate-key": [],
    "kms create": ["k1"],
    "kms list": [],
    "kms rotate": ["k1"],
    "sse rotate-key": [],
    "token rotate-key": [],
    "master-key rotate": [],
    "migrate": ["--to-data-dir", "copy"],
}


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAMPI_", "OS_"))}
    env["LAMPI_CONSOLE_PORT"] = "0"  # no console on 8081: servers of parallel tests would collide
    env.update(extra)
    return env


def lampi(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
          input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*lampi_cmd(), *args], capture_output=True, text=True, cwd=cwd, timeout=120,
                          env=clean_env() if env is None else env, input=input)


def data_dir_commands() -> list[str]:
    from lampi.cli.main import cli

    out = []

    def walk(path: list[str], cmd: click.Command) -> None:
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                walk([*path, name], sub)
        elif any(p.name == "data_dir" for p in cmd.params):
            out.append(" ".join(path))

    walk([], cli)
    return sorted(out)


def test_every_data_dir_command_is_covered() -> None:
    assert set(data_dir_commands()) == set(CALLS) | {"serve", "init"}


def refused(res: subprocess.CompletedProcess[str], path: Path) -> None:
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr  # one line, no traceback
    assert lines[0].startswith("Error: no lampi data in ")
    assert str(path.resolve()) in lines[0]
    for hint in ("lampi init", "lampi serve", "--data-dir"):
        assert hint in lines[0]
    assert res.stdout == ""


@pytest.mark.parametrize("command", sorted(CALLS))
def test_admin_command_refuses_a_missing_data_dir(tmp_path: Path, command: str) -> None:
    typo = tmp_path / "lampi-dat"  # a mistyped --data-dir
    refused(lampi(*command.split(), *CALLS[command], "--data-dir", str(typo)), typo)
    assert not typo.exists()
    # from another directory, with the default ./lampi-data
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    refused(lampi(*command.split(), *CALLS[command], cwd=elsewhere), elsewhere / "lampi-data")
    assert list(elsewhere.iterdir()) == []
    # an existing directory that holds no store (a data dir's parent, say) is no store either
    refused(lampi(*command.split(), *CALLS[command], "--data-dir", str(elsewhere)), elsewhere)
    assert list(elsewhere.iterdir()) == []


def test_user_made_from_another_directory_is_refused_then_works(server: LampiServer, tmp_path: Path,
                                                                unique: str) -> None:
    """The issue's story: `lampi user create` run beside, not in, the server's directory
    used to build a second store there; the user then got 401 from the server."""
    res = lampi("user", "create", unique, "--password", "pw", "--project", "admin", "--role", "reader", cwd=tmp_path)
    refused(res, tmp_path / "lampi-data")
    assert not (tmp_path / "lampi-data").exists()
    res = lampi("user", "create", unique, "--password", "pw", "--project", "admin", "--role", "reader", cwd=tmp_path,
                env=clean_env(LAMPI_DATA_DIR=str(server.data_dir)))
    assert res.returncode == 0, res.stderr
    conn = swiftclient.Connection(authurl=server.auth_url, user=unique, key="pw", auth_version="3", retries=0,
                                  os_options={"user_domain_name": "Default", "project_domain_name": "Default",
                                              "project_name": "admin"})
    conn.head_account()
    server.cli("user", "delete", unique)


def test_init_creates_a_store_serve_then_uses(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "store"
    res = lampi("init", "--data-dir", str(data))
    assert res.returncode == 0, res.stderr
    dd = str(data.resolve())
    assert f"created lampi data dir {dd}" in res.stdout
    assert f'eval "$(lampi openrc --data-dir {dd})"' in res.stdout
    assert f"lampi serve --data-dir {dd}" in res.stdout
    assert (data / "meta.db").is_file()
    first = (data / "openrc.sh").read_text()
    assert stat.S_IMODE((data / "openrc.sh").stat().st_mode) == 0o600
    assert "OS_AUTH_URL='http://127.0.0.1:8080/v3'" in first

    # again, with the port the server will use: nothing is created, the RC file keeps
    # its password and points at that port (as `lampi serve` would point it)
    again = lampi("init", "--data-dir", str(data), "--port", str(port))
    assert again.returncode == 0, again.stderr
    assert "exists already; nothing created" in again.stdout and "created lampi" not in again.stdout
    rc = (data / "openrc.sh").read_text()
    assert rc == first.replace("127.0.0.1:8080", f"127.0.0.1:{port}")

    # admin commands work on it, before any server ran
    made = lampi("project", "create", "lab", "--data-dir", str(data))
    assert made.returncode == 0, made.stderr
    opened = lampi("openrc", "--data-dir", str(data))
    assert opened.returncode == 0 and opened.stdout == rc

    # and `lampi serve` takes it as its own: no second bootstrap, the RC file logs in
    srv = LampiServer(data_dir=data, port=port)
    srv.start()
    try:
        assert "first start" not in srv.log()
        rc_env = srv.openrc()
        conn = swiftclient.Connection(authurl=rc_env["OS_AUTH_URL"], user=rc_env["OS_USERNAME"],
                                      key=rc_env["OS_PASSWORD"], auth_version="3", retries=0,
                                      os_options={"user_domain_name": "Default", "project_domain_name": "Default",
                                                  "project_name": rc_env["OS_PROJECT_NAME"]})
        conn.head_account()
        assert "lab" in {p["name"] for p in json.loads(srv.cli("project", "list", "--json").stdout)}
    finally:
        assert srv.stop() == 0


def test_openrc_without_rc_file_names_the_fix(tmp_path: Path) -> None:
    data = tmp_path / "d"
    assert lampi("init", "--data-dir", str(data)).returncode == 0
    (data / "openrc.sh").unlink()
    res = lampi("openrc", "--data-dir", str(data))
    assert res.returncode == 1
    assert "openrc.sh not found" in res.stderr and "lampi init" in res.stderr
    assert "Traceback" not in res.stderr


def _can_login(server: LampiServer, user: str, project: str) -> bool:
    conn = swiftclient.Connection(authurl=server.auth_url, user=user, key="pw", auth_version="3", retries=0,
                                  os_options={"user_domain_name": "Default", "project_domain_name": "Default",
                                              "project_name": project})
    try:
        conn.head_account()
    except ClientException:
        return False
    return True


def test_user_and_project_by_option_or_argument(server: LampiServer, unique: str) -> None:
    proj, user = unique + "-p", unique + "-u"
    server.cli("project", "create", proj)
    server.cli("user", "create", user, "--password", "pw")

    # role grant/revoke: options, arguments, and a mix, all the same
    server.cli("role", "grant", "--user", user, "--project", proj, "--role", "reader")
    assert _can_login(server, user, proj)
    server.cli("role", "revoke", user, proj, "reader")
    assert not _can_login(server, user, proj)
    server.cli("role", "grant", "--project", proj, user, "member")
    assert _can_login(server, user, proj)
    roles = next(u for u in json.loads(server.cli("user", "list", "--json").stdout) if u["name"] == user)["roles"]
    assert [(r["project"], r["role"]) for r in roles] == [(proj, "member")]

    # credential create: positional (as before) and with --user/--project
    by_args = json.loads(server.cli("credential", "create", user, proj, "--json").stdout)
    by_opts = json.loads(server.cli("credential", "create", "--user", user, "--project", proj, "--json").stdout)
    assert by_args["project_id"] == by_opts["project_id"] and by_args["user_id"] == by_opts["user_id"]
    s3 = boto3.client("s3", endpoint_url=server.url, aws_access_key_id=by_opts["access"],
                      aws_secret_access_key=by_opts["secret"], region_name="us-east-1")
    s3.create_bucket(Bucket=unique)
    s3.delete_bucket(Bucket=unique)

    # credential list filters by --user and by --project
    mine = {c["access"] for c in json.loads(server.cli("credential", "list", "--user", user, "--json").stdout)}
    assert mine == {by_args["access"], by_opts["access"]}
    in_proj = {c["access"] for c in json.loads(server.cli("credential", "list", "--project", proj, "--json").stdout)}
    assert in_proj == mine
    admin_keys = json.loads(server.cli("credential", "list", "--project", "admin", "--json").stdout)
    assert not {c["access"] for c in admin_keys} & mine

    # what is missing or too much is a usage error naming it
    for args, words in ((["role", "grant", user, proj], ["missing ROLE", "--role"]),
                        (["role", "grant", "--user", user, user, proj, "member"], ["unexpected extra argument"]),
                        (["credential", "create", "--project", proj], ["missing USER", "--user"]),
                        (["credential", "create", user], ["missing PROJECT", "--project"])):
        res = server.cli(*args, check=False)
        assert res.returncode == 2, res.stderr
        assert "Traceback" not in res.stderr
        for w in words:
            assert w in res.stderr, res.stderr

    # a role that does not exist (roles are made with `lampi role create`): an error naming it
    res = server.cli("role", "grant", user, proj, "boss", check=False)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    for w in ("boss", "admin, member, reader", "lampi role create"):
        assert w in res.stderr, res.stderr

    for c in mine:
        server.cli("credential", "delete", c)
    server.cli("user", "delete", user)
    server.cli("project", "delete", proj)


def test_help_says_what_lampi_serves() -> None:
    top = lampi("--help").stdout
    assert "S3" in top and "Swift" in top and "Keystone" in top and "init" in top
    serve = " ".join(lampi("serve", "--help").stdout.split())
    assert "S3" in serve and "Swift" in serve and "Keystone v3" in serve
    init = " ".join(lampi("init", "--help").stdout.split())
    assert "without starting a server" in init


def test_admin_tables_show_whole_ids_on_a_narrow_terminal(server: LampiServer) -> None:
    keys = json.loads(server.cli("credential", "create", "--user", "admin", "--project", "admin", "--json").stdout)
    res = subprocess.run([*lampi_cmd(), "credential", "list", "--data-dir", str(server.data_dir)],
                         capture_output=True, text=True, timeout=120, env=clean_env(COLUMNS="50"))
    assert res.returncode == 0, res.stderr
    assert all(len(line) <= 50 for line in res.stdout.splitlines()), res.stdout
    assert "…" not in res.stdout
    # the access key, folded over lines, is all there
    cells = "".join(line.split("│")[1].strip() for line in res.stdout.splitlines() if line.count("│") >= 2)
    assert keys["access"] in cells
    server.cli("credential", "delete", keys["access"])
