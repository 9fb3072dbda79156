"""TLS (issue 14): --tls-cert/--tls-key serve every listener over HTTPS, the catalog and
the RC file say https:// (and OS_CACERT for a self-signed certificate), swiftclient,
boto3 and the openstack CLI work with the test certificate, SIGHUP makes every worker
load a new certificate, and a bad certificate or key stops the start with exit 2."""

from __future__ import annotations

import datetime
import ipaddress
import os
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import requests
import swiftclient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.functional.conftest import (
    START_TIMEOUT,
    free_port,
    lampi_cmd,
    parse_openrc,
    spawn_server,
    stop_server,
)
from tests.functional.console_helpers import ConsoleUser

ACCESS, SECRET = "TLSACCESSKEY1", "tls-secret-key-1"


def make_cert(directory: Path, cn: str) -> tuple[Path, Path]:
    """A self-signed certificate for localhost / 127.0.0.1 and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    for path, data in ((cert_path, cert.public_bytes(serialization.Encoding.PEM)),
                       (key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))):
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # a reload never sees half a file
    return cert_path, key_path


def served_cn(port: int) -> str:
    """The common name of the certificate the server presents on a new connection."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        der = tls.getpeercert(binary_form=True)
    cert = x509.load_der_x509_certificate(der)
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


class TLSServer:
    def __init__(self, tmp: Path, cert: Path, key: Path, workers: int = 2) -> None:
        self.tmp, self.cert, self.key = tmp, cert, key
        self.data_dir = tmp / "data"
        self.port, self.metrics_port, self.s3_port = free_port(), free_port(), free_port()
        self.console_port = free_port()
        self.workers = workers
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = tmp / f"server-{self.port}.log"

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    def start(self) -> None:
        with open(self.log_path, "wb") as log:
            self.proc = spawn_server(
                [*lampi_cmd(), "serve", "--host", "127.0.0.1", "--port", str(self.port), "--data-dir",
                 str(self.data_dir), "--workers", str(self.workers), "--log-format", "json",
                 "--tls-cert", str(self.cert), "--tls-key", str(self.key), "--metrics-port", str(self.metrics_port),
                 "--s3-port", str(self.s3_port), "--s3-access-key", ACCESS, "--s3-secret-key", SECRET,
                 "--console-port", str(self.console_port)],
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_path.read_text()}")
            try:
                if requests.get(self.url + "/healthcheck", verify=str(self.cert), timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                stop_server(self.proc, signal.SIGKILL)
                raise RuntimeError(f"not ready:\n{self.log_path.read_text()}")
            time.sleep(0.2)

    def openrc(self) -> dict[str, str]:
        return parse_openrc((self.data_dir / "openrc.sh").read_text())


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSServer]:
    tmp = tmp_path_factory.mktemp("tls")
    cert, key = make_cert(tmp / "certs", "lampi-test-1")
    srv = TLSServer(tmp, cert, key)
    srv.start()
    try:
        yield srv
    finally:
        assert srv.proc is not None
        stop_server(srv.proc)


def test_rc_file_and_catalog_say_https(tls_server: TLSServer) -> None:
    rc = tls_server.openrc()
    assert rc["OS_AUTH_URL"].startswith("https://")
    assert rc["OS_CACERT"] == str(tls_server.cert.absolute())  # self-signed: clients must trust it
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": rc["OS_USERNAME"], "password": rc["OS_PASSWORD"], "domain": {"name": "Default"}}}},
        "scope": {"project": {"name": rc["OS_PROJECT_NAME"], "domain": {"name": "Default"}}}}}
    r = requests.post(tls_server.url + "/v3/auth/tokens", json=body, verify=str(tls_server.cert), timeout=60)
    assert r.status_code == 201
    urls = [e["url"] for svc in r.json()["token"]["catalog"] for e in svc["endpoints"]]
    assert urls and all(u.startswith("https://") for u in urls), urls
    # plain HTTP is not served
    with pytest.raises(requests.RequestException):
        requests.get(f"http://127.0.0.1:{tls_server.port}/healthcheck", timeout=10)


def test_swiftclient_over_tls(tls_server: TLSServer) -> None:
    rc = tls_server.openrc()
    conn = swiftclient.Connection(authurl=rc["OS_AUTH_URL"], user=rc["OS_USERNAME"], key=rc["OS_PASSWORD"],
                                  os_options={"user_domain_name": "Default", "project_domain_name": "Default",
                                              "project_name": rc["OS_PROJECT_NAME"]},
                                  auth_version="3", cacert=rc["OS_CACERT"], retries=0)
    conn.put_container("tls-swift")
    conn.put_object("tls-swift", "a", b"over https")
    assert conn.get_object("tls-swift", "a")[1] == b"over https"
    assert conn.url.startswith("https://")
    # an untrusting client refuses the self-signed certificate
    plain = swiftclient.Connection(authurl=rc["OS_AUTH_URL"], user=rc["OS_USERNAME"], key=rc["OS_PASSWORD"],
                                   os_options={"user_domain_name": "Default", "project_domain_name": "Default",
                                               "project_name": rc["OS_PROJECT_NAME"]},
                                   auth_version="3", retries=0)
    with pytest.raises(Exception, match="(?i)certificate|ssl"):
        plain.get_account()


def test_boto3_over_tls(tls_server: TLSServer) -> None:
    for port in (tls_server.port, tls_server.s3_port):
        client = boto3.client("s3", endpoint_url=f"https://localhost:{port}", aws_access_key_id=ACCESS,
                              aws_secret_access_key=SECRET, region_name="us-east-1", verify=str(tls_server.cert))
        bucket = f"tls-s3-{port}"
        client.create_bucket(Bucket=bucket)
        client.put_object(Bucket=bucket, Key="k", Body=b"s3 over https")
        assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"s3 over https"


def test_openstack_cli_over_tls(tls_server: TLSServer) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(tls_server.openrc())  # OS_CACERT from the RC file
    r = subprocess.run(["openstack", "container", "create", "tls-cli"], env=env, capture_output=True, text=True,
                       timeout=180)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(["openstack", "container", "list", "-f", "value"], env=env, capture_output=True, text=True,
                       timeout=180)
    assert r.returncode == 0 and "tls-cli" in r.stdout.split(), r.stderr


def counted(get: Callable[[], requests.Response]) -> requests.Response:
    """A scrape that shows lampi_requests_total. A worker counts its requests in memory and
    writes them to the shared files every second (lampi.metrics.flush): one just answered
    by another worker than the scraping one shows within a second or so."""
    deadline = time.monotonic() + 30
    while True:
        r = get()
        if r.status_code != 200 or "lampi_requests_total" in r.text or time.monotonic() > deadline:
            return r
        time.sleep(0.2)


def test_metrics_listener_over_tls(tls_server: TLSServer) -> None:
    r = counted(lambda: requests.get(f"https://localhost:{tls_server.metrics_port}/metrics",
                                     verify=str(tls_server.cert), timeout=60))
    assert r.status_code == 200 and "lampi_requests_total" in r.text
    r = requests.get(f"https://localhost:{tls_server.metrics_port}/readyz", verify=str(tls_server.cert), timeout=60)
    assert r.status_code == 200


def test_console_over_tls(tls_server: TLSServer) -> None:
    """The console is served over HTTPS and reaches the APIs over HTTPS, trusting the
    server's own certificate: log in, list buckets, create one, and the metrics there."""
    log = tls_server.log_path.read_text()
    assert f"Console:      https://127.0.0.1:{tls_server.console_port}/" in log
    rc = tls_server.openrc()
    conn = swiftclient.Connection(authurl=rc["OS_AUTH_URL"], user=rc["OS_USERNAME"], key=rc["OS_PASSWORD"],
                                  os_options={"user_domain_name": "Default", "project_domain_name": "Default",
                                              "project_name": rc["OS_PROJECT_NAME"]},
                                  auth_version="3", cacert=rc["OS_CACERT"], retries=0)
    conn.put_container("tls-console-listed")
    conn.put_object("tls-console-listed", "o", b"12345")
    user = ConsoleUser(tls_server, scheme="https", host="localhost", verify=str(tls_server.cert))  # type: ignore[arg-type]
    r = user.login(rc["OS_USERNAME"], rc["OS_PASSWORD"])
    assert r.status_code == 200 and r.url.endswith("/buckets"), r.text[:2000]
    assert "tls-console-listed" in r.text
    cookie = next(c for c in r.history[0].raw.headers.getlist("Set-Cookie") if c.startswith("lampi_console="))
    assert "Secure" in cookie
    r = user.post("/buckets", {"bucket": "tls-console-made"})
    assert r.status_code == 200, r.text[:2000]
    assert "tls-console-made" in [c["name"] for c in conn.get_account()[1]]
    r = user.get("/bucket", params={"bucket": "tls-console-listed"})
    assert r.status_code == 200 and "name=o\"" in r.text and "1 object(s)" in r.text, r.text[:2000]
    r = counted(lambda: user.get("/metrics"))
    assert r.status_code == 200 and "lampi_requests_total" in r.text
    # plain HTTP is not served on the console's port either
    with pytest.raises(requests.RequestException):
        requests.get(f"http://127.0.0.1:{tls_server.console_port}/login", timeout=10)


def test_sighup_reloads_the_certificate(tls_server: TLSServer) -> None:
    assert tls_server.proc is not None
    ports = (tls_server.port, tls_server.s3_port, tls_server.metrics_port)
    assert {served_cn(p) for p in ports} == {"lampi-test-1"}
    make_cert(tls_server.cert.parent, "lampi-test-2")  # new files in place
    os.kill(tls_server.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 60
    while True:
        # new connections, to every listener, ten times: both workers must serve the new one
        seen = {served_cn(p) for p in ports for _ in range(10)}
        if seen == {"lampi-test-2"}:
            break
        assert time.monotonic() < deadline, seen
        time.sleep(0.5)
    # the server keeps serving, with the new certificate trusted
    r = requests.get(tls_server.url + "/healthcheck", verify=str(tls_server.cert), timeout=60)
    assert r.status_code == 200
    # a broken pair on the next SIGHUP: the certificate in use stays, the server serves on
    tls_server.key.write_text("not a key\n")
    os.kill(tls_server.proc.pid, signal.SIGHUP)
    time.sleep(2)
    assert tls_server.proc.poll() is None
    assert {served_cn(tls_server.port) for _ in range(10)} == {"lampi-test-2"}
    make_cert(tls_server.cert.parent, "lampi-test-3")  # repaired (later tests may restart nothing)


def _start_fails(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*lampi_cmd(), "serve", "--host", "127.0.0.1", "--port", str(free_port()), "--data-dir",
                           str(tmp_path / "data"), "--console-port", "0", *args], capture_output=True, text=True,
                          timeout=120,
                          stdin=subprocess.DEVNULL)


def test_bad_certificate_or_key_exits_2(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path / "certs", "lampi-bad")
    missing = tmp_path / "nope.pem"
    r = _start_fails(tmp_path, "--tls-cert", str(missing), "--tls-key", str(key))
    assert r.returncode == 2 and "tls_cert" in r.stderr and str(missing) in r.stderr \
        and "No such file" in r.stderr, r.stderr
    r = _start_fails(tmp_path, "--tls-cert", str(cert), "--tls-key", str(missing))
    assert r.returncode == 2 and "tls_key" in r.stderr and "No such file" in r.stderr, r.stderr
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n")
    r = _start_fails(tmp_path, "--tls-cert", str(cert), "--tls-key", str(garbage))
    assert r.returncode == 2 and "cannot serve HTTPS" in r.stderr and "Traceback" not in r.stderr, r.stderr
    _other_cert, other_key = make_cert(tmp_path / "other", "lampi-other")  # a key of another certificate
    r = _start_fails(tmp_path, "--tls-cert", str(cert), "--tls-key", str(other_key))
    assert r.returncode == 2 and "cannot serve HTTPS" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = _start_fails(tmp_path, "--tls-cert", str(cert))  # no key
    assert r.returncode == 2 and "tls_key" in r.stderr, r.stderr
    assert not (tmp_path / "data" / "meta.db").exists()  # nothing was started
