"""``lampi bench`` smoke runs against a real ``lampi serve`` (tiny sizes, seconds).

Never timed: the assertions are about the result document (every phase present,
counts right, no errors, memory reported, nothing left behind), not about speed.
``--compare rgw`` needs Debian's ceph-mon, ceph-osd and radosgw, ``--compare swift``
memcached (and Swift from PyPI, installed once into ~/.cache/lampi-bench): without them
those runs are skipped, unless ``LAMPI_REQUIRE_BENCH=1`` (.ci/run installs them).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from .conftest import LampiServer, lampi_cmd

SMALL, LIST_N, LARGE = 50, 200, 2 * 1024 * 1024


def bench(server: LampiServer, tmp_path: Path, *args: str, env: dict[str, str] | None = None,
          check: bool = True) -> tuple[subprocess.CompletedProcess[str], dict | None]:
    out = tmp_path / "bench.json"
    if env is None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ST_"))}
        env.update(server.openrc())
    proc = subprocess.run([*lampi_cmd(), "bench", "--json", str(out), "--no-progress", *args],
                          capture_output=True, text=True, env=env, timeout=180)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc, json.loads(out.read_text()) if out.exists() else None


def test_bench_smoke_all_phases(server: LampiServer, tmp_path: Path, swift_conn) -> None:  # noqa: ANN001
    assert server.proc is not None
    proc, doc = bench(server, tmp_path, "--objects", str(SMALL), "--concurrency", "4,16",
                      "--list-objects", str(LIST_N), "--list-page", "64", "--list-repeats", "2",
                      "--large-size", "2MiB", "--server-pid", str(server.proc.pid),
                      "--markdown", str(tmp_path / "bench.md"))
    assert doc is not None
    phases = {(p["phase"], p["concurrency"]): p for p in doc["phases"]}
    expected = {(f"small-{k}", c) for k in ("put", "get", "head", "delete") for c in (4, 16)}
    expected |= {("list", 1), ("large-put", 1), ("large-get", 1)}
    assert set(phases) == expected
    for key, p in phases.items():
        assert p["errors"] == 0, (key, p.get("error_samples"))
        assert p["ops"] == p["count"], key
        assert p["seconds"] > 0 and p["ops_per_s"] > 0, key
        assert 0 < p["p50_ms"] <= p["p99_ms"], key
        # the server's PID was given: its memory (parent + children) is sampled
        assert 0 < p["rss_start_mib"] <= p["rss_peak_mib"] < 4096, key
        # and its CPU time per operation (0 possible: the clock ticks are 10 ms)
        assert 0 <= p["server_cpu_ms_per_op"] < 10_000, key
    # writing objects takes the server some CPU: a PUT phase is never free
    assert phases[("small-put", 16)]["server_cpu_ms_per_op"] > 0
    assert "server CPU ms/op" in (tmp_path / "bench.md").read_text()
    for c in (4, 16):
        assert phases[("small-put", c)]["count"] == SMALL
        # bytes moved are counted exactly: SMALL objects of 4 KiB each way
        assert phases[("small-get", c)]["mb_per_s"] > 0
    assert phases[("list", 1)]["count"] == 2
    assert phases[("list", 1)]["objects_per_s"] > 0
    for ph in ("large-put", "large-get"):
        assert phases[(ph, 1)]["size"] == LARGE and phases[(ph, 1)]["mb_per_s"] > 0
    assert doc["target"]["auth"] == "v3"
    assert doc["setup_errors"] == []
    assert doc["machine"]["cores"] >= 1 and doc["machine"]["memory_gib"] > 0
    assert doc["servers"]["target"]["rss_hwm_sum_mib"] > 0
    # the table is printed too
    assert "Phases" in proc.stdout and "full listing of 200" in proc.stdout
    md = (tmp_path / "bench.md").read_text()
    assert "| PUT 50×4KiB c16 | target | 50 | 0 |" in md
    # everything the run created is gone again
    names = [c["name"] for c in swift_conn.get_account(full_listing=True)[1]]
    assert not [n for n in names if n.startswith(f"lampi-bench-{doc['run_id']}")]


def test_bench_tables_fit_a_narrow_terminal(server: LampiServer, tmp_path: Path) -> None:
    """COLUMNS=60: every line of the report fits, and no figure is cut to "…" — a table
    too wide is split into column groups that repeat the phase. No issue numbers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ST_"))}
    env.update(server.openrc(), COLUMNS="60")
    assert server.proc is not None
    proc, doc = bench(server, tmp_path, "--objects", "8", "--concurrency", "2", "--list-objects", "10",
                      "--list-repeats", "1", "--large-size", "1MiB", "--server-pid", str(server.proc.pid),
                      "--markdown", str(tmp_path / "bench.md"), env=env)
    assert doc is not None
    lines = proc.stdout.splitlines()
    assert max(len(line) for line in lines) <= 60, proc.stdout
    assert "…" not in proc.stdout
    assert "Phases (1/" in proc.stdout  # did not fit in one: split
    from lampi.bench.report import _f

    for p in doc["phases"]:
        assert p["label"] in proc.stdout
        for figure in (_f(p["ops_per_s"]), _f(p["p50_ms"], 2), _f(p["p99_ms"], 2)):
            assert any(figure in line and p["label"] in line for line in lines), (p["label"], figure)
    assert doc["targets"] and "Targets" in proc.stdout
    for text in (proc.stdout, (tmp_path / "bench.md").read_text()):
        assert "issue" not in text.lower()

    # the comparison tables too (a --compare run's document, rendered at 40 columns)
    from rich.console import Console

    from lampi.bench import report

    doc["ratios"] = [{"phase": "small-put", "concurrency": 64, "unit": "ops_per_s", "lampi": 1234.5, "swift": 456.7,
                      "ratio": 2.7, "p50_ratio": 3.1}]
    doc["s3_ratios"] = [{"phase": "small-get", "concurrency": 64, "unit": "ops_per_s", "lampi-s3": 999.9,
                         "lampi": 1111.1, "ratio": 0.9, "p50_ratio": 0.95}]
    doc["targets"] = report.check_targets(doc)
    con = Console(width=40, record=True, file=open(os.devnull, "w"))
    report.render(doc, con)
    text = con.export_text()
    assert max(len(line) for line in text.splitlines()) <= 40, text
    assert "…" not in text
    for figure in ("1,234.5", "456.7", "2.70", "3.10", "999.9", "1,111.1"):
        assert figure in text, figure
    assert "issue" not in text.lower()


def test_bench_v1_auth_and_token(server: LampiServer, tmp_path: Path, token_and_url) -> None:  # noqa: ANN001
    rc = server.openrc()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ST_"))}
    _, doc = bench(server, tmp_path, "-A", f"{server.url}/auth/v1.0",
                   "-U", f"{rc['OS_PROJECT_NAME']}:{rc['OS_USERNAME']}", "-K", rc["OS_PASSWORD"],
                   "--phases", "small", "--objects", "20", "--concurrency", "8", "--client-procs", "2", env=base)
    assert doc is not None and doc["target"]["auth"] == "v1"
    assert [p["phase"] for p in doc["phases"]] == ["small-put", "small-get", "small-head", "small-delete"]
    assert all(p["errors"] == 0 and p["ops"] == 20 for p in doc["phases"])

    token, url = token_and_url
    _, doc = bench(server, tmp_path, "--storage-url", url, "--token", token, "--phases", "list",
                   "--list-objects", "30", "--list-page", "7", env=base)
    assert doc is not None and doc["target"]["auth"] == "token"
    (p,) = doc["phases"]
    assert p["phase"] == "list" and p["errors"] == 0 and p["ops"] == 5


def test_bench_s3_endpoint(server: LampiServer, tmp_path: Path, ec2_keys: dict[str, str], s3) -> None:  # noqa: ANN001
    """--s3-endpoint with SigV4 keys from AWS_*: every phase, ListObjectsV2 pages followed by
    continuation tokens (7 keys a page), and the run's buckets are gone afterwards."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ST_", "AWS_"))}
    env = dict(base, AWS_ACCESS_KEY_ID=ec2_keys["access"], AWS_SECRET_ACCESS_KEY=ec2_keys["secret"])
    _, doc = bench(server, tmp_path, "--s3-endpoint", server.url, "--objects", "20", "--concurrency", "8",
                   "--client-procs", "2", "--list-objects", "30", "--list-page", "7", "--list-repeats", "2",
                   "--large-size", "2MiB", env=env)
    assert doc is not None and doc["target"]["auth"] == "s3"
    phases = {p["phase"]: p for p in doc["phases"]}
    assert set(phases) == {"small-put", "small-get", "small-head", "small-delete", "list", "large-put",
                           "large-get"}
    for name, p in phases.items():
        assert p["errors"] == 0 and p["ops"] == p["count"], (name, p.get("error_samples"))
    assert phases["large-get"]["mb_per_s"] > 0 and doc["setup_errors"] == []
    assert not [b["Name"] for b in s3.list_buckets()["Buckets"] if doc["run_id"] in b["Name"]]

    # a wrong secret: the server's 403 is reported, exit status 1
    proc, _ = bench(server, tmp_path, "--s3-endpoint", server.url, "--s3-access-key", ec2_keys["access"],
                    "--s3-secret-key", "wrong", "--phases", "small", "--objects", "3", env=base, check=False)
    assert proc.returncode == 1 and "403" in proc.stderr and "Traceback" not in proc.stderr


def test_bench_s3_signer_matches_botocore() -> None:
    """lampi bench's own SigV4 signer signs exactly as botocore does (query, path escapes, payload)."""
    import datetime
    import hashlib

    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials as BotoCredentials

    from lampi.bench.s3sign import EMPTY_SHA256, Signer

    # one signer for every request, as a bench phase uses it: what it keeps between
    # requests (signing key, date text, a URL's canonical path) must not leak into the next
    signer = Signer("AKID", "SECRET", "us-east-1")
    cases = [(url, method, query, body)
             for url in ("http://127.0.0.1:8080/bkt/a%20b~c.txt", "http://127.0.0.1:8080/bkt/plain-key_1.txt")
             for method, query, body in (("GET", {"list-type": "2", "continuation-token": "a+b/c="}, b""),
                                         ("PUT", {}, b"hello"), ("HEAD", {}, b""))]
    for url, method, query, body in cases * 2:
        req = AWSRequest(method=method, url=url, params=query, data=body, headers={"Host": "127.0.0.1:8080"})
        S3SigV4Auth(BotoCredentials("AKID", "SECRET"), "s3", "us-east-1").add_auth(req)
        payload = req.headers["X-Amz-Content-SHA256"]  # botocore hashes the body over http
        assert payload == (hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256)
        amz_date = req.headers["X-Amz-Date"]  # botocore's clock; sign at that same second
        ts = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
        ours = signer.headers(method, url, query, payload, ts.timestamp())
        assert ours["X-Amz-Date"] == amz_date
        assert ours["Authorization"] == req.headers["Authorization"], (method, url, query)
    # a day later and back: the kept signing key and date text follow the clock
    url, t = "http://127.0.0.1:8080/bkt/plain-key_1.txt", 1_700_000_000.5
    for now in (t, t + 86_400, t + 86_401, t):
        assert signer.headers("GET", url, None, EMPTY_SHA256, now) == \
            Signer("AKID", "SECRET", "us-east-1").headers("GET", url, None, EMPTY_SHA256, now)


def test_bench_reports_failures(server: LampiServer, tmp_path: Path, unique: str) -> None:
    """A read-only user cannot create the containers: a clear message and exit status 1."""
    server.cli("user", "create", unique, "--password", "pw-" + unique, "--project", "admin", "--role", "reader")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ST_"))}
    proc, _ = bench(server, tmp_path, "-A", f"{server.url}/auth/v1.0", "-U", f"admin:{unique}", "-K",
                    "pw-" + unique, "--phases", "small", "--objects", "5", env=base, check=False)
    assert proc.returncode == 1
    assert "PUT container" in proc.stderr and "403" in proc.stderr
    assert "Traceback" not in proc.stderr

    proc, _ = bench(server, tmp_path, "-A", f"{server.url}/auth/v1.0", "-U", f"admin:{unique}", "-K", "wrong",
                    "--phases", "small", env=base, check=False)
    assert proc.returncode == 1 and "v1 auth" in proc.stderr and "401" in proc.stderr


def test_bench_lampi_node_leaves_nothing_running(tmp_path: Path) -> None:
    """The server start/stop used by --compare: workers included, nothing survives stop()."""
    from lampi.bench import rss
    from lampi.bench.servers import LampiNode, leftovers

    node = LampiNode(tmp_path, workers=2)
    try:
        node.start()
        assert node.startup_s is not None and node.idle_rss
        # PSS divides the pages the forked workers share with the parent: less than the RSS sum
        assert node.idle_pss and 0 < node.idle_pss < node.idle_rss
        assert len(rss.tree(node.pids)) >= 3  # parent + 2 workers
        creds = node.credentials()
        assert creds.method == "v3" and "/v1/AUTH_" in creds.storage_url
        s3creds = node.s3_credentials()  # an EC2 key pair made through Keystone's OS-EC2 API
        assert s3creds.api == "s3" and s3creds.access and s3creds.secret
        assert leftovers(node.sessions())
    finally:
        node.stop()
    assert leftovers(node.sessions()) == []


@pytest.mark.parametrize("text,value", [("4096", 4096), ("4K", 4096), ("4KiB", 4096), ("4KB", 4000),
                                        ("2MiB", 2 << 20), ("1G", 1 << 30), ("1.5M", 1572864)])
def test_bench_sizes(text: str, value: int) -> None:
    from lampi.bench.util import parse_size

    assert parse_size(text) == value


def test_runner_two_targets_pools_large_objects_over_both_orders(server: LampiServer, token_and_url,
                                                                  ec2_keys: dict[str, str]) -> None:  # noqa: ANN001
    """Several targets (as --compare runs them: here lampi's Swift and S3 APIs): every
    phase once per target, large objects once per position (order rotated) and pooled
    (2 targets: 2 passes, 2 ops each)."""
    import asyncio

    from lampi.bench.auth import Credentials
    from lampi.bench.runner import BenchConfig, Target, run

    token, url = token_and_url
    targets = [Target("swift-api", Credentials(url, token, "token")),
               Target("s3-api", Credentials(server.url, "", "s3", ec2_keys["access"], ec2_keys["secret"]))]
    cfg = BenchConfig(objects=6, concurrency=[2], list_objects=5, list_repeats=2, large_size=3 * 1024 * 1024,
                      large_count=1)
    doc = asyncio.run(run(cfg, targets))
    assert doc["setup_errors"] == []
    got = {(p["phase"], p["target"]): p for p in doc["phases"]}
    for t in ("swift-api", "s3-api"):
        for ph in ("small-put", "small-get", "small-head", "small-delete", "list"):
            assert got[(ph, t)]["errors"] == 0 and got[(ph, t)]["ops"] == got[(ph, t)]["count"], (ph, t)
        for ph in ("large-put", "large-get"):
            p = got[(ph, t)]
            assert p["errors"] == 0 and p["ops"] == 2 and p["mb_per_s"] > 0, (ph, t, p)
            # the MB/s is the bytes of both passes over the time of both (not the pause between)
            # (``seconds`` is rounded to the millisecond: allow for that)
            moved = p["mb_per_s"] * p["seconds"]  # MB
            assert abs(moved - 2 * 3 * 1024 * 1024 / 1e6) <= p["mb_per_s"] * 0.0006 + 0.01, p


def test_runner_small_phases_in_rounds_rotate_the_order_and_pool(server: LampiServer, token_and_url,
                                                                  ec2_keys: dict[str, str], monkeypatch) -> None:  # noqa: ANN001
    """``rounds`` (--rounds): the small-object phases run that many times, each round on
    new objects, the targets' order rotated (each goes first in turn), and each phase's
    rounds reported as one result whose ops and time add up."""
    import asyncio

    from lampi.bench import runner
    from lampi.bench.auth import Credentials
    from lampi.bench.runner import BenchConfig, Target, run

    token, url = token_and_url
    targets = [Target("swift-api", Credentials(url, token, "token")),
               Target("s3-api", Credentials(server.url, "", "s3", ec2_keys["access"], ec2_keys["secret"]))]
    passes: list[tuple[str, str]] = []  # (kind, container) in the order the passes ran
    real = runner.run_phase

    async def recording(spec, procs, on_progress):  # noqa: ANN001, ANN202
        passes.append((spec.kind, spec.container))
        res = await real(spec, procs, on_progress)
        passes.append(("done", str(res.t1 - res.t0)))
        return res

    monkeypatch.setattr(runner, "run_phase", recording)
    cfg = BenchConfig(objects=5, concurrency=[2], phases=["small"], rounds=3)
    doc = asyncio.run(run(cfg, targets))
    assert doc["setup_errors"] == []
    assert len(doc["phases"]) == 8  # 4 phases × 2 targets, each with its 3 rounds pooled
    for p in doc["phases"]:
        assert p["errors"] == 0 and p["ops"] == p["count"] == 15 and "×3 rounds" in p["label"], p
    timed = [(k, c) for k, c in passes if k != "done"]
    assert len(timed) == 3 * 4 * 2
    puts = [c for k, c in timed if k == "put"]
    containers = {c.removesuffix("-s3") for c in puts}
    assert len(containers) == 3  # new objects each round
    for r in range(3):
        first = next(c for c in puts if c.removesuffix("-s3").endswith(f"-r{r}"))
        assert first.endswith("-s3") == (r % 2 == 1), (r, puts)  # round r: targets rotated by r
    # each pooled result's time is its passes' time added up
    seconds = {}
    for (kind, cont), (_, secs) in zip(passes[::2], passes[1::2]):
        seconds.setdefault((kind, cont.endswith("-s3")), []).append(float(secs))
    for p in doc["phases"]:
        kind = p["phase"].removeprefix("small-")
        assert abs(p["seconds"] - sum(seconds[(kind, p["target"] == "s3-api")])) < 0.002, p


# -- --compare rgw / swift and the end-to-end scenarios (tiny sizes) ----------------------

TINY_PHASES = ["--objects", "20", "--concurrency", "4", "--list-objects", "30", "--list-repeats", "2",
               "--large-size", "3MiB"]
TINY_SCENARIOS = ["--rclone-files", "25", "--rclone-file-size", "3KiB", "--segment-file-size", "3MiB",
                  "--segment-size", "1MiB", "--sync-files", "6", "--sync-file-size", "100KiB",
                  "--multipart-file-size", "11MiB", "--multipart-chunk-size", "5MiB"]


def need_for_bench(*binaries: str) -> None:
    missing = [b for b in binaries if not shutil.which(b)]
    if missing:
        why = f"lampi bench --compare needs {', '.join(missing)} (apt-get install --no-install-recommends ...)"
        if os.environ.get("LAMPI_REQUIRE_BENCH", "").strip().lower() in ("1", "true", "yes", "on"):
            pytest.fail(f"LAMPI_REQUIRE_BENCH is set but {why}")
        pytest.skip(why)


BENCH_TIMEOUT = 1200  # seconds; the tests that start servers carry a pytest timeout above it


def run_local_bench(tmp_path: Path, *args: str) -> dict:
    """``lampi bench`` starting its own servers under ``tmp_path/work``; its document."""
    out, work = tmp_path / "bench.json", tmp_path / "work"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ST_", "AWS_", "LAMPI_"))}
    proc = subprocess.Popen([*lampi_cmd(), "bench", "--json", str(out), "--no-progress", "--work-dir", str(work),
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        stdout, stderr = proc.communicate(timeout=BENCH_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.terminate()  # SIGTERM: the bench stops the servers it started, then exits
        try:
            stdout, stderr = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        pytest.fail(f"lampi bench did not finish in {BENCH_TIMEOUT} s: {stdout[-2000:]} {stderr[-2000:]}")
    assert proc.returncode == 0, stdout[-3000:] + stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["leftover_processes"] == [] and doc["setup_errors"] == []
    assert list(work.iterdir()) == []  # the servers' data and logs removed
    return doc


def check_scenarios(doc: dict, targets: list[str]) -> None:
    rows = {(r["scenario"], r["step"], r["target"]): r for r in doc["scenarios"]}
    expect = {"rclone": (25, 25 * 3072), "swift-segments": (1, 3 << 20), "aws-sync": (6, 6 * 102400),
              "s3cmd-multipart": (1, 11 << 20)}
    for name, (files, size) in expect.items():
        for step in ("up", "down"):
            for t in targets:
                r = rows[(name, step, t)]
                assert (r["files"], r["bytes"]) == (files, size) and r["seconds"] > 0, r
    assert len(rows) == len(expect) * 2 * len(targets)
    others = [t for t in targets if t != "lampi"]
    assert {(r["scenario"], r["step"], r["other"]) for r in doc["scenario_ratios"]} == {
        (n, s, o) for n in expect for s in ("up", "down") for o in others}


@pytest.mark.timeout(BENCH_TIMEOUT + 300)
def test_bench_compare_rgw_and_scenarios(tmp_path: Path) -> None:
    """--compare rgw --s3 --scenario all: a one-node Ceph + radosgw started beside lampi,
    every phase on lampi and RGW through both APIs, each scenario's clients on both, the
    ratios and targets reported, nothing left behind."""
    need_for_bench("ceph-mon", "ceph-osd", "ceph", "radosgw", "radosgw-admin", "rclone", "s3cmd", "aws", "swift")
    doc = run_local_bench(tmp_path, "--compare", "rgw", "--s3", "--phases", "small,list,large", *TINY_PHASES,
                          "--scenario", "all", *TINY_SCENARIOS)
    got = {(p["phase"], p["target"]): p for p in doc["phases"]}
    for t in ("lampi", "lampi-s3", "rgw", "rgw-s3"):
        for ph in ("small-put", "small-get", "small-head", "small-delete", "list", "large-put", "large-get"):
            p = got[(ph, t)]
            assert p["errors"] == 0 and p["ops"] > 0 and p["server_cpu_ms_per_op"] >= 0, (ph, t, p)
    assert {r["phase"] for r in doc["rgw_ratios"]} == {"small-put", "small-get", "small-head", "small-delete",
                                                       "list", "large-put", "large-get"}
    assert len(doc["rgw_s3_ratios"]) == len(doc["rgw_ratios"]) and doc["s3_ratios"] and "ratios" not in doc
    rgw = doc["servers"]["rgw"]
    assert rgw["version"].startswith("16.") and rgw["idle_rss_mib"] > 0 and rgw["startup_s"] > 0
    assert 0 < rgw["idle_pss_mib"] <= rgw["idle_rss_mib"]
    names = [c["target"] for c in doc["targets"]]
    assert "lampi small-get c4 >= 2x Ceph RGW" in names and "lampi S3 large-put >= 1x Ceph RGW S3" in names
    check_scenarios(doc, ["lampi", "rgw"])


@pytest.mark.timeout(BENCH_TIMEOUT + 300)
def test_bench_s3_alone_beside_its_own_swift(tmp_path: Path) -> None:
    """--s3 alone: lampi started here, its S3 API and its Swift API alternating round by
    round on the same server, the S3/Swift ratios and issue 15's S3 targets reported."""
    doc = run_local_bench(tmp_path, "--s3", "--phases", "small,list", "--rounds", "2", *TINY_PHASES)
    assert set(doc["servers"]) == {"lampi"} and doc["servers"]["lampi"]["idle_pss_mib"] > 0
    got = {(p["phase"], p["target"]): p for p in doc["phases"]}
    assert {t for _, t in got} == {"lampi", "lampi-s3"}
    for t in ("lampi", "lampi-s3"):
        for ph in ("small-put", "small-get", "small-head", "small-delete", "list"):
            p = got[(ph, t)]
            # 20 objects in each of 2 rounds; the listing twice (--list-repeats)
            assert p["errors"] == 0 and p["ops"] == (2 if ph == "list" else 40), (ph, t, p)
            assert p["server_cpu_ms_per_op"] >= 0, (ph, t, p)
    assert {r["phase"] for r in doc["s3_ratios"]} == {"small-put", "small-get", "small-head", "small-delete", "list"}
    assert "ratios" not in doc and "rgw_ratios" not in doc
    names = [c["target"] for c in doc["targets"]]
    assert "lampi S3 small-head c4 within 10% of its Swift figure" in names, names


@pytest.mark.timeout(BENCH_TIMEOUT + 300)
def test_bench_compare_swift_and_rgw(tmp_path: Path) -> None:
    """--compare swift,rgw: the three servers in one run (Swift's S3 through its s3api
    with tempauth's user for the S3 scenarios)."""
    need_for_bench("memcached", "ceph-mon", "ceph-osd", "ceph", "radosgw", "radosgw-admin", "rclone", "s3cmd",
                   "aws", "swift")
    doc = run_local_bench(tmp_path, "--compare", "swift,rgw", "--phases", "small,list", *TINY_PHASES,
                          "--scenario", "all", *TINY_SCENARIOS)
    assert {p["target"] for p in doc["phases"]} == {"lampi", "swift", "rgw"}
    assert all(p["errors"] == 0 for p in doc["phases"])
    assert doc["ratios"] and doc["rgw_ratios"] and set(doc["servers"]) == {"lampi", "swift", "rgw"}
    check_scenarios(doc, ["lampi", "swift", "rgw"])


def test_bench_scenario_and_compare_options_checked(tmp_path: Path) -> None:
    """Unknown --compare systems and --scenario names are refused before anything starts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ST_"))}
    for args, words in ((["--compare", "minio"], "--compare"), (["--scenario", "rclone,ftp"], "--scenario"),
                        (["--scenario", "rclone", "--rclone-files", "0"], "positive"),
                        (["--compare", "rgw", "--rounds", "0"], "positive"),
                        (["--s3", "-A", "http://127.0.0.1:9/auth/v1.0"], "-A"),
                        (["--compare", "swift", "--s3-endpoint", "http://127.0.0.1:9"], "--s3-endpoint"),
                        (["--s3", "--server-pid", "1"], "--server-pid")):
        proc = subprocess.run([*lampi_cmd(), "bench", "--no-progress", "--work-dir", str(tmp_path), *args],
                              capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode != 0 and words in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_bench_refuses_a_run_the_disk_cannot_hold(tmp_path: Path) -> None:
    """A run that would write more than the work dir's filesystem has free is refused
    before any server starts, with what it needs and what is free (a full disk half-way
    through stalled a run: 507s and clients retrying)."""
    import shutil

    from lampi.bench.command import disk_needed
    from lampi.bench.runner import BenchConfig
    from lampi.bench.scenarios import ScenarioSizes

    gib = 1024**3
    # the run that filled this machine's 76 GiB: RGW keeps every pass of its two targets
    cfg = BenchConfig(large_size=5 * gib, phases=["small", "list", "large"])
    need = disk_needed(cfg, ["swift", "rgw"], [], True, ["rclone", "swift-segments", "aws-sync", "s3cmd-multipart"],
                       ScenarioSizes(), 5 * gib)
    assert 100 * gib < need < 130 * gib
    assert disk_needed(BenchConfig(phases=["small"]), [], [], False, [], ScenarioSizes(), None) < gib
    free = shutil.disk_usage(tmp_path).free
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ST_", "AWS_"))}
    size = f"{free // (1024 * 1024) + 1}MiB"  # one large object already more than is free
    proc = subprocess.run([*lampi_cmd(), "bench", "--no-progress", "--work-dir", str(tmp_path), "--phases", "large",
                           "--large-size", size, "--compare", "swift"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode != 0 and "GiB free" in proc.stderr and "--large-size" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and "starting" not in proc.stderr
    assert list(tmp_path.iterdir()) == []  # the run's work dir is gone too


def test_bench_targets_of_issue_15() -> None:
    """The targets table from a run's figures: lampi/RGW (2x small and listing, 1x large),
    large PUT 1.5x Swift, S3 small within 10% and listing within 15% of lampi's Swift,
    the large PUT's fraction of the lower of the disk's and MD5's rates, the scenarios."""
    from lampi.bench import report

    def ph(phase: str, target: str, v: float) -> dict:
        return {"phase": phase, "target": target, "concurrency": 16 if phase.startswith("small") else 1,
                "ops_per_s": v, "mb_per_s": v, "p50_ms": 1.0}

    phases = [ph("small-get", "lampi", 200), ph("small-get", "rgw", 100), ph("small-get", "lampi-s3", 175),
              ph("list", "lampi", 10), ph("list", "lampi-s3", 8.6), ph("list", "rgw", 5.1),
              ph("large-put", "lampi", 300), ph("large-put", "swift", 201), ph("large-put", "rgw", 310)]
    doc = {"phases": phases, "config": {"large_size": 1 << 30},
           "ratios": report.ratios(phases), "rgw_ratios": report.ratios(phases, "lampi", "rgw"),
           "s3_ratios": report.ratios(phases, "lampi-s3", "lampi"),
           "fractions": report.fractions(phases, {"seq_write_fsync": {"mb_per_s": 900},
                                                  "md5_one_core": {"mb_per_s": 400},
                                                  "loopback_tcp": {"mb_per_s": 2000}}),
           "scenario_ratios": [{"label": "rclone copy 10 × 4 KiB", "step": "up", "other": "rgw",
                                "lampi_s": 2.0, "other_s": 3.0, "speedup": 1.5}]}
    met = {c["target"]: c["met"] for c in report.check_targets(doc)}
    assert met["lampi small-get c16 >= 2x Ceph RGW"] is True  # 2.00
    assert met["lampi list >= 2x Ceph RGW"] is False  # 1.96
    assert met["lampi large-put >= 1x Ceph RGW"] is False  # 0.97
    assert met["large-put >= 1.5x Swift"] is False  # 1.49
    assert met["lampi S3 small-get c16 within 10% of its Swift figure"] is False  # 0.875 (>= 0.85: the old 15% met it)
    assert met["lampi S3 list within 15% of its Swift figure"] is True  # 0.86
    assert met["large-put >= 70% of MD5 one core"] is True  # 300 of min(900, 400)
    assert met["rclone copy 10 × 4 KiB (up): lampi ahead of rgw"] is True


@pytest.mark.timeout(BENCH_TIMEOUT + 300)
def test_bench_cluster_one_and_two_gateways(tmp_path: Path) -> None:
    """--cluster 1,2: lampi as one and as two gateways over a throw-away PostgreSQL and a
    one-node Ceph (no RGW here: --compare rgw shares its Ceph, covered above), every phase
    on each; with two gateways each one served requests (their access logs), the
    ratios to the single node reported, PostgreSQL and Ceph stopped and removed."""
    need_for_bench("ceph-mon", "ceph-osd", "ceph")
    from lampi.testing import postgres

    if postgres.bindir() is None:
        need_for_bench("initdb")
    pg_dirs = set(Path(tempfile.gettempdir()).glob("lampi-pg-*"))
    doc = run_local_bench(tmp_path, "--cluster", "1,2", "--phases", "small,list,large", *TINY_PHASES)
    got = {(p["phase"], p["target"]): p for p in doc["phases"]}
    for t in ("lampi", "cluster1", "cluster2"):
        for ph in ("small-put", "small-get", "small-head", "small-delete", "list", "large-put", "large-get"):
            p = got[(ph, t)]
            assert p["errors"] == 0 and p["ops"] > 0 and p["server_cpu_ms_per_op"] >= 0, (ph, t, p)
    c1, c2 = doc["servers"]["cluster1"], doc["servers"]["cluster2"]
    assert (c1["gateways"], c2["gateways"]) == (1, 2)
    assert len(c1["requests_per_gateway"]) == 1 and c1["requests_per_gateway"][0] >= 4 * 20
    # 20 objects each put, got, headed and deleted, spread over both gateways
    assert len(c2["requests_per_gateway"]) == 2 and min(c2["requests_per_gateway"]) >= 2 * 20
    assert {r["phase"] for r in doc["cluster2_ratios"]} >= {"small-put", "list", "large-get"}
    assert "rgw_ratios" not in doc and "cluster1_rgw_ratios" not in doc
    assert set(Path(tempfile.gettempdir()).glob("lampi-pg-*")) <= pg_dirs  # PostgreSQL's directory removed


def test_bench_cluster_option_checked(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ST_"))}
    for bad in ("3", "one", "1,4"):
        proc = subprocess.run([*lampi_cmd(), "bench", "--no-progress", "--work-dir", str(tmp_path), "--cluster", bad],
                              capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode != 0 and "--cluster" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_bench_phases_spread_over_gateways() -> None:
    """A small-object phase on two gateways: half the objects and connections each; reads
    go through the other gateway than the one that wrote the object."""
    from lampi.bench.load import PhaseSpec, by_gateway

    a, b = "http://127.0.0.1:1/v1/AUTH_p", "http://127.0.0.1:2/v1/AUTH_p"
    put = by_gateway(PhaseSpec("put", a, "t", "c", 0, 10, 4096, 4, mirrors=(b,)))
    assert [(p.storage_url, p.start, p.stop, p.concurrency, p.mirrors) for p in put] == \
        [(a, 0, 5, 2, ()), (b, 5, 10, 2, ())]
    get = by_gateway(PhaseSpec("get", a, "t", "c", 0, 10, 4096, 4, mirrors=(b,)))
    assert [(p.storage_url, p.start, p.stop) for p in get] == [(b, 0, 5), (a, 5, 10)]
    lst = by_gateway(PhaseSpec("list", a, "t", "c", 0, 0, 0, 1, list_repeats=3, mirrors=(b,)))
    assert [(p.storage_url, p.mirrors) for p in lst] == [(a, ())]


# -- benchmarks/instructions.py: instructions per request under callgrind ---------------------

INSTRUCTIONS = Path(__file__).resolve().parents[2] / "benchmarks" / "instructions.py"


def _instructions(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen([sys.executable, str(INSTRUCTIONS), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()  # the script stops its server on SIGTERM
        out, err = proc.communicate(timeout=180)
        pytest.fail(f"benchmarks/instructions.py took over {timeout} s: {out}{err}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.timeout(BENCH_TIMEOUT + 300)
def test_instructions_script_counts_swift_and_s3_requests(tmp_path: Path) -> None:
    """The script starts lampi under callgrind, counts a few HEADs and DELETEs through
    each API and reports instructions per request: plausible figures (a request runs
    about a million instructions), each one's own (two operations, two APIs)."""
    need_for_bench("valgrind", "callgrind_control")
    out, dumps = tmp_path / "instr.json", tmp_path / "dumps"
    proc = _instructions("--requests", "16", "--ops", "HEAD,DELETE", "--json", str(out), "--keep-dumps", str(dumps),
                         timeout=BENCH_TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    figures = json.loads(out.read_text())["instructions_per_request"]
    assert set(figures) == {"HEAD", "DELETE"} and all(set(v) == {"swift", "s3"} for v in figures.values())
    for op, by_api in figures.items():
        for api, n in by_api.items():
            assert 50_000 < n < 50_000_000, (op, api, n)
            # the figure's own dump, kept: its total is the figure's, over the 16 requests
            dump = (dumps / f"{op.lower()}-{api}.callgrind").read_text(errors="replace")
            total = next(int(line.split()[1]) for line in dump.splitlines() if line.startswith(("summary:", "totals:")))
            assert total / 16 == pytest.approx(n), (op, api)
    assert "S3 / Swift" in proc.stdout


def test_instructions_script_refuses_bad_options() -> None:
    for bad in (["--ops", "PATCH"], ["--apis", "ftp"], ["--requests", "3"]):
        proc = _instructions(*bad, timeout=120)
        assert proc.returncode == 2 and "error:" in proc.stderr and "Traceback" not in proc.stderr, bad
