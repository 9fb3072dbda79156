"""python-openstackclient (``openstack container ...``, ``openstack object ...``) against
``lampi serve`` with the RC file's environment variables."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


def _exe(name: str) -> str:
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        pytest.skip(f"{name} CLI not installed")
    return found


def openstack(env: dict[str, str], *args: str, cwd: Path | None = None,
              check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([_exe("openstack"), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"openstack {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def oj(env: dict[str, str], *args: str, cwd: Path | None = None) -> Any:
    return json.loads(openstack(env, *args, "-f", "json", cwd=cwd).stdout)


def test_container_create_list_show_delete(openrc_env: dict[str, str], unique: str) -> None:
    created = oj(openrc_env, "container", "create", unique)
    assert created[0]["container"] == unique
    assert created[0]["account"].startswith("AUTH_")
    names = [c["Name"] for c in oj(openrc_env, "container", "list")]
    assert unique in names
    assert [c["Name"] for c in oj(openrc_env, "container", "list", "--prefix", unique)] == [unique]
    shown = oj(openrc_env, "container", "show", unique)
    assert shown["container"] == unique
    assert shown["object_count"] == "0"
    assert shown["bytes_used"] == "0"

    openstack(openrc_env, "container", "delete", unique)
    assert unique not in [c["Name"] for c in oj(openrc_env, "container", "list")]
    missing = openstack(openrc_env, "container", "show", unique, check=False)
    assert missing.returncode != 0
    assert "404" in missing.stderr


def test_object_create_list_show_save_delete(openrc_env: dict[str, str], tmp_path: Path, unique: str) -> None:
    data = os.urandom(123_456)
    (tmp_path / "data.bin").write_bytes(data)
    (tmp_path / "notes.txt").write_text("some notes\n")
    oj(openrc_env, "container", "create", unique)
    created = oj(openrc_env, "object", "create", unique, "data.bin", "notes.txt", cwd=tmp_path)
    etags = {o["object"]: o["etag"] for o in created}
    assert etags == {"data.bin": hashlib.md5(data).hexdigest(), "notes.txt": hashlib.md5(b"some notes\n").hexdigest()}

    assert sorted(o["Name"] for o in oj(openrc_env, "object", "list", unique)) == ["data.bin", "notes.txt"]
    long = {o["Name"]: o for o in oj(openrc_env, "object", "list", unique, "--long")}
    assert long["data.bin"]["Bytes"] == len(data)
    assert long["data.bin"]["Hash"] == hashlib.md5(data).hexdigest()
    assert long["notes.txt"]["Content Type"].startswith("text/plain")
    assert [o["Name"] for o in oj(openrc_env, "object", "list", unique, "--prefix", "no")] == ["notes.txt"]

    shown = oj(openrc_env, "object", "show", unique, "data.bin")
    assert shown["content-length"] == str(len(data))
    assert shown["etag"] == hashlib.md5(data).hexdigest()
    assert shown["object"] == "data.bin"

    out = tmp_path / "saved.bin"
    openstack(openrc_env, "object", "save", unique, "data.bin", "--file", str(out))
    assert out.read_bytes() == data

    # container stats follow the objects
    cshow = oj(openrc_env, "container", "show", unique)
    assert cshow["object_count"] == "2"
    assert cshow["bytes_used"] == str(len(data) + len(b"some notes\n"))

    # a non-empty container cannot be deleted (409), its data stays
    busy = openstack(openrc_env, "container", "delete", unique, check=False)
    assert busy.returncode != 0
    assert "409" in busy.stderr
    assert len(oj(openrc_env, "object", "list", unique)) == 2

    openstack(openrc_env, "object", "delete", unique, "data.bin")
    assert [o["Name"] for o in oj(openrc_env, "object", "list", unique)] == ["notes.txt"]
    gone = openstack(openrc_env, "object", "show", unique, "data.bin", check=False)
    assert gone.returncode != 0
    assert "404" in gone.stderr

    openstack(openrc_env, "container", "delete", "--recursive", unique)
    assert unique not in [c["Name"] for c in oj(openrc_env, "container", "list")]


def test_properties_and_account_show(openrc_env: dict[str, str], tmp_path: Path, unique: str) -> None:
    (tmp_path / "p.txt").write_text("props")
    oj(openrc_env, "container", "create", unique)
    oj(openrc_env, "object", "create", unique, "p.txt", cwd=tmp_path)
    openstack(openrc_env, "container", "set", "--property", "project-code=42", unique)
    assert oj(openrc_env, "container", "show", unique)["properties"] == {"Project-Code": "42"}  # title-cased, as Swift
    openstack(openrc_env, "object", "set", "--property", "stage=raw", unique, "p.txt")
    assert oj(openrc_env, "object", "show", unique, "p.txt")["properties"] == {"Stage": "raw"}  # title-cased by the server, as Swift (swob) sends header names
    openstack(openrc_env, "object", "unset", "--property", "stage", unique, "p.txt")
    assert "properties" not in oj(openrc_env, "object", "show", unique, "p.txt")

    acct = oj(openrc_env, "object", "store", "account", "show")
    assert acct["Account"].startswith("AUTH_")
    assert int(acct["Containers"]) >= 1
    assert int(acct["Objects"]) >= 1
    openstack(openrc_env, "container", "delete", "--recursive", unique)
