"""Prometheus metrics and readiness (issue 14): a real server with 2 workers and a metrics
listener, a mixed swiftclient + boto3 workload, then /metrics scraped and parsed with
prometheus_client's own parser; the counters must match the requests sent, whichever
worker served them and whichever worker answers the scrape."""

from __future__ import annotations

import time
from collections.abc import Iterator

import boto3
import pytest
import requests
import swiftclient
from botocore.config import Config
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families

from tests.functional.conftest import LampiServer, free_port

TOKEN = "metrics-Token-1"
ACCESS, SECRET = "METRICSACCESS1", "metrics-secret-key-1"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LampiServer]:
    s = LampiServer(data_dir=tmp_path_factory.mktemp("metrics") / "data", port=free_port(), workers=2,
                    extra_args=["--metrics-port", str(free_port()), "--metrics-token", TOKEN, "--metrics-usage",
                                "--s3-access-key", ACCESS, "--s3-secret-key", SECRET],
                    env={"LAMPI_EXPIRER_INTERVAL": "1"})
    s.metrics_port = int(s.extra_args[1])  # type: ignore[attr-defined]
    s.start()
    try:
        yield s
    finally:
        s.stop()


def metrics_url(srv: LampiServer) -> str:
    return f"http://127.0.0.1:{srv.metrics_port}"  # type: ignore[attr-defined]


def scrape(srv: LampiServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics by (name, sorted labels), on a new connection each time."""
    r = requests.get(metrics_url(srv) + "/metrics", headers={"Authorization": f"Bearer {TOKEN}",
                                                            "Connection": "close"}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain")
    out = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def settle(srv: LampiServer, done, deadline: float = 60.0) -> dict:  # noqa: ANN001
    """Scrape until ``done(samples)`` (each worker writes its request counts out every
    second), then once more: the counts must not move any further."""
    end = time.monotonic() + deadline
    samples = scrape(srv)
    while not done(samples):
        assert time.monotonic() < end, "the counts never arrived"
        time.sleep(0.5)
        samples = scrape(srv)
    time.sleep(2.5)
    return scrape(srv)


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def swift(srv: LampiServer) -> swiftclient.Connection:
    rc = srv.openrc()
    return swiftclient.Connection(authurl=rc["OS_AUTH_URL"], user=rc["OS_USERNAME"], key=rc["OS_PASSWORD"],
                                  os_options={"user_domain_name": "Default", "project_domain_name": "Default",
                                              "project_name": rc["OS_PROJECT_NAME"]},
                                  auth_version="3", retries=0)


def s3(srv: LampiServer, secret: str = SECRET):  # noqa: ANN201
    return boto3.client("s3", endpoint_url=srv.url, aws_access_key_id=ACCESS, aws_secret_access_key=secret,
                        region_name="us-east-1", config=Config(retries={"max_attempts": 1}))


def test_counters_match_a_mixed_workload(srv: LampiServer) -> None:
    before = scrape(srv)
    body = b"x" * 1000
    # Swift: one connection (swiftclient keeps it)
    conn = swift(srv)
    conn.put_container("mx-swift")
    for i in range(7):
        conn.put_object("mx-swift", f"o{i}", body)
    for i in range(5):
        assert conn.get_object("mx-swift", f"o{i}")[1] == body
    with pytest.raises(swiftclient.ClientException):
        conn.head_object("mx-swift", "missing")
    # Swift over many new connections, so both workers serve some (the counts must add up)
    storage_url, token = conn.get_auth()
    for _ in range(30):
        r = requests.get(f"{storage_url}/mx-swift/o1", headers={"X-Auth-Token": token, "Connection": "close"},
                         timeout=60)
        assert r.status_code == 200
    for _ in range(3):  # a refused token: authentication failures
        r = requests.get(f"{storage_url}/mx-swift", headers={"X-Auth-Token": "gAAAAbogus", "Connection": "close"},
                         timeout=60)
        assert r.status_code == 401
    r = requests.get(f"{storage_url}/mx-swift/o1", timeout=60)  # anonymous: a 401, but no failed login
    assert r.status_code == 401
    # S3 through boto3
    client = s3(srv)
    client.create_bucket(Bucket="mx-s3")
    for i in range(6):
        client.put_object(Bucket="mx-s3", Key=f"k{i}", Body=body)
    for i in range(4):
        assert client.get_object(Bucket="mx-s3", Key=f"k{i}")["Body"].read() == body
    client.list_objects_v2(Bucket="mx-s3")
    bad = s3(srv, secret="not-the-secret")
    for _ in range(2):
        with pytest.raises(ClientError) as err:
            bad.list_objects_v2(Bucket="mx-s3")
        assert err.value.response["Error"]["Code"] == "SignatureDoesNotMatch"

    req = "lampi_requests_total"
    # workers write their counts out every second: wait until the last request is in
    last = {("s3", "unknown", "4xx"): 2, ("s3", "ListObjectsV2", "2xx"): 1, ("swift", "GET object", "2xx"): 35}
    after = settle(srv, lambda m: all(
        value(m, req, api=a, operation=o, status=st) >= value(before, req, api=a, operation=o, status=st) + n
        for (a, o, st), n in last.items()))

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta(req, api="swift", operation="PUT container", status="2xx") == 1
    assert delta(req, api="swift", operation="PUT object", status="2xx") == 7
    assert delta(req, api="swift", operation="GET object", status="2xx") == 5 + 30
    assert delta(req, api="swift", operation="HEAD object", status="4xx") == 1
    assert delta(req, api="swift", operation="GET container", status="4xx") == 3
    assert delta(req, api="swift", operation="GET object", status="4xx") == 1
    assert delta(req, api="keystone", operation="POST auth", status="2xx") >= 1
    assert delta(req, api="s3", operation="CreateBucket", status="2xx") == 1
    assert delta(req, api="s3", operation="PutObject", status="2xx") == 6
    assert delta(req, api="s3", operation="GetObject", status="2xx") == 4
    assert delta(req, api="s3", operation="ListObjectsV2", status="2xx") == 1
    assert delta(req, api="s3", operation="unknown", status="4xx") == 2  # refused before an operation was known
    assert delta("lampi_auth_failures_total", api="swift") == 3
    assert delta("lampi_auth_failures_total", api="s3") == 2
    # every request counted once in the latency histogram too
    assert delta("lampi_request_duration_seconds_count", api="s3", operation="PutObject") == 6
    assert delta("lampi_request_duration_seconds_bucket", api="s3", operation="PutObject", le="+Inf") == 6
    # bytes: at least the bodies sent and received (plus JSON, XML, ...)
    assert delta("lampi_received_bytes_total", api="swift") >= 7 * len(body)
    assert delta("lampi_received_bytes_total", api="s3") >= 6 * len(body)
    assert delta("lampi_sent_bytes_total", api="swift") >= 35 * len(body)
    assert delta("lampi_sent_bytes_total", api="s3") >= 4 * len(body)
    # any worker answers a scrape with the same totals (the metrics listener's own
    # requests are not counted)
    for _ in range(6):
        again = scrape(srv)
        assert {k: v for k, v in again.items() if k[0] == req} == {k: v for k, v in after.items() if k[0] == req}
    assert ("lampi_open_connections", ()) in after
    # per-project usage (--metrics-usage): the S3 and Swift objects of project admin
    usage = {dict(k[1])["project"]: v for k, v in after.items() if k[0] == "lampi_project_bytes"}
    objects = {dict(k[1])["project"]: v for k, v in after.items() if k[0] == "lampi_project_objects"}
    buckets = {dict(k[1])["project"]: v for k, v in after.items() if k[0] == "lampi_project_buckets"}
    project = storage_url.rsplit("AUTH_", 1)[1]
    assert usage[project] >= 13 * len(body) and objects[project] >= 13 and buckets[project] >= 2


def test_missing_blob_is_counted(srv: LampiServer) -> None:
    conn = swift(srv)
    conn.put_container("mx-lost")
    conn.put_object("mx-lost", "gone", b"y" * 70_000)  # past inline_max: a blob file
    before = value(scrape(srv), "lampi_errors_total", kind="missing_blob")
    blobs = [p for p in (srv.data_dir / "blobs").rglob("*") if p.is_file() and p.stat().st_size == 70_000]
    assert len(blobs) == 1
    blobs[0].unlink()
    with pytest.raises(swiftclient.ClientException) as err:
        conn.get_object("mx-lost", "gone")
    assert err.value.http_status == 503
    assert value(scrape(srv), "lampi_errors_total", kind="missing_blob") == before + 1


def test_bearer_token(srv: LampiServer) -> None:
    url = metrics_url(srv) + "/metrics"
    r = requests.get(url, timeout=60)
    assert r.status_code == 401 and "Bearer" in r.headers["WWW-Authenticate"]
    assert "lampi_requests_total" not in r.text
    for wrong in ("Bearer nope", f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN):
        r = requests.get(url, headers={"Authorization": wrong}, timeout=60)
        assert r.status_code == 401, wrong
    r = requests.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    assert r.status_code == 200 and "lampi_requests_total" in r.text
    # health needs no token
    assert requests.get(metrics_url(srv) + "/healthcheck", timeout=60).text == "OK"


def test_metrics_is_a_bucket_on_the_main_port(srv: LampiServer) -> None:
    r = requests.get(srv.url + "/metrics", timeout=60)  # anonymous S3: no such public bucket
    assert r.status_code in (403, 404) and "<Error>" in r.text and "lampi_requests_total" not in r.text
    client = s3(srv)
    client.create_bucket(Bucket="metrics")
    client.put_object(Bucket="metrics", Key="a", Body=b"bucket named metrics")
    assert client.get_object(Bucket="metrics", Key="a")["Body"].read() == b"bucket named metrics"


def _ready(srv: LampiServer) -> tuple[int, int]:
    a = requests.get(metrics_url(srv) + "/readyz", headers={"Connection": "close"}, timeout=60)
    b = requests.get(srv.url + "/_lampi/ready", headers={"Connection": "close"}, timeout=60)
    return a.status_code, b.status_code


def _wait(srv: LampiServer, want: tuple[int, int], deadline: float = 60.0) -> None:
    end = time.monotonic() + deadline
    got = _ready(srv)
    while got != want and time.monotonic() < end:
        time.sleep(0.5)
        got = _ready(srv)
    assert got == want


def test_readiness_follows_the_stores(srv: LampiServer) -> None:
    assert _ready(srv) == (200, 200)
    assert requests.get(srv.url + "/healthcheck", timeout=60).text == "OK"
    db, away = srv.data_dir / "meta.db", srv.data_dir / "meta.db.away"
    db.rename(away)  # the database gone from under the server (an unmounted volume, a lost file)
    try:
        for _ in range(4):  # whichever worker answers
            assert _ready(srv) == (503, 503)
        r = requests.get(srv.url + "/_lampi/ready", timeout=60)
        assert "metadata store" in r.text
        assert requests.get(srv.url + "/healthcheck", timeout=60).status_code == 200  # liveness stays
    finally:
        away.rename(db)
    _wait(srv, (200, 200))
    blobs, moved = srv.data_dir / "blobs", srv.data_dir / "blobs.away"
    blobs.rename(moved)
    try:
        for _ in range(4):
            assert _ready(srv) == (503, 503)
        assert "blob store" in requests.get(metrics_url(srv) + "/readyz", timeout=60).text
    finally:
        moved.rename(blobs)
    _wait(srv, (200, 200))


def test_readiness_path_with_s3_credentials_is_s3(srv: LampiServer) -> None:
    """As /healthcheck: a signed S3 request is S3's (an invalid bucket name, not readiness)."""
    with pytest.raises(ClientError) as err:
        s3(srv).get_object(Bucket="_lampi", Key="ready")
    assert err.value.response["Error"]["Code"] in ("NoSuchBucket", "InvalidBucketName")


def test_metrics_survive_a_worker_restart(srv: LampiServer) -> None:
    """A worker killed and restarted: counters never go backwards."""
    import signal

    import psutil

    before = scrape(srv)
    total = sum(v for k, v in before.items() if k[0] == "lampi_requests_total")
    parent = psutil.Process(srv.proc.pid)  # type: ignore[union-attr]
    victim = parent.children()[0]
    victim.send_signal(signal.SIGKILL)
    victim.wait(60)
    end = time.monotonic() + 120
    while time.monotonic() < end and len([c for c in parent.children() if c.is_running()]) < 2:
        time.sleep(0.5)
    _wait(srv, (200, 200))
    after = scrape(srv)
    assert sum(v for k, v in after.items() if k[0] == "lampi_requests_total") >= total


def test_background_passes_are_counted(srv: LampiServer) -> None:
    conn = swift(srv)
    conn.put_container("mx-expiring")
    before = scrape(srv)
    conn.put_object("mx-expiring", "soon", b"z", headers={"X-Delete-After": "1"})
    after = settle(srv, lambda m: value(m, "lampi_background_items_total", task="expirer")
                   > value(before, "lampi_background_items_total", task="expirer"), deadline=120)
    assert value(after, "lampi_background_passes_total", task="expirer", outcome="ok") >= 1
    assert value(after, "lampi_background_passes_total", task="s3-lifecycle", outcome="ok") >= 1
    assert value(after, "lampi_background_passes_total", task="expirer", outcome="failed") == 0


def test_full_disk_is_counted(tmp_path) -> None:  # noqa: ANN001
    """An upload refused for space (507) counts as kind enospc."""
    s = LampiServer(data_dir=tmp_path / "data", port=free_port(),
                    extra_args=["--metrics-port", str(free_port()), "--min-free-space", "1000T"])
    s.metrics_port = int(s.extra_args[1])  # type: ignore[attr-defined]
    s.start()
    try:
        conn = swift(s)
        conn.put_container("full")
        with pytest.raises(swiftclient.ClientException) as err:
            conn.put_object("full", "big", b"b" * 1000)
        assert err.value.http_status == 507
        r = requests.get(metrics_url(s) + "/metrics", timeout=60)  # no token set: open
        samples = {(x.name, tuple(sorted(x.labels.items()))): x.value
                   for fam in text_string_to_metric_families(r.text) for x in fam.samples}
        assert value(samples, "lampi_errors_total", kind="enospc") == 1
    finally:
        s.stop()
