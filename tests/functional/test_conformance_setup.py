"""The conformance runners' set-up against a real ``lampi serve`` (no suite downloaded or
run): the server they start is reaped, the users they make log in with the config they
write, and the S3 owner id / display name they tell Ceph's s3-tests is what lampi reports.
"""

from __future__ import annotations

import configparser
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
import requests

from tests.conformance_runners import harness, s3, swift


def lampi_exe() -> str:
    exe = shutil.which("lampi")
    if exe is None:
        pytest.skip("lampi is not on PATH")
    return exe


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def lampi(tmp_path: Path):  # noqa: ANN201
    srv = harness.Lampi(lampi_exe(), tmp_path, workers=2)
    srv.start()
    yield srv
    srv.stop()


def test_server_is_reaped_with_its_workers(tmp_path: Path) -> None:
    import psutil

    srv = harness.Lampi(lampi_exe(), tmp_path, workers=2)
    srv.start()
    assert srv.proc is not None
    parent = psutil.Process(srv.proc.pid)
    deadline = time.monotonic() + 60
    while len(parent.children()) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    pids = [parent.pid, *(c.pid for c in parent.children(recursive=True))]
    assert len(pids) >= 3
    url = srv.url
    assert requests.get(f"{url}/healthcheck", timeout=30).status_code == 200
    srv.stop()
    deadline = time.monotonic() + 60
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(p) for p in pids)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/healthcheck", timeout=5)


def test_a_port_taken_by_another_server_is_not_taken_for_lampi(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """A port another process binds between the probe and lampi's bind: that process's
    /healthcheck answer is not lampi's (the runner once went on with a lampi that had
    exited: "Address already in use"); the runner starts lampi again on another port."""
    import http.server
    import threading

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args: object) -> None:
            pass

    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    taken = other.server_address[1]
    ports = iter([taken])
    real = harness.free_port
    monkeypatch.setattr(harness, "free_port", lambda: next(ports, None) or real())
    srv = harness.Lampi(lampi_exe(), tmp_path, workers=1)
    try:
        srv.start()
        assert srv.port != taken and srv.proc is not None and srv.proc.poll() is None
        assert srv.cli("project", "create", "p")  # its data dir is the served one (the id printed)
    finally:
        srv.stop()
        other.shutdown()
        other.server_close()


def test_server_is_killed_when_it_ignores_sigterm(tmp_path: Path) -> None:
    """stop() escalates to SIGKILL for the whole session when SIGTERM is not enough."""
    srv = harness.Lampi(lampi_exe(), tmp_path, workers=1)
    srv.start()
    assert srv.proc is not None
    pid = srv.proc.pid
    os.kill(pid, signal.SIGSTOP)  # a stopped process does not act on SIGTERM
    t0 = time.monotonic()
    srv.stop(timeout=2)
    assert time.monotonic() - t0 < 60
    deadline = time.monotonic() + 30
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid)


@pytest.mark.parametrize(("auth", "suite"), [("v1", "functional"), ("v3", "functional"), ("v1", "s3api")])
def test_swift_accounts_log_in_with_the_written_test_conf(lampi: harness.Lampi, tmp_path: Path, auth: str,
                                                          suite: str) -> None:
    import swiftclient

    acc = swift.make_accounts(lampi, auth, suite)
    conf = tmp_path / "test.conf"
    swift.write_test_conf(conf, auth, lampi.url, acc)
    c = configparser.RawConfigParser()
    c.read(conf)
    f = c["func_test"]
    # as test/functional builds its users: v1 "<account>:<user>", v3 user + tenant (+ domain)
    users = [(f["account"], f["username"], f["password"]), (f["account2"], f["username2"], f["password2"]),
             (f["account"], f["username3"], f["password3"]), (f["account6"], f["username6"], f["password6"])]
    urls = []
    for account, user, password in users:
        if auth == "v1":
            url, token = swiftclient.get_auth(f["auth_uri"], f"{account}:{user}", password, auth_version="1")
        else:
            url, token = swiftclient.get_auth(f["auth_uri"], user, password, auth_version="3",
                                              os_options={"project_name": account, "user_domain_name": "Default",
                                                          "project_domain_name": "Default"})
        assert token
        urls.append(url)
        if user != "tester3":  # user 3 has no operator role (anotherrole): no access of its own
            swiftclient.head_account(url, token)
    assert urls[0] == urls[2] and urls[0] != urls[1]  # user 3 is in account 1
    # user 1 owns account 1; user 6 reaches it and account 2 too (reseller admin); user 3 nothing
    v1 = f"{lampi.url}/auth/v1.0"
    url1, tok1 = swiftclient.get_auth(v1, "test:tester", "testing", auth_version="1")
    swiftclient.put_container(url1, tok1, "conf-owned")
    _, tok6 = swiftclient.get_auth(v1, f"{f['account6']}:tester6", "testing6", auth_version="1")
    swiftclient.head_container(url1, tok6, "conf-owned")
    url2, _ = swiftclient.get_auth(v1, "test2:tester2", "testing2", auth_version="1")
    swiftclient.head_account(url2, tok6)
    _, tok3 = swiftclient.get_auth(v1, "test:tester3", "testing3", auth_version="1")
    with pytest.raises(swiftclient.ClientException) as exc:
        swiftclient.head_container(url1, tok3, "conf-owned")
    assert exc.value.http_status == 403
    # user 5 (service role) with user 1: the SERVICE_ account of account 1
    assert f["service_prefix"] == "SERVICE"
    url5, tok5 = swiftclient.get_auth(v1, f"{f['account5']}:{f['username5']}", f["password5"], auth_version="1")
    service_url = url1.replace("/AUTH_", "/SERVICE_")
    assert requests.head(service_url, headers={"X-Auth-Token": tok1, "X-Service-Token": tok5}).status_code == 204
    assert requests.head(service_url, headers={"X-Auth-Token": tok1}).status_code == 403
    if auth == "v3":  # user 4: a project in another domain
        url4, tok4 = swiftclient.get_auth(f["auth_uri"], f["username4"], f["password4"], auth_version="3",
                                          os_options={"project_name": f["account4"],
                                                      "user_domain_name": f["domain4"],
                                                      "project_domain_name": f["domain4"]})
        assert swiftclient.head_account(url4, tok4)["x-account-project-domain-id"] != "default"
    if suite != "s3api":
        assert "s3_access_key" not in f
        return
    # the S3 keys of test/functional/s3api: three users of account test, as Swift's
    # test:tester, test:tester2 (operator rights: may create buckets), test:tester3 (may not)
    import boto3
    import botocore.exceptions

    clients = {}
    for slot in ("", "2", "3"):
        clients[slot] = boto3.client("s3", endpoint_url=f["s3_storage_url"],
                                     aws_access_key_id=f[f"s3_access_key{slot}"],
                                     aws_secret_access_key=f[f"s3_secret_key{slot}"], region_name=f["s3_region"])
        if slot == "3":  # no operator role: no bucket listing either, as Swift's s3api with keystoneauth
            with pytest.raises(botocore.exceptions.ClientError):
                clients[slot].list_buckets()
            continue
        assert "conf-owned" in [b["Name"] for b in clients[slot].list_buckets()["Buckets"]]
    clients["2"].create_bucket(Bucket="conf-by-key2")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        clients["3"].create_bucket(Bucket="conf-by-key3")
    assert exc.value.response["Error"]["Code"] == "AccessDenied"


def test_s3_users_and_owner_ids_match_what_lampi_reports(lampi: harness.Lampi, tmp_path: Path) -> None:
    import boto3

    users = s3.make_users(lampi)
    conf = tmp_path / "s3tests.conf"
    s3.write_config(conf, lampi.url, users)
    c = configparser.RawConfigParser()
    c.read(conf)
    endpoint = f"http://{c.defaults()['host']}:{c.defaults()['port']}"
    projects = set()
    for section in ("main", "alt", "tenant"):
        sec = c[f"s3 {section}"]
        cli = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=sec["access_key"],
                           aws_secret_access_key=sec["secret_key"], region_name="us-east-1")
        bucket = f"conf-{section}-{os.getpid()}"
        cli.create_bucket(Bucket=bucket)
        cli.put_object(Bucket=bucket, Key="k", Body=b"k")
        # the suite compares these with its config's user_id / display_name: ACLs,
        # listings and ListBuckets name the owner the same way
        for owner in (cli.get_bucket_acl(Bucket=bucket)["Owner"], cli.get_object_acl(Bucket=bucket, Key="k")["Owner"],
                      cli.list_objects(Bucket=bucket)["Contents"][0]["Owner"], cli.list_buckets()["Owner"]):
            assert (owner["ID"], owner["DisplayName"]) == (sec["user_id"], sec["display_name"])
        projects.add(owner["ID"])
    assert len(projects) == 3  # three users in three projects
