"""Helpers shared by the Swift API tests (test_swift_account/container/object.py)."""

from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
import swiftclient

from tests.functional.conftest import LampiServer


@dataclass
class Account:
    """A project of its own (empty account) with a member user, for exact counts."""

    project_id: str
    project: str
    user: str
    password: str
    conn: swiftclient.Connection

    @property
    def url(self) -> str:
        return self.conn.get_auth()[0]

    @property
    def token(self) -> str:
        return self.conn.get_auth()[1]


def new_account(server: LampiServer, role: str = "member") -> Account:
    """Create a project and a user on it with ``lampi`` admin commands."""
    tag = uuid.uuid4().hex[:10]
    project, user, password = f"p{tag}", f"u{tag}", f"pw-{tag}"
    project_id = server.cli("project", "create", project).stdout.strip()
    server.cli("user", "create", user, "--password", password, "--project", project, "--role", role)
    conn = swiftclient.Connection(
        authurl=server.auth_url,
        user=user,
        key=password,
        os_options={"user_domain_name": "Default", "project_domain_name": "Default", "project_name": project},
        auth_version="3",
        retries=0,
    )
    return Account(project_id, project, user, password, conn)


def assert_trans_id(resp: requests.Response) -> None:
    """Every Swift response carries X-Trans-Id and X-Openstack-Request-Id (the same id)."""
    tid = resp.headers.get("X-Trans-Id")
    assert tid and tid.startswith("tx"), resp.headers
    assert resp.headers.get("X-Openstack-Request-Id") == tid


class Raw:
    """Raw HTTP against a storage URL with a token (for what swiftclient can't send)."""

    def __init__(self, token: str, url: str) -> None:
        self.token = token
        self.url = url.rstrip("/")
        self.s = requests.Session()

    def __call__(self, method: str, path: str = "", *, headers: dict[str, str] | None = None,
                 **kw: object) -> requests.Response:
        h = {"X-Auth-Token": self.token}
        h.update(headers or {})
        resp = self.s.request(method, self.url + path, headers=h, timeout=30, **kw)  # type: ignore[arg-type]
        assert_trans_id(resp)
        return resp


def raw_http(url: str, request_bytes: bytes, *, body_chunks: tuple[bytes, ...] = (),
             close_after: bool = False, read_interim: bool = False,
             timeout: float = 10.0) -> tuple[bytes, bytes]:
    """Send a hand-made HTTP/1.1 request on a plain socket.

    Returns (interim response bytes, final response bytes). ``close_after``: close the
    socket right after the body chunks, without reading (a client that vanished).
    """
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    interim = b""
    try:
        sock.sendall(request_bytes)
        if read_interim:
            while b"\r\n\r\n" not in interim:
                data = sock.recv(4096)
                if not data:
                    break
                interim += data
        for chunk in body_chunks:
            sock.sendall(chunk)
        if close_after:
            return interim, b""
        out = b""
        while True:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                break
            if not data:
                break
            out += data
            head, sep, rest = out.partition(b"\r\n\r\n")
            if sep:
                length = None
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        length = int(v.strip())
                if length is not None and len(rest) >= length:
                    break
        return interim, out
    finally:
        sock.close()


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])
