"""The conformance runners' own parts (conformance/): the config files they write, junit
parsing, the tables, the floor. No suite is downloaded or run here; the runners' server
and account set-up against a real lampi is in tests/functional/test_conformance_setup.py.
"""

from __future__ import annotations

import configparser
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conformance_runners import harness, s3, swift

CONF_DIR = Path(harness.__file__).resolve().parent


def read_ini(path: Path) -> configparser.RawConfigParser:
    cp = configparser.RawConfigParser()
    cp.read(path)
    return cp


# -- Swift: test.conf ------------------------------------------------------------------


def _accounts(with_domain: bool = False):  # noqa: ANN202
    acc = swift.Accounts()
    acc.users[1] = swift.User("test", "tester", "testing")
    acc.users[2] = swift.User("test2", "tester2", "testing2")
    acc.users[3] = swift.User("test", "tester3", "testing3")
    if with_domain:
        acc.users[4] = swift.User("test4", "tester4", "testing4", domain="test-domain")
    acc.users[6] = swift.User("admin", "tester6", "testing6")
    return acc


def test_swift_test_conf_v1(tmp_path: Path) -> None:
    path = tmp_path / "test.conf"
    swift.write_test_conf(path, "v1", "http://127.0.0.1:4321", _accounts())
    c = read_ini(path)["func_test"]
    assert c["auth_uri"] == "http://127.0.0.1:4321/auth/v1.0"
    assert c["auth_version"] == "1"
    # the suite builds v1 users as "<account>:<username>"; user 3 shares account 1
    assert (c["account"], c["username"], c["password"]) == ("test", "tester", "testing")
    assert (c["account2"], c["username2"], c["password2"]) == ("test2", "tester2", "testing2")
    assert (c["username3"], c["password3"]) == ("tester3", "testing3")
    assert "account3" not in c
    assert (c["account6"], c["username6"], c["password6"]) == ("admin", "tester6", "testing6")
    assert "username4" not in c and "username5" not in c and "service_prefix" not in c
    assert "s3_access_key" not in c  # S3 keys only for --suite s3api
    assert c["s3_storage_url"] == "http://127.0.0.1:4321"
    assert c["collate"] == "C"


def test_swift_test_conf_s3api_keys(tmp_path: Path) -> None:
    """What test/functional/s3api reads: keys 1-3 (slot 1 without a suffix), the endpoint
    and the region lampi is started with."""
    acc = _accounts()
    acc.s3 = {1: ("AK1", "SK1"), 2: ("AK2", "SK2"), 3: ("AK3", "SK3")}
    path = tmp_path / "test.conf"
    swift.write_test_conf(path, "v1", "http://127.0.0.1:4321", acc)
    c = read_ini(path)["func_test"]
    assert (c["s3_access_key"], c["s3_secret_key"]) == ("AK1", "SK1")
    assert (c["s3_access_key2"], c["s3_secret_key2"]) == ("AK2", "SK2")
    assert (c["s3_access_key3"], c["s3_secret_key3"]) == ("AK3", "SK3")
    assert "s3_access_key1" not in c
    assert c["s3_storage_url"] == "http://127.0.0.1:4321"
    assert c["s3_region"] == swift.REGION == "regionOne"
    # test/functional's setup_package still logs the Swift users in (and reads /info)
    assert c["auth_uri"] == "http://127.0.0.1:4321/auth/v1.0" and c["username"] == "tester"


def test_swift_suites_select_and_floor() -> None:
    # the Swift API suite leaves s3api out (its own floor; not in CI's time budget)
    fn, s3api = swift.SUITES["functional"], swift.SUITES["s3api"]
    assert fn[0] == "test/functional" and "--ignore=test/functional/s3api" in fn
    assert s3api[0] == "test/functional/s3api" and not any(a.startswith("--ignore") for a in s3api)
    assert "python_files=test*.py" in fn and "python_files=test*.py" in s3api
    assert swift.floor_of("functional", "v1") == swift.FLOOR["v1"]
    assert swift.floor_of("functional", "v3") == swift.FLOOR["v3"]
    assert swift.floor_of("s3api", "v1") == swift.floor_of("s3api", "v3") == swift.FLOOR["s3api"] > 0
    assert swift.module_of(harness.Result("test/functional/s3api/test_bucket.py::TestS3ApiBucket::test_bucket",
                                          "passed")) == "s3api/test_bucket.py"


def test_swift_test_conf_v3_with_domain_user(tmp_path: Path) -> None:
    path = tmp_path / "test.conf"
    swift.write_test_conf(path, "v3", "http://127.0.0.1:4321", _accounts(with_domain=True))
    c = read_ini(path)["func_test"]
    assert c["auth_uri"] == "http://127.0.0.1:4321/v3"
    assert c["auth_version"] == "3"
    # the suite's v3 skip: all of username4, account4, password4, domain4 present
    assert (c["account4"], c["username4"], c["password4"], c["domain4"]) == \
        ("test4", "tester4", "testing4", "test-domain")


def test_swift_test_conf_service_user(tmp_path: Path) -> None:
    acc = _accounts()
    acc.users[5] = swift.User("test5", "tester5", "testing5")
    acc.service_prefix = "SERVICE"
    path = tmp_path / "test.conf"
    swift.write_test_conf(path, "v1", "http://127.0.0.1:4321", acc)
    c = read_ini(path)["func_test"]
    # the suite's service-token tests need all of these (test/functional/__init__.py)
    assert (c["account5"], c["username5"], c["password5"], c["service_prefix"]) == \
        ("test5", "tester5", "testing5", "SERVICE")


def test_swift_test_requirements_filter() -> None:
    text = textwrap.dedent("""\
        # Hacking already pins down pep8, pyflakes and flake8
        hacking>=2.0,<7.1.0 # Apache-2.0
        pytest>=4.6.11  # MIT
        python-swiftclient>=3.2.0
        python_keystoneclient>=3.19.0 # Apache-2.0
        boto>=2.32.1
        boto3>=1.9
        keystonemiddleware>=4.17.0 # Apache-2.0
        """)
    assert swift.parse_requirements(text, swift.TEST_REQUIREMENTS) == [
        "pytest>=4.6.11", "python-swiftclient>=3.2.0", "python_keystoneclient>=3.19.0", "boto>=2.32.1",
        "boto3>=1.9"]


# -- s3-tests: its config ---------------------------------------------------------------


def test_s3_config_has_what_the_suite_reads(tmp_path: Path) -> None:
    users = {k: s3.S3User(f"proj-{k}", f"id-{k}", f"user-{k}", f"AK-{k}", f"SK-{k}", f"{k}@example.com")
             for k in ("main", "alt", "tenant")}
    path = tmp_path / "s3tests.conf"
    s3.write_config(path, "http://127.0.0.1:4321", users)
    cp = read_ini(path)
    d = cp.defaults()
    assert (d["host"], d["port"], cp.getboolean("DEFAULT", "is_secure")) == ("127.0.0.1", "4321", False)
    for k in ("main", "alt", "tenant"):
        sec = cp[f"s3 {k}"]
        # what lampi reports as the owner: canonical id = project id, DisplayName = project name
        assert (sec["user_id"], sec["display_name"]) == (f"id-{k}", f"proj-{k}")
        assert (sec["access_key"], sec["secret_key"], sec["email"]) == (f"AK-{k}", f"SK-{k}", f"{k}@example.com")
    assert cp["s3 tenant"]["tenant"] == "proj-tenant"
    assert cp["s3 main"]["api_name"] == s3.REGION  # GetBucketLocation's answer, lampi serve --region
    # s3tests.functional.configure() reads these with no fallback
    for section in ("iam", "iam root", "iam alt root"):
        for key in ("access_key", "secret_key", "user_id", "email"):
            assert cp.get(section, key)
    assert "{random}" in cp.get("fixtures", "bucket prefix")


def test_s3_marker_filter_is_issue_12s() -> None:
    excluded = [t.removeprefix("not ") for t in s3.MARKER_FILTER.split(" and ")]
    assert excluded == ["fails_on_aws", "lifecycle_expiration", "lifecycle_transition", "cloud_transition",
                        "cloud_restore", "s3select", "sns", "test_of_sts", "webidentity_test", "bucket_logging",
                        "iam_account", "iam_cross_account", "iam_role", "iam_tenant", "iam_user", "role_policy",
                        "user_policy", "group_policy", "session_policy"]


@pytest.mark.parametrize(("nodeid", "markers", "group"), [
    ("s3tests/functional/test_s3.py::test_put_obj_enc_conflict_c_s3", ("encryption",), "encryption (SSE-C/S3/KMS)"),
    ("s3tests/functional/test_s3.py::test_sse_kms_method_head", (), "encryption (SSE-C/S3/KMS)"),
    ("s3tests/functional/test_s3.py::test_object_lock_put_obj_retention", (), "object lock"),
    ("s3tests/functional/test_s3.py::test_versioning_obj_create_read_remove", (), "versioning"),
    ("s3tests/functional/test_s3.py::test_bucket_policy_acl", ("bucket_policy",), "bucket policy"),
    ("s3tests/functional/test_s3.py::test_post_object_anonymous_request", (), "POST upload"),
    ("s3tests/functional/test_s3.py::test_bucket_acl_grant_userid_read", (), "ACL"),
    ("s3tests/functional/test_s3.py::test_put_object_ifnonmatch_good", (), "conditional writes"),
    ("s3tests/functional/test_s3.py::test_multipart_upload_small", (), "multipart"),
    ("s3tests/functional/test_s3.py::test_bucket_listv2_delimiter_basic", ("list_objects_v2",), "listing"),
    ("s3tests/functional/test_s3.py::test_object_write_file", (), "object get/put/delete/metadata"),
    ("s3tests/functional/test_s3.py::test_get_undefined_public_block", (), "public access block / ownership / attributes"),
    ("s3tests/functional/test_s3.py::test_atomic_dual_write_4mb", (), "atomic reads/writes, 100-continue"),
    ("s3tests/functional/test_headers.py::test_object_create_bad_md5_invalid_short", ("auth_common",),
     "headers and auth (test_headers.py)"),
])
def test_s3_groups(nodeid: str, markers: tuple[str, ...], group: str) -> None:
    assert s3.group_of(harness.Result(nodeid, "passed", markers=markers)) == group


def test_s3_default_suite_is_found_beside_the_clone() -> None:
    # CI lays shared/ beside the clone; a worktree under /work/wt/<name> finds /work/shared
    suite = s3.default_suite()
    assert suite.name == "ceph-s3-tests" and suite.parent.name == "conformance"


# -- junit, tables, floor -----------------------------------------------------------------

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="1" skipped="1" tests="5">
<testcase classname="test.functional.test_slo.TestSlo" name="test_a" file="test/functional/test_slo.py">
  <properties><property name="nodeid" value="test/functional/test_slo.py::TestSlo::test_a"/>
  <property name="markers" value=""/></properties></testcase>
<testcase classname="test.functional.test_slo.TestSlo" name="test_b">
  <properties><property name="nodeid" value="test/functional/test_slo.py::TestSlo::test_b"/></properties>
  <error message="failed on setup with &quot;ResponseError: 400: Bad Request&quot;">test/functional/tests.py:12: in setUp
    self.env.setUp()
E   test.functional.swift_test_client.ResponseError: 400: Bad Request ('Invalid SLO manifest')</error>
</testcase>
<testcase classname="test.functional.tests.TestFile" name="testCopy">
  <properties><property name="nodeid" value="test/functional/tests.py::TestFile::testCopy"/>
  <property name="markers" value="copy,fails_on_dbstore"/></properties>
  <failure message="AssertionError: 404 != 201&#10;more">self = x
&gt;       self.assertEqual(404, 201)
E       AssertionError: 404 != 201</failure></testcase>
<testcase classname="test.functional.tests.TestFile" name="testCopy">
  <properties><property name="nodeid" value="test/functional/tests.py::TestFile::testCopy"/></properties>
  <error message="failed on teardown with &quot;OSError&quot;">E   OSError: boom</error></testcase>
<testcase classname="test.functional.test_tempurl.TestTempurl" name="test_c">
  <skipped type="pytest.skip" message="Cross policy test requires multiple policies">x</skipped></testcase>
</testsuite></testsuites>
"""


def test_parse_junit(tmp_path: Path) -> None:
    (tmp_path / "j.xml").write_text(JUNIT)
    (tmp_path / "test" / "functional").mkdir(parents=True)
    (tmp_path / "test" / "functional" / "test_tempurl.py").write_text("")
    results = {r.nodeid: r for r in harness.parse_junit(tmp_path / "j.xml", tmp_path)}
    assert set(results) == {
        "test/functional/test_slo.py::TestSlo::test_a", "test/functional/test_slo.py::TestSlo::test_b",
        "test/functional/tests.py::TestFile::testCopy",
        # no nodeid property: rebuilt from classname by finding the module file under the root
        "test/functional/test_tempurl.py::TestTempurl::test_c"}
    assert results["test/functional/test_slo.py::TestSlo::test_a"].outcome == "passed"
    b = results["test/functional/test_slo.py::TestSlo::test_b"]
    assert b.outcome == "error"
    assert b.message == "test.functional.swift_test_client.ResponseError: 400: Bad Request ('Invalid SLO manifest')"
    copy = results["test/functional/tests.py::TestFile::testCopy"]
    assert copy.outcome == "error"  # failed in the call, then in teardown: the worse outcome is kept
    skipped = results["test/functional/test_tempurl.py::TestTempurl::test_c"]
    assert (skipped.outcome, skipped.message) == ("skipped", "Cross policy test requires multiple policies")


def test_failure_message_is_the_exception_line(tmp_path: Path) -> None:
    (tmp_path / "j.xml").write_text(JUNIT.replace(
        '<error message="failed on teardown with &quot;OSError&quot;">E   OSError: boom</error>', ""))
    results = {r.nodeid: r for r in harness.parse_junit(tmp_path / "j.xml")}
    copy = results["test/functional/tests.py::TestFile::testCopy"]
    assert (copy.outcome, copy.message, copy.markers) == ("failed", "AssertionError: 404 != 201",
                                                          ("copy", "fails_on_dbstore"))


def _results() -> list[harness.Result]:
    R = harness.Result
    return [R("t/a.py::x", "passed"), R("t/a.py::y", "failed", "AssertionError: 1 != 2"),
            R("t/b.py::z", "error", "ResponseError: 500"), R("t/b.py::w", "skipped", "no"), R("t/b.py::v", "passed")]


def test_table_and_summary() -> None:
    res = _results()
    lines = harness.table(res, lambda r: r.module, "module").splitlines()
    assert lines[0].split("|")[1:-1] == [" module ", " passed ", " failed ", " errors ", " skipped ", " total "]
    rows = {ln.split("|")[1].strip(): [c.strip() for c in ln.split("|")[2:-1]] for ln in lines[2:]}
    assert rows == {"t/a.py": ["1", "1", "0", "0", "2"], "t/b.py": ["1", "0", "1", "1", "3"],
                    "total": ["2", "1", "1", "1", "5"]}
    # errors (set-up failures) count as failed in the closing line
    assert harness.summary_line(res) == "2 passed, 2 failed, 1 skipped"


def test_report_floor_and_failure_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    res = _results()
    out = tmp_path / "sub" / "failures.txt"
    assert harness.report(res, lambda r: r.module, "module", 2, out, "x") == 0
    assert capsys.readouterr().out.rstrip().splitlines()[-1] == "2 passed, 2 failed, 1 skipped"
    assert out.read_text().splitlines() == ["t/a.py::y\tfailed: AssertionError: 1 != 2",
                                            "t/b.py::z\terror: ResponseError: 500"]
    assert harness.report(res, lambda r: r.module, "module", 3, None, "x") == 1
    text = capsys.readouterr().out
    assert "below the floor of 3" in text and text.rstrip().splitlines()[-1] == "2 passed, 2 failed, 1 skipped"


def test_plugin_puts_nodeid_and_markers_in_junit(tmp_path: Path) -> None:
    """The plugin the runners load with -p, through a real pytest run and its junit file."""
    (tmp_path / "test_sample.py").write_text(textwrap.dedent("""\
        import pytest

        class TestK:
            def test_ok(self):
                pass

        @pytest.mark.copy
        @pytest.mark.parametrize("n", [1, 2])
        def test_fail(n):
            assert n == 1, "n is not one"
        """))
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    copy\n")
    junit = tmp_path / "junit.xml"
    env = {"PYTHONPATH": str(CONF_DIR), "PATH": "/usr/bin:/bin"}
    res = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", harness.PLUGIN,
                          "-o", "junit_family=xunit1", f"--junitxml={junit}", "test_sample.py"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1, res.stdout + res.stderr
    got = {r.nodeid: (r.outcome, r.markers, r.message) for r in harness.parse_junit(junit)}
    assert got == {
        "test_sample.py::TestK::test_ok": ("passed", (), ""),
        "test_sample.py::test_fail[1]": ("passed", ("copy",), ""),
        "test_sample.py::test_fail[2]": ("failed", ("copy",), "AssertionError: n is not one"),
    }


def test_runners_help() -> None:
    for name in ("swift-functional", "s3-tests"):
        res = subprocess.run([str(CONF_DIR / name / "run"), "--help"], capture_output=True, text=True, timeout=60)
        assert res.returncode == 0 and "--floor" in res.stdout and "--list-failures" in res.stdout
    res = subprocess.run([str(CONF_DIR / "swift-functional" / "run"), "--help"], capture_output=True, text=True,
                         timeout=60)
    assert "--suite {functional,s3api}" in res.stdout


def test_kill_session_ends_every_process_of_the_session() -> None:
    """The runners' last word on a server or suite: every process of the session they
    started, found by session id and signalled by pid."""
    import time

    proc = subprocess.Popen(["sh", "-c", "sleep 300 & sleep 300 & wait"], start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while len(harness.session_members(proc.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        members = harness.session_members(proc.pid)
        assert proc.pid in members and len(members) == 3
        harness.kill_session(proc.pid, grace=10)
        proc.wait(30)
        assert harness.session_members(proc.pid) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_server_that_exits_at_start_is_reported_with_its_log(tmp_path: Path) -> None:
    fake = tmp_path / "fake-lampi"
    fake.write_text("#!/bin/sh\necho 'cannot open data dir' >&2\nexit 3\n")
    fake.chmod(0o755)
    srv = harness.Lampi(str(fake), tmp_path, ready_timeout=60)
    with pytest.raises(RuntimeError, match="exited at start") as exc:
        srv.start()
    assert "cannot open data dir" in str(exc.value)
    assert srv.proc is None
