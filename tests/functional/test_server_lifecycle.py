"""The ``lampi serve`` process: readiness, banner, configuration sources, workers,
signals, in-flight uploads at shutdown, JSON logs."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import swiftclient

from lampi.bench.rss import cpu_seconds
from tests.functional.conftest import LampiServer, free_port, lampi_cmd, spawn_server, stop_server, wait_healthy

READY_LIMIT = 1.0


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAMPI_", "OS_"))}
    env["LAMPI_CONSOLE_PORT"] = "0"  # no console on 8081: servers of parallel tests would collide
    env.update(extra)
    return env


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> float:
    """Seconds until /healthcheck first answers 200 (errors retried until a generous deadline)."""
    return wait_healthy(url, proc)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    return stop_server(proc, sig)


def connect(srv: LampiServer) -> swiftclient.Connection:
    rc = srv.openrc()
    return swiftclient.Connection(
        authurl=rc["OS_AUTH_URL"], user=rc["OS_USERNAME"], key=rc["OS_PASSWORD"], auth_version="3", retries=0,
        os_options={"user_domain_name": "Default", "project_domain_name": "Default",
                    "project_name": rc["OS_PROJECT_NAME"]},
    )


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids = (task / "children").read_text().split()
        out.extend(int(k) for k in kids)
    return out


def _cpu(pid: int) -> float:
    """Seconds on a CPU of a process: every thread, also the ones that ended."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def _busy() -> float:
    """Seconds every CPU of the machine spent on anything but idling since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # guest time is in user already


def test_ready_within_one_second_on_fresh_data_dir(tmp_path: Path) -> None:
    """Measured from Popen to the first 200 of /healthcheck, with a fresh data dir
    (bootstrap: keys, SQLite schema, admin user, RC file). Best of three starts, so a
    busy CI machine's one-off hiccup does not count as a regression.

    On a machine whose CPUs others were using during the start (over 0.2 s of CPU time
    spent by processes other than the server, its workers and this test), wall time
    measures the machine, not lampi: there the start-up's own CPU time must fit instead.
    The start-up works on two cores at once (the server's modules load in a thread
    while the bootstrap hashes the admin's password, lampi.gateway.startup), so its CPU
    time over every thread must stay under the limit times two, the cores it has here."""
    walls: list[float] = []
    cpus: list[float] = []
    others: list[float] = []
    for attempt in range(3):
        port = free_port()
        busy, mine = _busy(), time.process_time()
        start = time.monotonic()
        proc = spawn_server([*lampi_cmd(), "serve", "--port", str(port), "--data-dir",
                             str(tmp_path / f"d{attempt}")], env=clean_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_ready(f"http://127.0.0.1:{port}", proc)
            walls.append(time.monotonic() - start)
            cpus.append(_cpu(proc.pid))
            server = cpu_seconds([proc.pid])  # the supervisor and its workers
            others.append(_busy() - busy - server - (time.process_time() - mine))
        finally:
            assert stop(proc) == 0
        if walls[-1] < READY_LIMIT:
            break
    print(f"\nready after {min(walls):.3f} s (attempts: {', '.join(f'{t:.3f}' for t in walls)}; "
          f"CPU {', '.join(f'{t:.2f}' for t in cpus)} s; others' CPU meanwhile "
          f"{', '.join(f'{t:.2f}' for t in others)} s)")
    contended = any(o > 0.2 for o in others)
    cores = min(2, len(os.sched_getaffinity(0)))
    assert min(walls) < READY_LIMIT or (contended and min(c for c in cpus if c) < READY_LIMIT * cores)


def test_banner_prints_endpoint_and_openrc_hint(fresh_server: LampiServer) -> None:
    fresh_server.start()
    log = fresh_server.log()
    dd = str(fresh_server.data_dir.resolve())
    assert f"listening on {fresh_server.url}" in log
    assert f"{fresh_server.url}/v3" in log
    assert f"{fresh_server.url}/swift/v1/AUTH_" in log  # the catalog's form (storage_url_form = allas)
    assert f'eval "$(lampi openrc --data-dir {dd})"' in log
    assert "first start" in log
    # the RC file it points at logs in
    connect(fresh_server).head_account()

    # second start on the same dir: no "first start", same credentials still work
    assert fresh_server.stop() == 0
    fresh_server.start()
    second = fresh_server.log()
    assert "first start" not in second
    assert f'eval "$(lampi openrc --data-dir {dd})"' in second
    connect(fresh_server).head_account()


def test_config_from_env_vars(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "envdata"
    proc = spawn_server([*lampi_cmd(), "serve"], env=clean_env(LAMPI_PORT=str(port), LAMPI_DATA_DIR=str(data),
                                                                LAMPI_REGION="lab-1"),
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
        assert (data / "meta.db").exists()
        assert not (tmp_path / "lampi-data").exists()
        rc = (data / "openrc.sh").read_text()
        assert f"OS_AUTH_URL='http://127.0.0.1:{port}/v3'" in rc
        assert "OS_REGION_NAME='lab-1'" in rc
    finally:
        assert stop(proc) == 0


def test_default_workers_one_per_core(tmp_path: Path) -> None:
    """Without --workers the server starts one worker per core it may run on (as Swift's
    workers = auto) and its banner says how many."""
    cores = len(os.sched_getaffinity(0))
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = spawn_server([*lampi_cmd(), "serve", "--log-format", "json"],
                            env=clean_env(LAMPI_PORT=str(port), LAMPI_DATA_DIR=str(tmp_path / "d")),
                            stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
        assert f"({cores} worker{'s' if cores != 1 else ''})" in log.read_text()
        if cores > 1:  # one worker runs in the supervisor's own process
            deadline = time.monotonic() + 30
            while len(children(proc.pid)) < cores and time.monotonic() < deadline:
                time.sleep(0.1)
            assert len(children(proc.pid)) == cores
    finally:
        assert stop(proc) == 0


def test_config_from_toml_and_precedence(tmp_path: Path) -> None:
    toml_port, env_port, flag_port = free_port(), free_port(), free_port()
    data = tmp_path / "tomldata"
    cfg = tmp_path / "lampi.toml"
    cfg.write_text(f'port = {toml_port}\ndata_dir = "{data}"\nregion = "toml-region"\ntoken_ttl = 600\n')

    # TOML alone, --config after the subcommand
    proc = spawn_server([*lampi_cmd(), "serve", "--config", str(cfg)], env=clean_env(),
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        wait_ready(f"http://127.0.0.1:{toml_port}", proc)
        assert "OS_REGION_NAME='toml-region'" in (data / "openrc.sh").read_text()
        srv = LampiServer(data_dir=data, port=toml_port)
        conn = connect(srv)
        conn.get_auth()
        # token_ttl from the file: expires ~600 s from now
        r = requests.post(f"{srv.url}/v3/auth/tokens", json={"auth": {"identity": {"methods": ["password"], "password": {
            "user": {"name": "admin", "domain": {"name": "Default"}, "password": srv.openrc()["OS_PASSWORD"]}}}}})
        assert r.status_code == 201
        from datetime import datetime
        exp = datetime.fromisoformat(r.json()["token"]["expires_at"].replace("Z", "+00:00")).timestamp()
        assert 500 < exp - time.time() <= 600
    finally:
        assert stop(proc) == 0

    # env beats TOML (LAMPI_CONFIG names the file), a flag beats env
    proc = spawn_server([*lampi_cmd(), "serve"], env=clean_env(LAMPI_CONFIG=str(cfg), LAMPI_PORT=str(env_port)),
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        wait_ready(f"http://127.0.0.1:{env_port}", proc)
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{toml_port}/healthcheck", timeout=1)
        # the RC file follows the endpoint the server now runs on
        assert f"OS_AUTH_URL='http://127.0.0.1:{env_port}/v3'" in (data / "openrc.sh").read_text()
    finally:
        assert stop(proc) == 0

    proc = spawn_server([*lampi_cmd(), "--config", str(cfg), "serve", "--port", str(flag_port)],
                        env=clean_env(LAMPI_PORT=str(env_port)),
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        wait_ready(f"http://127.0.0.1:{flag_port}", proc)
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{env_port}/healthcheck", timeout=1)
        connect(LampiServer(data_dir=data, port=flag_port)).head_account()
    finally:
        assert stop(proc) == 0


def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('colour = "blue"\n')
    proc = subprocess.run([*lampi_cmd(), "serve", "--config", str(cfg), "--data-dir", str(tmp_path / "d")],
                          env=clean_env(), capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0
    assert "unknown setting 'colour'" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = subprocess.run([*lampi_cmd(), "serve", "--config", str(tmp_path / "missing.toml")],
                          env=clean_env(), capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0
    assert "missing.toml" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = subprocess.run([*lampi_cmd(), "serve", "--port", str(port), "--data-dir", str(tmp_path / "d")],
                              env=clean_env(), capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_exits_zero(fresh_server: LampiServer, sig: int) -> None:
    fresh_server.start()
    connect(fresh_server).head_account()
    assert fresh_server.stop(sig) == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{fresh_server.url}/healthcheck", timeout=1)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_two_workers_serve_and_stop_cleanly(fresh_server: LampiServer, unique: str, sig: int) -> None:
    fresh_server.workers = 2
    fresh_server.start()
    assert fresh_server.proc is not None
    workers = children(fresh_server.proc.pid)
    assert len(workers) == 2

    conn = connect(fresh_server)
    conn.put_container(unique)
    url, token = conn.get_auth()

    def put_get(i: int) -> bool:
        body = f"object {i}".encode()
        r = requests.put(f"{url}/{unique}/o{i}", data=body, headers={"X-Auth-Token": token}, timeout=30)
        assert r.status_code == 201, r.text
        g = requests.get(f"{url}/{unique}/o{i}", headers={"X-Auth-Token": token}, timeout=30)
        return g.content == body and g.headers["ETag"] == hashlib.md5(body).hexdigest()

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        assert all(pool.map(put_get, range(64)))
    assert int(conn.head_container(unique)["x-container-object-count"]) == 64

    # each worker answers on its own: with the other one frozen, every request is served
    for frozen in workers:
        os.kill(frozen, signal.SIGSTOP)
        try:
            for _ in range(5):
                r = requests.head(f"{url}/{unique}", headers={"X-Auth-Token": token}, timeout=10)
                assert r.status_code == 204
                assert r.headers["X-Container-Object-Count"] == "64"
        finally:
            os.kill(frozen, signal.SIGCONT)

    # a worker that dies is replaced
    os.kill(workers[0], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        now = children(fresh_server.proc.pid)
        if len(now) == 2 and workers[0] not in now:
            break
        time.sleep(0.1)
    now = children(fresh_server.proc.pid)
    assert len(now) == 2 and workers[0] not in now
    for _ in range(5):
        assert requests.get(f"{fresh_server.url}/healthcheck", timeout=10).status_code == 200

    assert fresh_server.stop(sig) == 0
    for pid in now:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


def _slow_put(srv: LampiServer, token: str, path: str, body: bytes) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
    head = (f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nX-Auth-Token: {token}\r\n"
            f"Content-Length: {len(body)}\r\nContent-Type: application/octet-stream\r\n\r\n")
    s.sendall(head.encode())
    return s


def _read_status(s: socket.socket) -> int | None:
    try:
        data = s.recv(4096)
    except (ConnectionResetError, TimeoutError, socket.timeout):
        return None
    if not data:
        return None
    return int(data.split(b" ", 2)[1])


def _restart_and_check(srv: LampiServer, cont: str, name: str, body: bytes) -> int:
    """Restart on the same data dir; the object is whole or absent. Returns GET status."""
    srv.start()
    conn = connect(srv)
    try:
        headers, data = conn.get_object(cont, name)
    except swiftclient.ClientException as exc:
        assert exc.http_status == 404
        listing = conn.get_container(cont)[1]
        assert name not in [o["name"] for o in listing]
        status = 404
    else:
        assert data == body
        assert headers["etag"] == hashlib.md5(body).hexdigest()
        status = 200
    assert not list((srv.data_dir / "tmp").iterdir())
    fsck = srv.cli("fsck", "--grace", "0", "--json", check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    rep = json.loads(fsck.stdout)
    assert rep["clean"] and not rep["missing_blobs"] and not rep["size_mismatches"]
    return status


def test_sigterm_lets_slow_upload_finish(fresh_server: LampiServer, unique: str) -> None:
    fresh_server.start()
    conn = connect(fresh_server)
    conn.put_container(unique)
    url, token = conn.get_auth()
    path = url.split(str(fresh_server.port), 1)[1] + f"/{unique}/slow"
    body = os.urandom(256 * 1024)
    s = _slow_put(fresh_server, token, path, body)
    try:
        s.sendall(body[:100_000])
        time.sleep(0.3)
        assert fresh_server.proc is not None
        fresh_server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        # the server stops accepting new connections at once...
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{fresh_server.url}/healthcheck", timeout=2)
        # ...but the upload in flight may finish
        for i in range(100_000, len(body), 50_000):
            s.sendall(body[i:i + 50_000])
            time.sleep(0.05)
        assert _read_status(s) == 201
    finally:
        s.close()
    assert fresh_server.proc.wait(30) == 0
    assert _restart_and_check(fresh_server, unique, "slow", body) == 200


def test_sigterm_aborts_stalled_upload_cleanly(fresh_server: LampiServer, unique: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMPI_SHUTDOWN_TIMEOUT", "1")
    fresh_server.start()
    conn = connect(fresh_server)
    conn.put_container(unique)
    conn.put_object(unique, "stalled", b"old version")
    url, token = conn.get_auth()
    path = url.split(str(fresh_server.port), 1)[1] + f"/{unique}/stalled"
    body = os.urandom(2 * 1024 * 1024)
    s = _slow_put(fresh_server, token, path, body)
    try:
        s.sendall(body[: len(body) // 2])  # and then nothing more
        time.sleep(0.5)
        assert fresh_server.proc is not None
        t0 = time.monotonic()
        fresh_server.proc.send_signal(signal.SIGTERM)
        assert fresh_server.proc.wait(30) == 0
        assert time.monotonic() - t0 < 10
        assert _read_status(s) in (None, 503)
    finally:
        s.close()
    # the previous version is what stays visible
    fresh_server.start()
    headers, data = connect(fresh_server).get_object(unique, "stalled")
    assert data == b"old version"
    fresh_server.stop()
    _restart_and_check(fresh_server, unique, "stalled", b"old version")


def test_trans_id_in_json_log_lines(server: LampiServer, swift_conn: swiftclient.Connection, unique: str) -> None:
    swift_conn.put_container(unique)
    url, token = swift_conn.get_auth()
    tid = requests.head(f"{url}/{unique}", headers={"X-Auth-Token": token}).headers["X-Trans-Id"]
    assert tid.startswith("tx")
    r = requests.get(f"{server.url}/v1/AUTH_nope/{unique}")
    bad_tid = r.headers["X-Trans-Id"]
    assert bad_tid != tid
    deadline = time.monotonic() + 5
    found: dict[str, dict[str, object]] = {}
    while time.monotonic() < deadline and len(found) < 2:
        for line in server.log().splitlines():
            if not line.startswith("{"):
                continue
            rec = json.loads(line)  # every JSON line parses
            if rec.get("trans_id") in (tid, bad_tid):
                found[str(rec["trans_id"])] = rec
        time.sleep(0.1)
    assert found[tid]["method"] == "HEAD"
    assert found[tid]["status"] == 204
    assert found[tid]["path"].endswith(f"/{unique}")  # type: ignore[union-attr]
    assert found[bad_tid]["status"] == 401
    swift_conn.delete_container(unique)


def test_json_log_has_no_secrets(server: LampiServer) -> None:
    password = server.openrc()["OS_PASSWORD"]
    requests.post(f"{server.url}/v3/auth/tokens", json={"auth": {"identity": {"methods": ["password"], "password": {
        "user": {"name": "admin", "domain": {"name": "Default"}, "password": password}}}}})
    requests.get(f"{server.url}/info?token=sekrit-value")
    time.sleep(0.2)
    log = server.log()
    assert password not in log
    assert "sekrit-value" not in log
    assert sys.executable  # keep imports honest


def test_access_log_counts_body_bytes(server: LampiServer, swift_conn, unique: str) -> None:  # noqa: ANN001
    """One JSON access line per request, with the transaction id the client got back and
    ``bytes_out`` the body bytes (not the headers): 4,096 for a 4 KiB GET, 0 for a HEAD."""
    swift_conn.put_container(unique)
    swift_conn.put_object(unique, "four-k", b"k" * 4096)
    got_headers, body = swift_conn.get_object(unique, "four-k")
    head = swift_conn.head_object(unique, "four-k")
    assert len(body) == 4096
    deadline = time.monotonic() + 5
    lines: dict[str, dict] = {}
    want = {got_headers["x-trans-id"], head["x-trans-id"]}
    while time.monotonic() < deadline and not want <= set(lines):
        for raw in server.log().splitlines():
            try:
                rec = json.loads(raw)
            except ValueError:
                continue
            if rec.get("logger") == "lampi.access" and rec.get("path", "").endswith(f"/{unique}/four-k"):
                lines[rec["trans_id"]] = rec
        time.sleep(0.1)
    get_line = lines[got_headers["x-trans-id"]]
    head_line = lines[head["x-trans-id"]]
    assert (get_line["method"], get_line["status"], get_line["bytes_out"]) == ("GET", 200, 4096)
    assert (head_line["method"], head_line["status"], head_line["bytes_out"]) == ("HEAD", 200, 0)
    # a plain (not streamed) response: the healthcheck's body
    r = requests.get(f"{server.url}/healthcheck", timeout=10)
    tid = r.headers["X-Trans-Id"]
    deadline = time.monotonic() + 5
    line = None
    while line is None and time.monotonic() < deadline:
        line = next((json.loads(x) for x in server.log().splitlines() if tid in x and '"lampi.access"' in x), None)
        time.sleep(0.05)
    assert line is not None and line["bytes_out"] == len(r.content) > 0


def test_workers_stop_when_the_parent_is_killed(fresh_server: LampiServer) -> None:
    """A supervisor killed with SIGKILL (OOM killer, kill -9) takes its workers with it:
    they get SIGTERM from the kernel (PR_SET_PDEATHSIG), stop gracefully and free the
    port, instead of serving it unsupervised."""
    fresh_server.workers = 2
    fresh_server.start()
    parent = fresh_server.proc.pid
    workers = [int(p) for p in subprocess.run(["pgrep", "-P", str(parent)], capture_output=True,
                                              text=True).stdout.split()]
    assert len(workers) == 2
    os.kill(parent, signal.SIGKILL)
    fresh_server.proc.wait(10)
    deadline = time.monotonic() + 20
    alive = workers
    while alive and time.monotonic() < deadline:
        alive = [w for w in workers if os.path.exists(f"/proc/{w}") and
                 open(f"/proc/{w}/stat").read().split(")")[1].split()[0] != "Z"]
        time.sleep(0.1)
    assert not alive, f"workers outlived their parent: {alive}"
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{fresh_server.url}/healthcheck", timeout=2)
    fresh_server.proc = None  # nothing left to stop
