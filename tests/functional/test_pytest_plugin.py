"""lampi in another project's test suite: the pytest plugin `pip install lampi` brings.

tests/functional/plugin_project is such a project (its own pytest.ini, tests that use
only the plugin's fixtures with swiftclient, boto3 and the `swift` CLI). Each test here
runs it as a separate pytest process — with pytest-xdist's two workers, with a failing
test, interrupted with Ctrl-C, killed with SIGKILL — and checks that its tests pass and
that no lampi server it started is left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.functional.conftest import ctrl_c_answered

PROJECT = Path(__file__).parent / "plugin_project"
DEADLINE = 120.0


def servers_under(base: Path) -> list[str]:
    """Live lampi server processes whose command line names a path under ``base``."""
    found = []
    needle = str(base).encode()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes()
            state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if needle in cmd and b"serve" in cmd and state != "Z":
            found.append(f"{d.name}: " + cmd.replace(b"\0", b" ").decode(errors="replace"))
    return found


def wait_no_servers(base: Path, timeout: float = DEADLINE) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        left = servers_under(base)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def inner_env(tmp: Path, **extra: str) -> dict[str, str]:
    """The inner run's environment: its own TMPDIR (so its servers' data dirs, and so
    their command lines, are recognisable), none of this run's lampi/OpenStack settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAMPI_", "OS_", "AWS_", "PYTEST_"))}
    env.update(TMPDIR=str(tmp), **extra)
    return env


def inner(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-c", str(PROJECT / "pytest.ini"), "--rootdir", str(PROJECT),
            "-p", "no:randomly", *args, str(PROJECT)]


def test_plugin_is_registered():
    """`pip install lampi` is enough: pytest finds the plugin through its entry point."""
    from importlib.metadata import entry_points

    eps = [ep for ep in entry_points(group="pytest11") if ep.name == "lampi"]
    assert eps and eps[0].value == "lampi.testing.pytest_plugin"


def test_project_passes_under_xdist(tmp_path):
    """Two xdist workers, one server each (plus the per-test ones), all reaped."""
    log = tmp_path / "workers.log"
    res = subprocess.run(inner("-n", "2", "-q", "-rs"), env=inner_env(tmp_path, PLUGIN_DEMO_LOG=str(log)),
                         capture_output=True, text=True, timeout=900)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "6 passed, 2 skipped" in out, out
    used = {tuple(line.split()) for line in log.read_text().splitlines()}
    workers = {w for w, _ in used}
    assert workers == {"gw0", "gw1"}, used
    assert all(len({p for w, p in used if w == wk}) == 1 for wk in workers), used  # one session server per worker
    assert len({p for _, p in used}) == 2, used
    assert wait_no_servers(tmp_path) == []


def test_failing_test_leaves_no_server(tmp_path):
    res = subprocess.run(inner("-q", "-k", "fails_on_purpose or swiftclient"),
                         env=inner_env(tmp_path, PLUGIN_DEMO_MODE="fail"), capture_output=True, text=True, timeout=600)
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    assert "1 failed, 1 passed" in out, out
    assert wait_no_servers(tmp_path) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "sigkill"])
def test_interrupted_run_leaves_no_server(tmp_path, sig):
    """Ctrl-C: pytest tears its fixtures down. SIGKILL: nothing in pytest runs, and the
    servers stop because their parent died (Linux's parent-death signal)."""
    ready = tmp_path / "ready"
    proc = subprocess.Popen(inner("-q", "-k", "waits_to_be_interrupted"),
                            env=inner_env(tmp_path, PLUGIN_DEMO_MODE="interrupt", PLUGIN_DEMO_READY=str(ready)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=ctrl_c_answered)
    try:
        deadline = time.monotonic() + 300
        while not (ready.exists() and ready.read_text().strip()):
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.monotonic() < deadline, "the inner test never started"
            time.sleep(0.2)
        pids = [int(p) for p in ready.read_text().split()]
        assert len(servers_under(tmp_path)) >= 2
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=300)
        if sig == signal.SIGINT:
            assert b"KeyboardInterrupt" in out, out.decode(errors="replace")
        assert wait_no_servers(tmp_path) == []
        for pid in pids:  # the servers the inner test named: gone, a zombie, or the pid reused by another program
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            assert state == "Z" or str(tmp_path).encode() not in cmd, (pid, cmd)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for line in servers_under(tmp_path):  # never leave one behind, whatever failed
            os.kill(int(line.split(":")[0]), signal.SIGKILL)


def test_readme_example(tmp_path):
    """README's "Use lampi in your tests" example, as a user would save and run it."""
    import re

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    code = re.search(r"<!-- plugin-example[^>]*-->\n```python\n(.*?)```", readme, re.S)
    assert code, "README.md has no plugin example"
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    (proj / "test_results.py").write_text(code.group(1))
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-W", "ignore::DeprecationWarning"], cwd=proj,
                         env=inner_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0 and "4 passed" in res.stdout, res.stdout + res.stderr
    assert wait_no_servers(tmp_path) == []
