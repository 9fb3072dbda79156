"""README's shell commands, run as a newcomer pastes them: in order, in one bash shell,
in a fresh directory, against the `lampi serve` of its quick start.

Every ```sh block of README.md is preceded by a marker comment that says how it is
checked (so none is left untested by accident):

- ``<!-- readme-test: ci -->``: the install and test commands. .ci/run runs them word
  for word; this test checks that it does, and starts the quick start's `lampi serve`.
- ``<!-- readme-test: run -->``: run here, one after the other, in one shell.
- ``<!-- readme-test: skip (why) -->``: a placeholder for the reader's own script.

The one liberty taken: README's fixed ``127.0.0.1:8080`` becomes a free port (the
server gets it through ``LAMPI_PORT``), as tests must never take port 8080.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.functional.conftest import free_port, spawn_server, stop_server, wait_healthy

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
CI = ROOT / ".ci" / "run"
BLOCK = re.compile(r"<!-- readme-test: (\w+)[^>]*-->\n```sh\n(.*?)```", re.S)


def blocks(kind: str | None = None) -> list[tuple[str, str]]:
    found = BLOCK.findall(README.read_text())
    return [(k, body) for k, body in found if kind is None or k == kind]


def test_every_shell_block_says_how_it_is_tested() -> None:
    text = README.read_text()
    assert text.count("```sh\n") == len(blocks()), "a ```sh block of README.md has no readme-test marker"
    assert {k for k, _ in blocks()} <= {"ci", "run", "skip"}
    assert len(blocks("run")) >= 4


def test_ci_runs_readme_commands_word_for_word() -> None:
    ci_blocks = [body.strip() for _, body in blocks("ci")]
    assert len(ci_blocks) == 2, ci_blocks
    install, test = ci_blocks
    assert install.endswith("&& lampi serve") and "\n" not in install
    assert test.endswith("&& pytest") and "\n" not in test
    ci = CI.read_text()
    assert install in ci and test in ci
    assert ci.index(install) < ci.index(test)


def test_test_extra_has_every_client() -> None:
    """`pip install '.[test]'` brings every client `.[clients]` does (the tests drive
    them all), and `.[clients]` every client README's commands call."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    clients = {re.split(r"[<>=;\[ ]", r)[0] for r in extras["clients"]}
    assert "lampi[clients]" in extras["test"] or clients <= {re.split(r"[<>=;\[ ]", r)[0] for r in extras["test"]}
    install = next(body for _, body in blocks("ci") if "lampi serve" in body)
    assert "[clients]" in install
    commands = " ".join(body for _, body in blocks("run"))
    for needed, package in (("swift ", "python-swiftclient"), ("openstack ", "python-openstackclient"),
                            ("aws ", "awscli"), ("s3cmd ", "s3cmd"), ("import boto3", "boto3")):
        if needed in commands:
            assert package in clients, f"README runs {needed.strip()} but .[clients] lacks {package}"
    # swiftclient's Keystone v3 login needs python-keystoneclient
    assert "python-keystoneclient" in clients


def test_readme_commands_in_one_shell(tmp_path: Path) -> None:
    missing = [c for c in ("lampi", "swift", "openstack", "aws", "s3cmd") if not shutil.which(c)]
    assert not missing, f"README's clients are not installed: {missing} (pip install '.[test]' brings them)"
    if not shutil.which("curl"):
        pytest.skip("curl, a system package README uses, is not installed")
    port = free_port()
    here = tmp_path / "clone"  # the reader's working directory: ./lampi-data lands here
    here.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ST_", "AWS_", "LAMPI_"))}
    # a newcomer's aws has no config of its own either
    env.update(AWS_CONFIG_FILE=str(tmp_path / "aws-config"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "aws-creds"))

    install = next(body.strip() for _, body in blocks("ci") if body.strip().endswith("lampi serve"))
    serve = install.rsplit("&&", 1)[1].split()
    assert serve == ["lampi", "serve"]
    log = open(tmp_path / "serve.log", "wb")
    proc = spawn_server([shutil.which("lampi") or "lampi", *serve[1:]], cwd=here, env={**env, "LAMPI_PORT": str(port), "LAMPI_CONSOLE_PORT": "0"},
                        stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
        parts = ["set -e -o pipefail -x"]
        for i, (_, body) in enumerate(blocks("run")):
            parts.append(f"echo '=== block {i}'")
            parts.append(body.replace("127.0.0.1:8080", f"127.0.0.1:{port}"))
        script = "\n".join(parts)
        assert "8080" not in script
        res = subprocess.run(["bash", "-c", script], cwd=here, env=env, capture_output=True, text=True, timeout=900)
    finally:
        code = stop_server(proc)
        log.close()
    out, err = res.stdout, res.stderr
    report = f"exit {res.returncode}\n--- stdout\n{out}\n--- stderr\n{err}"
    assert res.returncode == 0, report
    assert code == 0, (tmp_path / "serve.log").read_text()
    assert "command not found" not in err and "Traceback" not in err + out, report
    got = {}
    for chunk in out.split("=== block ")[1:]:
        n, _, text = chunk.partition("\n")
        got[int(n)] = text
    quick, other_ways, s3, admin = got[0], got[1], got[2], got[3]
    # the quick start: uploaded, listed by swift, the container seen by openstack
    assert "results.csv" in quick and "mybucket" in quick
    # v1.0 auth reached the admin's account; the token + storage URL listed the container
    assert "Account: AUTH_" in other_ways and "results.csv" in other_ways
    # S3: aws and boto3 see the bucket swift made, s3cmd the object in it
    assert "mybucket" in s3 and "s3://mybucket/results.csv" in s3 and "'Name': 'mybucket'" in s3
    # administration, on the data dir the server created in this directory
    assert '"name": "alice"' in admin and "clean" in admin
    assert sorted(p.name for p in here.iterdir()) == ["lampi-data", "results.csv"]
