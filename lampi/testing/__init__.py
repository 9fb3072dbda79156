"""A real lampi server for other projects' test suites.

:class:`Server` starts ``lampi serve`` as a subprocess on a free loopback port with a
store of its own, waits until it answers, and hands back what clients need: the
OpenStack RC environment (``OS_*``), an S3 key pair, the endpoint URLs, ready
``swiftclient`` connections and boto3 clients, and helpers that make more projects,
users and key pairs with lampi's admin commands. It is what the pytest plugin
(:mod:`lampi.testing.pytest_plugin`, loaded by ``pip install lampi``) builds its
fixtures on, and works on its own too::

    from lampi.testing import Server

    with Server() as srv:
        conn = srv.swift()
        conn.put_container("results")

The server always goes away: :meth:`Server.stop` stops its whole process group (the
supervisor and its workers), a stop is registered with :mod:`atexit`, and on Linux
the server is told to stop should the process that started it die first.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Credentials", "Server", "ServerError", "free_port", "wait_healthy"]

START_TIMEOUT = float(os.environ.get("LAMPI_TEST_START_TIMEOUT", "120"))
STOP_TIMEOUT = 60.0
CLI_TIMEOUT = 120.0

_live: set[Server] = set()
_live_lock = threading.Lock()


class ServerError(RuntimeError):
    """The server did not start, or an admin command failed."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Credentials:
    """A user's login to one project: Keystone v3 user/password and an S3 key pair."""

    project: str
    user: str
    password: str
    access: str = ""
    secret: str = ""
    project_id: str = ""
    user_id: str = ""
    domain: str = "Default"


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float | None = None,
                 ready: Callable[[], bool] | None = None) -> float:
    """Seconds until ``url``/healthcheck answers 200 (and ``ready()`` holds). Every error
    is retried until the deadline (``LAMPI_TEST_START_TIMEOUT``, default 120 s: a server
    starting on a loaded machine may accept and then answer late), with a per-try
    timeout growing from 1 s to 10 s; the server exiting meanwhile is an error at once."""
    start = time.monotonic()
    deadline = start + (START_TIMEOUT if timeout is None else timeout)
    per_try = 1.0
    last: object = None
    while True:
        if proc.poll() is not None:
            raise ServerError(f"server exited with {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{url}/healthcheck", timeout=per_try) as resp:
                if resp.status == 200 and (ready is None or ready()):
                    return time.monotonic() - start
                last = f"status {resp.status}"
        except (OSError, urllib.error.URLError) as exc:  # refused, reset, timed out, HTTP errors
            last = exc
        now = time.monotonic()
        if now >= deadline:
            raise ServerError(f"server not ready after {now - start:.0f} s (last: {last})")
        per_try = min(per_try * 1.5, 10.0, max(deadline - now, 0.1))
        time.sleep(0.05)


def _parse_rc(text: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("export ") and "=" in line:
            key, _, value = line[len("export "):].partition("=")
            words = shlex.split(value)
            env[key] = words[0] if words else ""
    return env


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: SIGTERM this process when the thread that started it exits (a test run
    killed with SIGKILL leaves no server behind)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass(eq=False)
class Server:
    """One ``lampi serve`` subprocess with a store of its own.

    ``data_dir``: where the store lives (default: a new temporary directory, removed at
    :meth:`stop`). ``ephemeral``: serve with ``--ephemeral`` (no fsync: a throw-away
    store is all a test needs, and it is faster). ``args``: more ``lampi serve`` options
    (e.g. ``["--bucket-namespace", "project"]``). ``env``: extra environment for it.
    """

    data_dir: Path | None = None
    port: int = 0
    workers: int = 1
    ephemeral: bool = True
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    start_timeout: float = START_TIMEOUT
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False, repr=False)
    _rc: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    _admin: Credentials | None = field(default=None, init=False, repr=False)
    _log: Path | None = field(default=None, init=False, repr=False)

    # -- life cycle ----------------------------------------------------------------

    def start(self) -> Server:
        """Start the server and wait (up to ``start_timeout`` seconds, every error
        retried: a busy machine is slow) until it answers its health check."""
        if self.proc is not None:
            raise ServerError("already started")
        if self.data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="lampi-test-")
            self.data_dir = Path(self._tmp.name) / "data"
        self.data_dir = Path(self.data_dir)
        if not self.port:
            self.port = free_port()
        self._log = self.data_dir.parent / f"lampi-{self.port}.log"
        cmd = [*lampi_command(), "serve", "--host", "127.0.0.1", "--port", str(self.port),
               "--data-dir", str(self.data_dir), "--workers", str(self.workers), "--log-format", "json",
               # no web console (its default port, 8081, would collide between parallel servers)
               # unless args ask for one: a later --console-port wins
               "--console-port", "0", *(["--ephemeral"] if self.ephemeral else []), *self.args]
        env = {k: v for k, v in os.environ.items() if not k.startswith("LAMPI_")}
        env.update(self.env)
        with open(self._log, "wb") as log:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True,  # its own process group: stopping it stops its workers; no Ctrl-C from the terminal
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        with _live_lock:
            _live.add(self)
        try:
            self._wait_ready()
            self._rc = _parse_rc((self.data_dir / "openrc.sh").read_text())
        except BaseException:
            self.stop(signal.SIGKILL)
            raise
        return self

    def _wait_ready(self) -> None:
        assert self.proc is not None
        try:
            wait_healthy(self.url, self.proc, self.start_timeout,
                         ready=lambda: (self.data_dir / "openrc.sh").exists())  # type: ignore[operator]
        except ServerError as exc:
            raise ServerError(f"lampi serve: {exc}:\n{self.log()}") from None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int | None:
        """Stop the server (``sig``, then SIGKILL to its whole process group after
        ``timeout``) and remove a data dir this object made. Returns its exit status."""
        proc, code = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, sig)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    pass
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # workers left by a supervisor that died
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(30)
            code = proc.returncode
        with _live_lock:
            _live.discard(self)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        return code

    def __enter__(self) -> Server:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log(self) -> str:
        """What the server wrote so far (JSON lines)."""
        return self._log.read_text(errors="replace") if self._log and self._log.exists() else ""

    # -- where and who ---------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL: Keystone at ``/v3``, Swift at ``/swift/v1``, S3 at the root."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth_url(self) -> str:
        return f"{self.url}/v3"

    @property
    def s3_url(self) -> str:
        return self.url

    @property
    def os_env(self) -> dict[str, str]:
        """The admin's OpenStack RC file v3 as environment variables (``OS_*``)."""
        return dict(self._rc)

    @property
    def admin(self) -> Credentials:
        """The admin user of project ``admin``, with an S3 key pair made on first use."""
        if self._admin is None:
            rc = self._rc
            key = self.cli_json("credential", "create", rc["OS_USERNAME"], rc["OS_PROJECT_NAME"])
            self._admin = Credentials(project=rc["OS_PROJECT_NAME"], user=rc["OS_USERNAME"],
                                      password=rc["OS_PASSWORD"], access=key["access"], secret=key["secret"],
                                      project_id=key["project_id"], user_id=key["user_id"])
        return self._admin

    def env_for(self, who: Credentials | None = None) -> dict[str, str]:
        """Environment for command-line clients acting as ``who`` (default the admin):
        ``OS_*`` for swift/openstack/rclone, ``AWS_*`` for aws/boto3."""
        who = who or self.admin
        env = dict(self._rc)
        env.update(OS_USERNAME=who.user, OS_PASSWORD=who.password, OS_PROJECT_NAME=who.project,
                   OS_USER_DOMAIN_NAME=who.domain, OS_PROJECT_DOMAIN_NAME=who.domain)
        env.pop("OS_PROJECT_ID", None)
        env.pop("OS_TENANT_ID", None)
        env.pop("OS_TENANT_NAME", None)
        if who.access:
            env.update(AWS_ACCESS_KEY_ID=who.access, AWS_SECRET_ACCESS_KEY=who.secret,
                       AWS_ENDPOINT_URL=self.s3_url, AWS_DEFAULT_REGION="us-east-1")
        return env

    # -- clients -------------------------------------------------------------------------

    def swift(self, who: Credentials | None = None, **kwargs: Any) -> Any:
        """A ``swiftclient.Connection`` logged in with Keystone v3 as ``who`` (the admin)."""
        import swiftclient

        who = who or Credentials(project=self._rc["OS_PROJECT_NAME"], user=self._rc["OS_USERNAME"],
                                 password=self._rc["OS_PASSWORD"])
        opts = {"user_domain_name": who.domain, "project_domain_name": who.domain, "project_name": who.project}
        kwargs.setdefault("retries", 3)
        return swiftclient.Connection(authurl=self.auth_url, user=who.user, key=who.password, auth_version="3",
                                      os_options=opts, **kwargs)

    def s3(self, who: Credentials | None = None, **kwargs: Any) -> Any:
        """A boto3 S3 client with ``who``'s key pair (default the admin's)."""
        import boto3

        who = who or self.admin
        kwargs.setdefault("region_name", "us-east-1")
        return boto3.client("s3", endpoint_url=self.s3_url, aws_access_key_id=who.access,
                            aws_secret_access_key=who.secret, **kwargs)

    def s3_resource(self, who: Credentials | None = None, **kwargs: Any) -> Any:
        """A boto3 S3 service resource with ``who``'s key pair (default the admin's)."""
        import boto3

        who = who or self.admin
        kwargs.setdefault("region_name", "us-east-1")
        return boto3.resource("s3", endpoint_url=self.s3_url, aws_access_key_id=who.access,
                              aws_secret_access_key=who.secret, **kwargs)

    # -- more projects, users and keys -------------------------------------------------------

    def make_project(self, name: str | None = None) -> str:
        """Create a project; returns its id."""
        return str(self.cli_json("project", "create", name or _name("project"))["id"])

    def make_user(self, name: str | None = None, project: str | None = None, role: str = "member",
                  password: str | None = None, s3_key: bool = True) -> Credentials:
        """Create a user with ``role`` in ``project`` (a new project if None) and, unless
        ``s3_key`` is false, an S3 key pair for it there."""
        import secrets

        name = name or _name("user")
        password = password or secrets.token_urlsafe(18)
        if project is None:
            project = _name("project")
            self.cli_json("project", "create", project)
        user = self.cli_json("user", "create", name, "--password", password, "--project", project, "--role", role)
        access = secret = project_id = ""
        if s3_key:
            key = self.cli_json("credential", "create", name, project)
            access, secret, project_id = key["access"], key["secret"], key["project_id"]
        return Credentials(project=project, user=name, password=password, access=access, secret=secret,
                           project_id=project_id, user_id=str(user.get("id", "")))

    def make_s3_key(self, user: str, project: str) -> Credentials:
        """A new S3 key pair for ``user`` in ``project`` (names or ids)."""
        key = self.cli_json("credential", "create", user, project)
        return Credentials(project=project, user=user, password="", access=key["access"], secret=key["secret"],
                           project_id=key["project_id"], user_id=key["user_id"])

    def cli(self, *args: str, input: str | None = None) -> str:
        """Run an admin ``lampi`` command on this server's store; its output."""
        if self.data_dir is None:
            raise ServerError("not started")
        res = subprocess.run([*lampi_command(), *args, "--data-dir", str(self.data_dir)],
                             capture_output=True, text=True, input=input, check=False, timeout=CLI_TIMEOUT,
                             env={k: v for k, v in os.environ.items() if not k.startswith("LAMPI_")} | self.env)
        if res.returncode != 0:
            raise ServerError(f"lampi {' '.join(args)} exited {res.returncode}: {res.stderr.strip()}")
        return res.stdout

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json"))


def _name(kind: str) -> str:
    import secrets

    return f"{kind}-{secrets.token_hex(4)}"


def lampi_command() -> list[str]:
    """``lampi`` of this Python environment."""
    return [sys.executable, "-m", "lampi"]


def _stop_all() -> None:
    with _live_lock:
        servers = list(_live)
    for srv in servers:
        srv.stop(signal.SIGKILL, timeout=10)


atexit.register(_stop_all)
