"""The real ``swift`` CLI (python-swiftclient) against ``lampi serve``: Keystone v3 from
the RC file's environment variables, and Swift v1.0 auth with ``-A/-U/-K``."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.functional.conftest import LampiServer


def _exe(name: str) -> str:
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        pytest.skip(f"{name} CLI not installed")
    return found


def swift(env: dict[str, str], *args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([_exe("swift"), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"swift {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def stat_fields(out: str) -> dict[str, str]:
    """``swift stat`` prints ``Key: value`` lines, right-aligned keys."""
    fields: dict[str, str] = {}
    for line in out.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            fields[k.strip()] = v.strip()
    return fields


@pytest.fixture
def v1_env(server: LampiServer) -> dict[str, str]:
    """No OS_* variables; auth comes from -A/-U/-K on the command line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ST_"))}
    return env


def v1_args(server: LampiServer) -> list[str]:
    rc = server.openrc()
    return ["-A", f"{server.url}/auth/v1.0", "-U", f"{rc['OS_PROJECT_NAME']}:{rc['OS_USERNAME']}",
            "-K", rc["OS_PASSWORD"]]


def test_upload_file_download_and_compare(openrc_env: dict[str, str], tmp_path: Path, unique: str) -> None:
    data = os.urandom(300_000)
    (tmp_path / "results.bin").write_bytes(data)
    out = swift(openrc_env, "upload", unique, "results.bin", cwd=tmp_path)
    assert "results.bin" in out.stdout
    listing = swift(openrc_env, "list", unique).stdout.split()
    assert listing == ["results.bin"]
    dl = tmp_path / "dl"
    dl.mkdir()
    swift(openrc_env, "download", unique, "results.bin", "-o", str(dl / "got.bin"))
    assert md5((dl / "got.bin").read_bytes()) == md5(data)
    # download to stdout too
    proc = subprocess.run([_exe("swift"), "download", unique, "results.bin", "-o", "-"], env=openrc_env,
                          capture_output=True, timeout=60, check=True)
    assert proc.stdout == data


def test_upload_directory_tree_and_download_container(openrc_env: dict[str, str], tmp_path: Path,
                                                      unique: str) -> None:
    src = tmp_path / "src"
    files = {
        "tree/a.txt": b"alpha\n",
        "tree/sub/b.csv": b"x,y\n1,2\n",
        "tree/sub/deeper/c.bin": os.urandom(70_000),
        "tree/empty.dat": b"",
    }
    for rel, content in files.items():
        p = src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content)
    swift(openrc_env, "upload", unique, "tree", cwd=src)
    names = sorted(swift(openrc_env, "list", unique).stdout.split())
    assert names == sorted(files)

    # --prefix narrows the listing
    assert sorted(swift(openrc_env, "list", unique, "--prefix", "tree/sub/").stdout.split()) == [
        "tree/sub/b.csv", "tree/sub/deeper/c.bin"]
    assert swift(openrc_env, "list", unique, "--prefix", "nothing-here").stdout.strip() == ""

    # download the whole container into a fresh directory: same tree, same bytes
    out = tmp_path / "out"
    out.mkdir()
    swift(openrc_env, "download", unique, cwd=out)
    for rel, content in files.items():
        assert (out / rel).read_bytes() == content, rel


def test_list_containers_and_long_listing(openrc_env: dict[str, str], tmp_path: Path, unique: str) -> None:
    (tmp_path / "f1").write_bytes(b"a" * 1000)
    (tmp_path / "f2").write_bytes(b"b" * 2500)
    swift(openrc_env, "upload", unique, "f1", "f2", cwd=tmp_path)
    assert unique in swift(openrc_env, "list").stdout.split()
    assert swift(openrc_env, "list", "--prefix", unique).stdout.split() == [unique]

    lh = swift(openrc_env, "list", unique, "--lh").stdout.splitlines()
    rows = [line.split() for line in lh]
    by_name = {r[-1]: r for r in rows if r and r[-1] in ("f1", "f2")}
    assert set(by_name) == {"f1", "f2"}
    assert by_name["f1"][0] == "1000"
    assert by_name["f2"][0] == "2.4K"
    # the totals line: total bytes of the container (swift prints it human-readable)
    assert rows[-1][0] == "3.4K"

    # account --lh listing shows the container with its object count and bytes
    acct = [line.split() for line in swift(openrc_env, "list", "--lh", "--prefix", unique).stdout.splitlines()]
    row = next(r for r in acct if r and r[-1] == unique)
    assert row[0] == "2"  # objects
    assert row[1] == "3.4K"  # bytes


def test_stat_account_container_object(openrc_env: dict[str, str], server: LampiServer, tmp_path: Path,
                                       unique: str) -> None:
    data = b"hello stat\n"
    (tmp_path / "obj.txt").write_bytes(data)
    swift(openrc_env, "upload", unique, "obj.txt", cwd=tmp_path)

    acct = stat_fields(swift(openrc_env, "stat").stdout)
    assert acct["Account"].startswith("AUTH_")
    assert int(acct["Containers"]) >= 1
    assert int(acct["Objects"]) >= 1
    assert int(acct["Bytes"]) >= len(data)

    cont = stat_fields(swift(openrc_env, "stat", unique).stdout)
    assert cont["Container"] == unique
    assert cont["Objects"] == "1"
    assert cont["Bytes"] == str(len(data))

    obj = stat_fields(swift(openrc_env, "stat", unique, "obj.txt").stdout)
    assert obj["Object"] == "obj.txt"
    assert obj["Content Length"] == str(len(data))
    assert obj["ETag"] == md5(data)
    assert obj["Content Type"].startswith("text/plain")

    missing = swift(openrc_env, "stat", unique, "nope.txt", check=False)
    assert missing.returncode != 0
    assert "404" in missing.stderr or "not found" in missing.stderr.lower()


def test_post_container_and_object_metadata(openrc_env: dict[str, str], tmp_path: Path, unique: str) -> None:
    # post creates the container when it does not exist, as Swift's CLI does
    swift(openrc_env, "post", unique, "-m", "Color:blue", "-m", "Owner:lab")
    cont = stat_fields(swift(openrc_env, "stat", unique).stdout)
    assert cont["Meta Color"] == "blue"
    assert cont["Meta Owner"] == "lab"
    # an empty value removes the item
    swift(openrc_env, "post", unique, "-m", "Owner:")
    cont = stat_fields(swift(openrc_env, "stat", unique).stdout)
    assert cont["Meta Color"] == "blue"
    assert "Meta Owner" not in cont

    (tmp_path / "o.txt").write_bytes(b"meta me")
    swift(openrc_env, "upload", unique, "o.txt", cwd=tmp_path)
    swift(openrc_env, "post", unique, "o.txt", "-m", "Sample:42", "-m", "Stage:raw")
    obj = stat_fields(swift(openrc_env, "stat", unique, "o.txt").stdout)
    assert obj["Meta Sample"] == "42"
    assert obj["Meta Stage"] == "raw"
    # object POST replaces the user metadata (Swift semantics)
    swift(openrc_env, "post", unique, "o.txt", "-m", "Stage:clean")
    obj = stat_fields(swift(openrc_env, "stat", unique, "o.txt").stdout)
    assert obj["Meta Stage"] == "clean"
    assert "Meta Sample" not in obj
    assert obj["ETag"] == md5(b"meta me")  # data untouched

    # account metadata
    swift(openrc_env, "post", "-m", f"{unique}:yes")
    acct = {k.lower(): v for k, v in stat_fields(swift(openrc_env, "stat").stdout).items()}
    assert acct[f"meta {unique}"] == "yes"
    swift(openrc_env, "post", "-m", f"{unique}:")
    acct = stat_fields(swift(openrc_env, "stat").stdout)
    assert not any(k.lower() == f"meta {unique}" for k in acct)


def test_delete_object_and_container(openrc_env: dict[str, str], tmp_path: Path, unique: str) -> None:
    (tmp_path / "a").write_bytes(b"1")
    (tmp_path / "b").write_bytes(b"2")
    swift(openrc_env, "upload", unique, "a", "b", cwd=tmp_path)
    swift(openrc_env, "delete", unique, "a")
    assert swift(openrc_env, "list", unique).stdout.split() == ["b"]
    # deleting a container deletes its objects first, then the container
    swift(openrc_env, "delete", unique)
    assert unique not in swift(openrc_env, "list").stdout.split()
    gone = swift(openrc_env, "stat", unique, check=False)
    assert gone.returncode != 0
    assert "not found" in gone.stderr.lower() or "404" in gone.stderr
    # deleting a missing object is reported as an error
    again = swift(openrc_env, "delete", unique, "a", check=False)
    assert again.returncode != 0


def test_capabilities(openrc_env: dict[str, str]) -> None:
    out = swift(openrc_env, "capabilities").stdout
    assert "Core: swift" in out
    assert "max_file_size: 5368709120" in out
    assert "container_listing_limit: 10000" in out
    assert "max_object_name_length: 1024" in out
    js = json.loads(swift(openrc_env, "capabilities", "--json").stdout)
    assert js["swift"]["max_meta_count"] == 90
    assert js["swift"]["max_container_name_length"] == 256


# -- Swift v1.0 auth: swift -A http://host:port/auth/v1.0 -U project:user -K password ---------------


def test_v1_auth_upload_list_download_stat_delete(v1_env: dict[str, str], server: LampiServer,
                                                  tmp_path: Path, unique: str) -> None:
    auth = v1_args(server)
    data = os.urandom(50_000)
    (tmp_path / "v1.bin").write_bytes(data)
    swift(v1_env, *auth, "upload", unique, "v1.bin", cwd=tmp_path)
    assert swift(v1_env, *auth, "list", unique).stdout.split() == ["v1.bin"]
    assert unique in swift(v1_env, *auth, "list").stdout.split()
    swift(v1_env, *auth, "download", unique, "v1.bin", "-o", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == data

    acct = stat_fields(swift(v1_env, *auth, "stat").stdout)
    rc = server.openrc()
    # the same account as Keystone's scoped token reaches
    assert acct["Account"].startswith("AUTH_")
    obj = stat_fields(swift(v1_env, *auth, "stat", unique, "v1.bin").stdout)
    assert obj["ETag"] == md5(data)

    swift(v1_env, *auth, "post", unique, "v1.bin", "-m", "Via:v1")
    assert stat_fields(swift(v1_env, *auth, "stat", unique, "v1.bin").stdout)["Meta Via"] == "v1"
    swift(v1_env, *auth, "delete", unique)
    assert unique not in swift(v1_env, *auth, "list").stdout.split()
    assert rc["OS_PROJECT_NAME"]  # used above in -U


def test_v1_auth_same_account_as_v3(openrc_env: dict[str, str], v1_env: dict[str, str],
                                    server: LampiServer) -> None:
    v3 = stat_fields(swift(openrc_env, "stat").stdout)["Account"]
    v1 = stat_fields(swift(v1_env, *v1_args(server), "stat").stdout)["Account"]
    assert v1 == v3


def test_v1_auth_capabilities(v1_env: dict[str, str], server: LampiServer) -> None:
    out = swift(v1_env, *v1_args(server), "capabilities").stdout
    assert "Core: swift" in out


def test_v1_auth_wrong_password_fails(v1_env: dict[str, str], server: LampiServer) -> None:
    rc = server.openrc()
    proc = swift(v1_env, "-A", f"{server.url}/auth/v1.0", "-U", f"{rc['OS_PROJECT_NAME']}:{rc['OS_USERNAME']}",
                 "-K", "wrong-password", "stat", check=False)
    assert proc.returncode != 0
    assert "401" in proc.stderr or "unauthorized" in proc.stderr.lower()


def test_v3_wrong_password_fails(openrc_env: dict[str, str]) -> None:
    env = dict(openrc_env, OS_PASSWORD="wrong-password")
    proc = swift(env, "list", check=False)
    assert proc.returncode != 0
    assert "401" in proc.stderr or "unauthorized" in proc.stderr.lower()
