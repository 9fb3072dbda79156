"""Hostile and broken clients against a real ``lampi serve``: half-sent requests
(Slowloris), stalled bodies, idle keep-alive connections, more connections than file
descriptors, malformed requests carrying credentials, and stop signals during start-up.

Servers here are started by hand (not the conftest fixtures) because they need a low
open-file limit, the asyncio loop instead of uvloop, or a signal before they are ready.
Every one runs in its own session and is killed with its process group at teardown.
"""

from __future__ import annotations

import json
import os
import re
import resource
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import swiftclient

from tests.functional.conftest import free_port, lampi_cmd, parse_openrc

LOOPS = ["uvloop", "asyncio"]
# `lampi serve` with uvloop made unimportable: asyncio's default loop
_NO_UVLOOP = "import sys; sys.modules['uvloop'] = None; from lampi.cli.main import main; main()"


@dataclass
class Srv:
    data_dir: Path
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def openrc(self) -> dict[str, str]:
        return parse_openrc((self.data_dir / "openrc.sh").read_text())

    def swift(self) -> swiftclient.Connection:
        rc = self.openrc()
        return swiftclient.Connection(
            authurl=rc["OS_AUTH_URL"], user=rc["OS_USERNAME"], key=rc["OS_PASSWORD"], auth_version="3", retries=0,
            os_options={"user_domain_name": rc["OS_USER_DOMAIN_NAME"], "project_name": rc["OS_PROJECT_NAME"],
                        "project_domain_name": rc["OS_PROJECT_DOMAIN_NAME"]}, timeout=30)

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"lampi exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if requests.get(f"{self.url}/healthcheck", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise AssertionError(f"lampi did not become ready:\n{self.log()}")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator:  # noqa: ANN201
    """``spawn(*args, nofile=N, loop="uvloop"|"asyncio", workers=1, ready=True, setting=value...)`` → Srv
    (settings given as ``LAMPI_*`` environment variables)."""
    started: list[Srv] = []

    def start(*args: str, nofile: int | None = None, loop: str = "uvloop", workers: int = 1,
              ready: bool = True, **settings: str) -> Srv:
        port = free_port()
        data_dir = tmp_path / f"data-{port}"
        log_path = tmp_path / f"server-{port}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LAMPI_", "OS_"))}
        env.update({f"LAMPI_{k.upper()}": v for k, v in settings.items()})  # settings as LAMPI_* env
        cmd = [sys.executable, "-c", _NO_UVLOOP] if loop == "asyncio" else lampi_cmd()

        def limit() -> None:  # in the child: a low hard fd limit, as a tight service would have
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        proc = subprocess.Popen(
            [*cmd, "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir),
             "--workers", str(workers), "--log-format", "json", "--console-port", "0", *args],
            stdout=open(log_path, "wb"), stderr=subprocess.STDOUT, env=env, preexec_fn=limit,
            start_new_session=True)
        srv = Srv(data_dir, port, proc, log_path)
        started.append(srv)
        if ready:
            srv.wait_ready()
        return srv

    yield start
    for srv in started:
        srv.kill()


def half_requests(srv: Srv, n: int) -> list[socket.socket]:
    """``n`` connections, each with a request head that is never finished."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.settimeout(5)
        try:
            s.connect(("127.0.0.1", srv.port))
            s.sendall(b"GET /healthcheck HTTP/1.1\r\nHost: x\r\n")
        except OSError:
            pass
        socks.append(s)
    return socks


def still_open(socks: list[socket.socket]) -> int:
    """How many of the sockets the server has not closed (nothing to read, no EOF)."""
    n = 0
    for s in socks:
        try:
            s.setblocking(False)
            if s.recv(65536) == b"":
                continue
        except BlockingIOError:
            n += 1
        except OSError:
            pass
    return n


def read_until_closed(s: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it did."""
    start = time.monotonic()
    s.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    except (TimeoutError, socket.timeout):
        raise AssertionError(f"connection still open after {timeout} s (received {data[:200]!r})") from None
    return data, time.monotonic() - start


def new_log(srv: Srv, since: int) -> str:
    return srv.log()[since:]


# -- Slowloris ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("loop,workers", [(loop, 1) for loop in LOOPS] + [("uvloop", 2)])
def test_idle_half_requests_past_the_fd_limit_do_not_starve_real_requests(spawn, loop: str,  # noqa: ANN001
                                                                           workers: int) -> None:
    """300 never-finished request heads per worker, each worker allowed 256 open files:
    real requests (requests, python-swiftclient) are still answered, each within 5 s
    (starved, they would wait for the idle heads' 20 s header timeout; 5 s leaves a busy
    CI machine its slowness), the server holds no more idle sockets than its cap, and
    the log is not flooded. Two workers accept through lampi.gateway.balance."""
    srv = spawn(nofile=256, loop=loop, workers=workers)
    before = len(srv.log())
    conn = srv.swift()
    conn.get_auth()  # a client that logged in before the attack
    idle = half_requests(srv, 300 * workers)
    try:
        time.sleep(1)
        took = []
        for _ in range(5):
            t = time.monotonic()
            r = requests.get(f"{srv.url}/healthcheck", timeout=10)
            took.append(time.monotonic() - t)
            assert r.status_code == 200
        t = time.monotonic()
        headers = conn.head_account()
        took.append(time.monotonic() - t)
        assert "x-account-container-count" in headers
        t = time.monotonic()
        srv.swift().get_auth()  # and a client logging in now (Keystone v3 over a new connection)
        took.append(time.monotonic() - t)
        assert max(took) < 5.0, took
        cap = re.search(r"up to (\d+) connections per worker \(open-file limit 256\)", srv.log())
        assert cap and int(cap.group(1)) < 256 - 64
        held = still_open(idle)
        assert held <= workers * int(cap.group(1)), (held, cap.group(0))
    finally:
        for s in idle:
            s.close()
    log = new_log(srv, before)
    assert "Too many open files" not in log
    assert "Traceback" not in log
    assert len(log.splitlines()) < 60, log[-3000:]
    assert srv.proc.poll() is None


def test_unfinished_head_is_answered_408_and_closed(spawn) -> None:  # noqa: ANN001
    """A request head not finished within header_timeout is closed, however slowly it trickles in."""
    srv = spawn(header_timeout="2")
    s = socket.create_connection(("127.0.0.1", srv.port))
    try:
        t0 = time.monotonic()
        s.sendall(b"GET /healthcheck HTTP/1.1\r\nHost: x\r\n")
        for i in range(40):  # one header line every 0.5 s does not extend the deadline
            if select.select([s], [], [], 0.5)[0]:
                break  # the server answered (or closed): send nothing more
            s.sendall(b"X-Slow-%d: y\r\n" % i)
        data, _ = read_until_closed(s, 20)
        elapsed = time.monotonic() - t0
    finally:
        s.close()
    assert data.startswith(b"HTTP/1.1 408"), data
    assert 1.9 <= elapsed < 20, elapsed
    # a connection that never sends a byte is closed too, without a response
    s = socket.create_connection(("127.0.0.1", srv.port))
    try:
        data, waited = read_until_closed(s, 20)
    finally:
        s.close()
    assert data == b""
    assert "Traceback" not in srv.log()


def _get(s: socket.socket, path: str = "/healthcheck") -> bytes:
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))
    while len(body) < length:
        body += s.recv(65536)
    return head


def test_idle_keepalive_connection_is_closed(spawn) -> None:  # noqa: ANN001
    srv = spawn(keepalive_timeout="2")
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=20)
    try:
        assert _get(s).startswith(b"HTTP/1.1 200")
        assert _get(s).startswith(b"HTTP/1.1 200")  # kept alive between requests
        data, waited = read_until_closed(s, 20)
    finally:
        s.close()
    assert data == b""  # closed quietly: no response to a request nobody sent
    assert 1.0 <= waited < 20


def _stalled_put(srv: Srv, path: str, headers: str, announced: int, sent: bytes) -> tuple[bytes, float]:
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    try:
        s.sendall(f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n{headers}"
                  f"Content-Length: {announced}\r\n\r\n".encode() + sent)
        t0 = time.monotonic()
        data, _ = read_until_closed(s, 30)
        return data, time.monotonic() - t0
    finally:
        s.close()


def test_stalled_upload_body_gets_408_and_stores_nothing(spawn) -> None:  # noqa: ANN001
    """Swift and S3 uploads whose body stops arriving: 408 in each protocol's format after
    body_timeout, the connection closed, the previous version of the object intact."""
    srv = spawn(body_timeout="2")
    conn = srv.swift()
    conn.put_container("stall")
    conn.put_object("stall", "obj", b"old version")
    url, token = conn.get_auth()
    path = url.split(str(srv.port), 1)[1] + "/stall/obj"
    data, took = _stalled_put(srv, path, f"X-Auth-Token: {token}\r\n", 100_000, b"x" * 1000)
    assert data.startswith(b"HTTP/1.1 408"), data
    assert b"<h1>Request Timeout</h1>" in data
    assert 1.5 <= took < 30
    assert conn.get_object("stall", "obj")[1] == b"old version"

    # S3: a presigned PUT (the signature is in the query) that stalls
    import boto3

    rc = srv.openrc()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")} | rc
    keys = json.loads(subprocess.run(["openstack", "ec2", "credentials", "create", "-f", "json"], env=env,
                                     capture_output=True, text=True, check=True, timeout=120).stdout)
    s3 = boto3.client("s3", endpoint_url=srv.url, aws_access_key_id=keys["access"],
                      aws_secret_access_key=keys["secret"], region_name="us-east-1")
    s3.create_bucket(Bucket="stall3")
    s3.put_object(Bucket="stall3", Key="k", Body=b"old s3 version")
    signed = s3.generate_presigned_url("put_object", Params={"Bucket": "stall3", "Key": "k"}, ExpiresIn=300)
    data, took = _stalled_put(srv, signed.split(str(srv.port), 1)[1], "", 50_000, b"y" * 100)
    assert data.startswith(b"HTTP/1.1 400"), data  # AWS answers RequestTimeout with 400
    assert b"<Code>RequestTimeout</Code>" in data
    assert s3.get_object(Bucket="stall3", Key="k")["Body"].read() == b"old s3 version"
    log = srv.log()
    assert "Traceback" not in log
    assert keys["secret"] not in log and token not in log
    assert re.search(r"[?&]Signature=REDACTED", log)
    assert not list((srv.data_dir / "tmp").iterdir())  # the partial blobs are gone


def test_connections_past_the_cap_are_refused_when_all_are_busy(spawn) -> None:  # noqa: ANN001
    """With every connection in a request (uploads in progress), one more gets 503 at
    once; when the uploads are done, connections are accepted again."""
    srv = spawn(max_connections="3", body_timeout="60", keepalive_timeout="1")
    conn = srv.swift()
    conn.put_container("busy")
    url, token = conn.get_auth()
    path = url.split(str(srv.port), 1)[1] + "/busy/o"
    conn.close()
    # the clients' kept-alive connections (swiftclient's, keystoneauth's) would be the
    # ones closed to make room: let the server close them first
    time.sleep(3)
    busy = []
    for i in range(3):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
        s.sendall(f"PUT {path}{i} HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {token}\r\n"
                  f"Content-Length: 10\r\n\r\n12345".encode())
        busy.append(s)
    time.sleep(1)  # the three handlers wait for the rest of their bodies
    try:
        t0 = time.monotonic()
        extra = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
        try:
            data, _ = read_until_closed(extra, 30)
        finally:
            extra.close()
        assert data.startswith(b"HTTP/1.1 503"), data
        assert b"Retry-After: 1" in data
        assert time.monotonic() - t0 < 10
        # a client that sends its request at once may see the 503 or a reset: never a wait
        t0 = time.monotonic()
        try:
            assert requests.get(f"{srv.url}/healthcheck", timeout=30).status_code == 503
        except requests.ConnectionError:
            pass
        assert time.monotonic() - t0 < 10
        for s in busy:
            s.sendall(b"67890")
            assert s.recv(4096).startswith(b"HTTP/1.1 201")
    finally:
        for s in busy:
            s.close()
    deadline = time.monotonic() + 20
    while requests.get(f"{srv.url}/healthcheck", timeout=10).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert [o["name"] for o in conn.get_container("busy")[1]] == ["o0", "o1", "o2"]


@pytest.mark.slow
@pytest.mark.parametrize("loop", LOOPS)
def test_out_of_file_descriptors_no_busy_loop_no_log_flood(spawn, loop: str) -> None:  # noqa: ANN001
    """A cap set above what the fd limit allows: accept() fails with EMFILE. The worker
    must not spin on it nor log each failure, and must serve again once sockets close."""
    srv = spawn(max_connections="5000", header_timeout="600", nofile=256, loop=loop)
    before = len(srv.log())
    idle = half_requests(srv, 400)
    try:
        time.sleep(1)
        cpu0, t0 = srv.cpu_seconds(), time.monotonic()
        for _ in range(5):  # more connection attempts while out of descriptors
            try:
                requests.get(f"{srv.url}/healthcheck", timeout=1)
            except requests.RequestException:
                pass
        time.sleep(max(0.0, 5 - (time.monotonic() - t0)))
        cpu = srv.cpu_seconds() - cpu0
        assert cpu < 1.5, f"{cpu:.2f} s of CPU in 5 s while out of file descriptors"
    finally:
        for s in idle:
            s.close()
    deadline = time.monotonic() + 30
    while True:  # serving again
        try:
            if requests.get(f"{srv.url}/healthcheck", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, "not serving again after the sockets closed"
        time.sleep(0.2)
    log = new_log(srv, before)
    assert "Traceback" not in log
    assert len(log.splitlines()) < 40, log[-3000:]
    assert srv.proc.poll() is None


# -- Secrets in logs ------------------------------------------------------------------------

SECRET = "S3cr3tV4lue"

MALFORMED = [
    # invalid characters in a header next to the credential, or in the credential itself
    f"GET /v1/AUTH_x HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {SECRET}a\x01\r\n\r\n",
    f"GET /b/k HTTP/1.1\r\nHost: x\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIA/{SECRET}b,"
    f" Signature={SECRET}c\x7f\r\n\r\n",
    f"GET /b/k HTTP/1.1\r\nHost: x\r\nX-Amz-Security-Token: {SECRET}d\r\nBad Header\r\n\r\n",
    f"GET /b/k HTTP/1.1\r\nHost: x\r\nCookie: session={SECRET}e\x00\r\n\r\n",
    # signatures and passwords in the query of a bad request line
    f"GET /v1/AUTH_x/c/o?temp_url_sig={SECRET}f&temp_url_expires=9 HTTP/9.9\r\nHost: x\r\n\r\n",
    f"GET /b/k?X-Amz-Signature={SECRET}g&X-Amz-Credential=AKIA%2F{SECRET}h HTTP/1.1 junk\r\nHost: x\r\n\r\n",
    f"GET /x?password={SECRET}i\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
    # a header line past max_field_size that starts with a token
    f"GET / HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {SECRET}j{'A' * 20000}\r\n\r\n",
    # framing errors after a head full of credentials
    f"POST /v3/auth/tokens HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {SECRET}k\r\nContent-Length: 1\r\n"
    f"Content-Length: 2\r\n\r\n",
    f"PUT /v1/AUTH_x/c/o HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {SECRET}l\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
]


def test_rejected_requests_leave_no_credentials_nor_tracebacks_in_the_log(spawn) -> None:  # noqa: ANN001
    srv = spawn()
    before = len(srv.log())
    rounds = 20
    for _ in range(rounds):
        for raw in MALFORMED:
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            try:
                s.sendall(raw.encode("latin-1"))
                data, _ = read_until_closed(s, 10)
            finally:
                s.close()
            # the last: a valid head with a broken body is answered as its head deserves
            # (here a 401: the token is no token), then the body's 400
            expected = (b"HTTP/1.1 401",) if raw is MALFORMED[-1] else (b"HTTP/1.0 400", b"HTTP/1.1 400")
            assert data.startswith(expected), (raw[:60], data[:200])
            assert SECRET.encode() not in data  # nor echoed back
    # requests the parser accepts carry credentials in the query: the access line redacts them
    requests.get(f"{srv.url}/v1/AUTH_x/c/o?temp_url_sig={SECRET}m&temp_url_expires=1", timeout=10)
    requests.get(f"{srv.url}/b/k?X-Amz-Signature={SECRET}n&X-Amz-Credential={SECRET}o&X-Amz-Security-Token="
                 f"{SECRET}p", timeout=10)
    time.sleep(0.5)
    log = new_log(srv, before)
    assert SECRET not in log
    assert "Traceback" not in log
    rejected = [line for line in log.splitlines() if "rejected a malformed request" in line]
    # one line each, until the throttle holds the rest back (a flood stays a trickle)
    assert 1 <= len(rejected) <= 20, len(rejected)
    assert len(log) < 20_000, len(log)
    for line in rejected:
        rec = json.loads(line)
        assert rec["status"] == 400 and "exc" not in rec
    assert srv.proc.poll() is None


# -- Access log of virtual-hosted S3 ---------------------------------------------------------


def test_access_log_of_virtual_hosted_s3_names_bucket_and_host(spawn) -> None:  # noqa: ANN001
    import boto3
    from botocore.config import Config

    srv = spawn("--s3-domain", "s3.lampi.test")
    rc = srv.openrc()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")} | rc
    keys = json.loads(subprocess.run(["openstack", "ec2", "credentials", "create", "-f", "json"], env=env,
                                     capture_output=True, text=True, check=True, timeout=120).stdout)
    host = f"s3.lampi.test:{srv.port}"
    path_style = boto3.client("s3", endpoint_url=srv.url, aws_access_key_id=keys["access"],
                              aws_secret_access_key=keys["secret"], region_name="us-east-1")
    path_style.create_bucket(Bucket="vhostbucket")
    path_style.put_object(Bucket="vhostbucket", Key="dir/key.txt", Body=b"hello")
    # boto3 signs for http://vhostbucket.s3.lampi.test:PORT/dir/key.txt; the request goes
    # to 127.0.0.1 with that Host header (no DNS needed)
    virtual = boto3.client("s3", endpoint_url=f"http://{host}", aws_access_key_id=keys["access"],
                           aws_secret_access_key=keys["secret"], region_name="us-east-1",
                           config=Config(s3={"addressing_style": "virtual"}))
    signed = virtual.generate_presigned_url("get_object", Params={"Bucket": "vhostbucket", "Key": "dir/key.txt"})
    assert signed.startswith(f"http://vhostbucket.{host}/dir/key.txt?")
    before = len(srv.log())
    r = requests.get(f"{srv.url}{signed.split(host, 1)[1]}", headers={"Host": f"vhostbucket.{host}"}, timeout=10)
    assert r.status_code == 200 and r.content == b"hello"
    time.sleep(0.3)
    lines = [json.loads(x) for x in new_log(srv, before).splitlines() if '"lampi.access"' in x]
    line = next(x for x in lines if x["path"] == "/dir/key.txt")
    assert line["bucket"] == "vhostbucket"
    assert line["host"] == f"vhostbucket.{host}"
    assert line["status"] == 200
    assert "REDACTED" in line["query"] and keys["secret"] not in json.dumps(line)


# -- Stop signals during start-up ------------------------------------------------------------


def _sigterm_caught(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    caught = int(re.search(r"SigCgt:\s*([0-9a-f]+)", status).group(1), 16)
    return bool(caught & (1 << (signal.SIGTERM - 1)))


def _assert_stopped_cleanly(srv: Srv) -> None:
    try:
        code = srv.proc.wait(60)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"lampi did not exit after SIGTERM:\n{srv.log()}") from None
    log = srv.log()
    assert code == 0, f"exit {code}:\n{log}"
    assert "Traceback" not in log, log
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):  # no worker left behind in its process group
        os.killpg(srv.proc.pid, 0)
    with socket.socket() as s:  # and the port is free
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", srv.port))
        s.listen(1)


def test_sigterm_during_bootstrap_exits_zero(spawn) -> None:  # noqa: ANN001
    """SIGTERM while the data dir is being created (the first start's bootstrap)."""
    srv = spawn(ready=False)
    deadline = time.monotonic() + 60
    while not (srv.data_dir / "meta.db").exists():
        assert srv.proc.poll() is None and time.monotonic() < deadline, srv.log()
        time.sleep(0.002)
    srv.proc.send_signal(signal.SIGTERM)
    _assert_stopped_cleanly(srv)


def test_sigterm_while_workers_come_up_exits_zero(spawn) -> None:  # noqa: ANN001
    """SIGTERM right after the banner, while the parent forks its workers."""
    srv = spawn(workers=3, ready=False)
    deadline = time.monotonic() + 60
    while "listening on" not in srv.log():
        assert srv.proc.poll() is None and time.monotonic() < deadline, srv.log()
        time.sleep(0.002)
    srv.proc.send_signal(signal.SIGTERM)
    _assert_stopped_cleanly(srv)


@pytest.mark.parametrize("delay", [0.0, 0.03, 0.1, 0.3])
@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_at_any_point_of_start_up_exits_zero(spawn, workers: int, delay: float) -> None:  # noqa: ANN001
    """From the moment the process handles SIGTERM at all, a SIGTERM at any later point
    of the start-up stops it cleanly."""
    srv = spawn(workers=workers, ready=False)
    deadline = time.monotonic() + 60
    while not _sigterm_caught(srv.proc.pid):
        assert srv.proc.poll() is None and time.monotonic() < deadline, srv.log()
        time.sleep(0.001)
    time.sleep(delay)
    srv.proc.send_signal(signal.SIGTERM)
    _assert_stopped_cleanly(srv)
