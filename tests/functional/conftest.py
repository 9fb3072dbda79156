"""Functional test fixtures: a real ``lampi serve`` subprocess on a free loopback port.

Tests talk to it only with real clients (python-swiftclient, keystoneauth1, the
``swift`` and ``openstack`` CLIs, requests for raw HTTP).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_openrc(text: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("export "):
            k, v = line[len("export "):].split("=", 1)
            if v.startswith("'") and v.endswith("'"):
                v = v[1:-1].replace("'\"'\"'", "'")
            env[k] = v
    return env


def lampi_cmd() -> list[str]:
    exe = shutil.which("lampi")
    return [exe] if exe else [sys.executable, "-m", "lampi"]


@dataclass
class LampiServer:
    data_dir: Path
    port: int
    workers: int = 1
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth_url(self) -> str:
        return f"{self.url}/v3"

    def start(self, timeout: float = 15.0) -> None:
        self.log_path = self.data_dir.parent / f"server-{self.port}-{int(time.time() * 1000)}.log"
        log = open(self.log_path, "wb")
        env = dict(os.environ)
        env.pop("LAMPI_CONFIG", None)
        self.proc = subprocess.Popen(
            [*lampi_cmd(), "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--data-dir", str(self.data_dir), "--workers", str(self.workers), "--log-format", "json",
             *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"lampi exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if requests.get(f"{self.url}/healthcheck", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"lampi did not become ready:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def openrc(self) -> dict[str, str]:
        return parse_openrc((self.data_dir / "openrc.sh").read_text())

    def cli(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run an admin ``lampi`` command on this server's data dir."""
        res = subprocess.run(
            [*lampi_cmd(), *args, "--data-dir", str(self.data_dir)],
            capture_output=True, text=True, input=input, check=False, timeout=60,
        )
        if check and res.returncode != 0:
            raise AssertionError(f"lampi {' '.join(args)} exited {res.returncode}:\n{res.stdout}\n{res.stderr}")
        return res


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LampiServer]:
    """One server for the whole session (tests use unique container names)."""
    base = tmp_path_factory.mktemp("lampi")
    srv = LampiServer(data_dir=base / "data", port=free_port())
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[LampiServer]:
    """A server of the test's own, for tests that stop, kill or reconfigure it."""
    srv = LampiServer(data_dir=tmp_path / "data", port=free_port())
    yield srv
    if srv.proc is not None:
        srv.stop(signal.SIGKILL)


@pytest.fixture
def openrc_env(server: LampiServer) -> dict[str, str]:
    """os.environ plus the server's RC file, as `eval "$(lampi openrc)"` would set it."""
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("OS_"):
            del env[k]
    env.update(server.openrc())
    return env


@pytest.fixture
def swift_conn(server: LampiServer):  # noqa: ANN201
    import swiftclient

    rc = server.openrc()
    return swiftclient.Connection(
        authurl=rc["OS_AUTH_URL"],
        user=rc["OS_USERNAME"],
        key=rc["OS_PASSWORD"],
        os_options={
            "user_domain_name": rc["OS_USER_DOMAIN_NAME"],
            "project_domain_name": rc["OS_PROJECT_DOMAIN_NAME"],
            "project_name": rc["OS_PROJECT_NAME"],
        },
        auth_version="3",
        retries=0,
    )


@pytest.fixture
def unique() -> str:
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
def token_and_url(swift_conn) -> tuple[str, str]:  # noqa: ANN001
    url, token = swift_conn.get_auth()
    return token, url


# -- S3 ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ec2_keys(server: LampiServer) -> dict[str, str]:
    """An S3 key pair of the admin user, made with `openstack ec2 credentials create`."""
    import json

    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(server.openrc())
    out = subprocess.run(["openstack", "ec2", "credentials", "create", "-f", "json"], env=env,
                         capture_output=True, text=True, check=True, timeout=60)
    return json.loads(out.stdout)


@pytest.fixture
def s3(server: LampiServer, ec2_keys: dict[str, str]):  # noqa: ANN201
    """A boto3 S3 client at its default settings (path style to lampi)."""
    import boto3

    return boto3.client("s3", endpoint_url=server.url, aws_access_key_id=ec2_keys["access"],
                        aws_secret_access_key=ec2_keys["secret"], region_name="us-east-1")
