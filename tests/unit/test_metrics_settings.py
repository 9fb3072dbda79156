"""Metrics and TLS settings (issue 14) and the metric names the dashboard and docs use."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from lampi import metrics
from lampi.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
NAMES = {v for k, v in vars(metrics).items() if isinstance(v, str) and v.startswith("lampi_")}


def test_settings_from_env_toml_and_flags(tmp_path: Path) -> None:
    toml = tmp_path / "lampi.toml"
    toml.write_text('metrics_port = 9100\nmetrics_usage = true\ntls_cert = "c.pem"\ntls_key = "k.pem"\n')
    s = load_settings(config_file=str(toml), environ={"LAMPI_METRICS_TOKEN": "t0k"})
    assert (s.metrics_port, s.metrics_usage, s.metrics_token, s.tls_cert, s.tls_key) == (9100, True, "t0k", "c.pem",
                                                                                           "k.pem")
    assert s.base_url().startswith("https://") and s.scheme == "https"
    s = load_settings({"metrics_port": 9200}, config_file=str(toml), environ={"LAMPI_METRICS_PORT": "9300"})
    assert s.metrics_port == 9200
    assert "t0k" not in repr(load_settings(environ={"LAMPI_METRICS_TOKEN": "t0k"}))  # never in a log line
    assert load_settings(environ={}).base_url().startswith("http://")


@pytest.mark.parametrize("env", [{"LAMPI_TLS_CERT": "c.pem"}, {"LAMPI_TLS_KEY": "k.pem"}])
def test_tls_needs_both_files(env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="tls_cert.*tls_key"):
        load_settings(environ=env)


def test_cacert_is_the_self_signed_certificate_or_tls_ca(tmp_path: Path) -> None:
    from tests.functional.test_tls import make_cert

    cert, key = make_cert(tmp_path, "unit")
    s = load_settings(environ={"LAMPI_TLS_CERT": str(cert), "LAMPI_TLS_KEY": str(key)})
    assert s.cacert() == str(cert.absolute())
    s = load_settings(environ={"LAMPI_TLS_CERT": str(cert), "LAMPI_TLS_KEY": str(key), "LAMPI_TLS_CA": "ca.pem"})
    assert s.cacert() == str(Path("ca.pem").absolute())
    assert load_settings(environ={}).cacert() == ""


def test_dashboard_and_docs_use_the_metric_names() -> None:
    dash = json.loads((ROOT / "docs/grafana/lampi.json").read_text())
    used = set()
    for panel in dash["panels"]:
        for target in panel["targets"]:
            used |= {re.sub(r"_(bucket|count|sum)$", "", n) for n in re.findall(r"lampi_[a-z_]+", target["expr"])}
    assert used and used <= NAMES, used - NAMES
    assert NAMES <= used  # every metric has a panel
    ops = (ROOT / "docs/operations.md").read_text()
    assert all(f"`{n}`" in ops for n in NAMES), [n for n in NAMES if f"`{n}`" not in ops]


def test_recording_is_off_until_setup() -> None:
    assert not metrics.enabled()
    metrics.note_request("swift", "GET object", 200, 0.01, 0, 10)  # a no-op, no error
    metrics.note_connection(1)


def test_counts_and_latency_buckets_after_flush(tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    metrics.setup(str(tmp_path / "m"))
    try:
        for took in (0.0005, 0.003, 0.003, 1000.0):
            metrics.note_request("s3", "GetObject", 200, took, 5, 7)
        metrics.note_request("s3", "GetObject", 404, 0.002, 0, 3)
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for fam in text_string_to_metric_families(metrics.render().decode()) for s in fam.samples}
    finally:
        metrics.teardown()

    def hist(le: str) -> float:
        return samples[("lampi_request_duration_seconds_bucket",
                        (("api", "s3"), ("le", le), ("operation", "GetObject")))]

    assert samples[("lampi_requests_total", (("api", "s3"), ("operation", "GetObject"), ("status", "2xx")))] == 4
    assert samples[("lampi_requests_total", (("api", "s3"), ("operation", "GetObject"), ("status", "4xx")))] == 1
    assert (hist("0.001"), hist("0.0025"), hist("0.005"), hist("300.0"), hist("+Inf")) == (1, 2, 4, 4, 5)
    assert samples[("lampi_received_bytes_total", (("api", "s3"),))] == 20
    assert samples[("lampi_sent_bytes_total", (("api", "s3"),))] == 31
    assert not (tmp_path / "m").exists() and not metrics.enabled()


def test_directories_of_killed_servers_are_removed(tmp_path: Path) -> None:
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f"lampi-metrics-{dead.stdout.strip()}-abc"
    live = tmp_path / f"lampi-metrics-{os.getpid()}-abc"
    for d in (stale, live):
        d.mkdir()
        (d / "counter_1.db").write_bytes(b"")
    metrics._remove_stale(str(tmp_path))
    assert not stale.exists() and live.exists()
