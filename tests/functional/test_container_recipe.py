"""The container recipe (Containerfile) works: its steps, run here.

No container runtime is available on the machines that run these tests, so this test
does what the image build and `podman run` would: copies the build context (minus
.dockerignore), runs the recipe's `pip install` in a fresh virtualenv, starts its CMD
with its ENV (the port moved to a free one, as `-e LAMPI_PORT=...` would) and the
settings docs/ci.md passes, runs its HEALTHCHECK, and talks to the server with the
`swift` CLI and boto3 using the fixed credentials.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import boto3

from tests.functional.conftest import free_port, spawn_server, stop_server, wait_healthy

ROOT = Path(__file__).parents[2]


def recipe() -> dict[str, list[str]]:
    """Instructions of the Containerfile (continuation lines joined)."""
    lines, cur = [], ""
    for raw in (ROOT / "Containerfile").read_text().splitlines():
        if raw.lstrip().startswith("#") and not cur:
            continue
        cur += raw.rstrip("\\").strip() + " "
        if not raw.endswith("\\"):
            if cur.strip():
                lines.append(cur.strip())
            cur = ""
    out: dict[str, list[str]] = {}
    for line in lines:
        word, _, rest = line.partition(" ")
        out.setdefault(word.upper(), []).append(rest.strip())
    return out


def context_copy(dest: Path) -> None:
    ignore = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines() if p.strip()]

    def skip(dirpath: str, names: list[str]) -> set[str]:
        rel = Path(dirpath).relative_to(ROOT)
        return {n for n in names for pat in ignore
                if fnmatch.fnmatch(str(rel / n), pat) or fnmatch.fnmatch(n, pat.removeprefix("**/"))}

    shutil.copytree(ROOT, dest, ignore=skip)


def test_container_recipe_steps(tmp_path):
    steps = recipe()
    assert steps["FROM"][0].startswith("python:3.1")
    # COPY . /src/lampi, then the RUN that installs it
    src = tmp_path / "src" / "lampi"
    context_copy(src)
    assert (src / "pyproject.toml").exists() and not (src / ".git").exists()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAMPI_", "OS_", "AWS_", "PYTHON"))}
    env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"
    env["VIRTUAL_ENV"] = str(venv)
    install = next(r for r in steps["RUN"] if r.startswith("pip install"))
    cmd = install.replace("/src/lampi", str(src))
    r = subprocess.run(["sh", "-c", cmd], env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    lampi = venv / "bin" / "lampi"
    assert lampi.exists()
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import lampi; print(lampi.__file__)"],
                           env=env, capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert where.startswith(str(venv)), where  # the installed copy, not this checkout
    # ENV, then what `podman run -e ... -v ...` adds: a free port, the volume, fixed credentials
    for spec in steps["ENV"]:
        for pair in shlex.split(spec):
            k, _, v = pair.partition("=")
            env[k] = v
    assert env["LAMPI_HOST"] == "0.0.0.0"
    port = free_port()
    env.update(LAMPI_PORT=str(port), LAMPI_DATA_DIR=str(tmp_path / "volume" / "data"),
               LAMPI_ADMIN_PASSWORD="image-pass-1", LAMPI_S3_ACCESS_KEY="LAMPIKEY",
               LAMPI_S3_SECRET_KEY="image-secret-1", LAMPI_CONSOLE_PORT=str(free_port()))
    argv = json.loads(steps["CMD"][-1])
    assert argv == ["lampi", "serve"]
    argv[0] = str(lampi)
    with open(tmp_path / "serve.log", "wb") as log:
        proc = spawn_server(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
        check = steps["HEALTHCHECK"][0].split("CMD", 1)[1].strip()
        r = subprocess.run(["sh", "-c", check.replace("python ", f"{venv / 'bin' / 'python'} ", 1)], env=env,
                           timeout=60, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        rc = subprocess.run([str(lampi), "openrc"], env=env, capture_output=True, text=True, check=True,
                            timeout=60).stdout
        assert "image-pass-1" in rc
        os_env = {**env, "OS_AUTH_URL": f"http://127.0.0.1:{port}/v3", "OS_IDENTITY_API_VERSION": "3",
                  "OS_USERNAME": "admin", "OS_PASSWORD": "image-pass-1", "OS_PROJECT_NAME": "admin",
                  "OS_USER_DOMAIN_NAME": "Default", "OS_PROJECT_DOMAIN_NAME": "Default"}
        r = subprocess.run([shutil.which("swift") or "swift", "post", "from-image"], env=os_env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id="LAMPIKEY",
                          aws_secret_access_key="image-secret-1", region_name="us-east-1")
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["from-image"]
    finally:
        assert stop_server(proc, signal.SIGTERM) == 0
