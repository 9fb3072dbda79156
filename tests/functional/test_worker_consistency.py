"""What one worker of a server writes, the other worker's next request sees.

Each worker keeps the container records it read while meta.db is unchanged
(lampi.store.meta.sqlite.containers: ``_cached``). A change made through one worker
(a container's ACL, the container deleted and made again) must reach a request on the
other worker at once, not when some cache expires. Two keep-alive connections are
pinned to the two workers (the access line's pid tells which worker answered); the
container and its object are written with python-swiftclient, the ACL changes go
through one connection and the reads through the other."""

from __future__ import annotations

import http.client
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import swiftclient

from tests.functional.conftest import LampiServer, free_port


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LampiServer]:
    srv = LampiServer(data_dir=tmp_path_factory.mktemp("workers") / "data", port=free_port(), workers=2)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def _pid_of(server: LampiServer, tag: str) -> int:
    """The pid of the worker that logged the request tagged ``tag``."""
    assert server.log_path is not None
    deadline = time.monotonic() + 60  # the access line is written after the response
    while time.monotonic() < deadline:
        for line in Path(server.log_path).read_text(errors="replace").splitlines():
            if tag in line and line.startswith("{"):
                return int(json.loads(line)["pid"])
        time.sleep(0.05)
    raise AssertionError(f"no access line for {tag}")


def _pinned(server: LampiServer) -> tuple[http.client.HTTPConnection, http.client.HTTPConnection]:
    """Two keep-alive connections answered by different workers."""
    by_pid: dict[int, http.client.HTTPConnection] = {}
    spare: list[http.client.HTTPConnection] = []
    try:
        for _ in range(60):
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
            tag = f"pin-{uuid.uuid4().hex}"
            conn.request("GET", f"/healthcheck?{tag}=1")
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200
            pid = _pid_of(server, tag)
            if pid in by_pid:
                spare.append(conn)  # held open: the next connection goes to the other worker
                continue
            by_pid[pid] = conn
            if len(by_pid) == 2:
                first, second = by_pid.values()
                return first, second
    finally:
        for conn in spare:
            conn.close()
    raise AssertionError(f"every connection went to one worker: {list(by_pid)}")


def _call(conn: http.client.HTTPConnection, method: str, path: str,
          headers: dict[str, str] | None = None, body: bytes | None = None) -> tuple[int, bytes]:
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    return resp.status, resp.read()


def test_a_change_through_one_worker_is_seen_by_the_other_at_once(two_workers: LampiServer) -> None:
    env = two_workers.openrc()
    sc = swiftclient.Connection(
        authurl=env["OS_AUTH_URL"], user=env["OS_USERNAME"], key=env["OS_PASSWORD"], auth_version="3",
        os_options={"project_name": env["OS_PROJECT_NAME"], "user_domain_name": "Default",
                    "project_domain_name": "Default"}, retries=0)
    url, token = sc.get_auth()
    account_path = "/" + url.split("/", 3)[3]
    container = f"c-{uuid.uuid4().hex[:12]}"
    sc.put_container(container)
    sc.put_object(container, "o", b"first")
    writer, reader = _pinned(two_workers)
    owner = {"X-Auth-Token": token}
    obj = f"{account_path}/{container}/o"
    try:
        for _ in range(3):  # the reader's worker has the private container in its cache
            assert _call(reader, "GET", obj)[0] == 401
            assert _call(reader, "GET", obj, owner) == (200, b"first")
        for _ in range(5):
            assert _call(writer, "POST", f"{account_path}/{container}", {**owner, "X-Container-Read": ".r:*"})[0] == 204
            assert _call(reader, "GET", obj) == (200, b"first")  # public at once
            assert _call(writer, "POST", f"{account_path}/{container}", {**owner, "X-Remove-Container-Read": "x"})[0] == 204
            assert _call(reader, "GET", obj)[0] == 401  # private again at once

        # the container deleted through one worker is gone on the other
        assert _call(reader, "HEAD", obj, owner)[0] == 200
        assert _call(writer, "DELETE", obj, owner)[0] == 204
        assert _call(writer, "DELETE", f"{account_path}/{container}", owner)[0] == 204
        assert _call(reader, "HEAD", obj, owner)[0] == 404
        assert _call(reader, "HEAD", f"{account_path}/{container}", owner)[0] == 404
        # and made again (a new record under the same name), public from the start
        assert _call(writer, "PUT", f"{account_path}/{container}", {**owner, "X-Container-Read": ".r:*"})[0] == 201
        assert _call(writer, "PUT", obj, {**owner, "Content-Length": "6"}, b"second")[0] == 201
        assert _call(reader, "GET", obj) == (200, b"second")
    finally:
        writer.close()
        reader.close()
    # both ends of the test were the two workers
    assert len({line["pid"] for line in _access_lines(two_workers) if container in line.get("path", "")}) == 2


def _access_lines(server: LampiServer) -> list[dict[str, object]]:
    assert server.log_path is not None
    out = []
    for line in Path(server.log_path).read_text(errors="replace").splitlines():
        if line.startswith("{"):
            rec = json.loads(line)
            if rec.get("logger") == "lampi.access":
                out.append(rec)
    return out


def test_a_token_revoked_through_one_worker_is_refused_by_the_other_at_once(two_workers: LampiServer) -> None:
    """keystoneauth1's session issues the token; it is revoked (DELETE /v3/auth/tokens)
    through one worker and used at once through the other, whose revoked set was current
    a moment before."""
    from keystoneauth1 import session
    from keystoneauth1.identity import v3

    env = two_workers.openrc()
    sess = session.Session(auth=v3.Password(
        auth_url=env["OS_AUTH_URL"], username=env["OS_USERNAME"], password=env["OS_PASSWORD"],
        project_name=env["OS_PROJECT_NAME"], user_domain_name="Default", project_domain_name="Default"))
    writer, reader = _pinned(two_workers)
    try:
        for _ in range(3):
            token = sess.get_token()
            account = "/v1/AUTH_" + sess.get_project_id()
            assert _call(reader, "HEAD", account, {"X-Auth-Token": token})[0] == 204
            assert _call(writer, "DELETE", "/v3/auth/tokens",
                         {"X-Auth-Token": token, "X-Subject-Token": token})[0] == 204
            assert _call(reader, "HEAD", account, {"X-Auth-Token": token})[0] == 401
            sess.invalidate()  # a new token for the next round
    finally:
        writer.close()
        reader.close()
