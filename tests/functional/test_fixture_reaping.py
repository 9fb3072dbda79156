"""The test fixtures leave no `lampi serve` running: a small pytest session is run in a
subprocess with this suite's fixtures (tests/functional/conftest.py as a plugin); it
starts servers (with two workers each), fails a test, and then leaks a server, raises
KeyboardInterrupt, or is sent SIGINT (Ctrl-C) or SIGTERM (a CI time-out) while a test
holds one. Afterwards no process it started may be alive."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.functional.conftest import ctrl_c_answered

ROOT = Path(__file__).resolve().parents[2]

INNER = textwrap.dedent('''
    import os
    import time
    from pathlib import Path

    from tests.functional.conftest import LampiServer, free_port

    NOTE = Path(os.environ["REAP_NOTE"])


    def note(srv):
        """Write the server's pid and its workers' pids (once both are forked)."""
        deadline = time.monotonic() + 120
        while True:
            kids = [int(k) for t in Path(f"/proc/{srv.proc.pid}/task").iterdir()
                    for k in (t / "children").read_text().split()]
            if len(kids) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        with NOTE.open("a") as fh:
            fh.write(" ".join(map(str, [srv.proc.pid, *kids])) + "\\n")


    def test_fails_holding_a_fixture_server(fresh_server):
        fresh_server.workers = 2
        fresh_server.start()
        note(fresh_server)
        assert False, "fails on purpose"


    def test_server_of_its_own_never_stopped(tmp_path):
        srv = LampiServer(data_dir=tmp_path / "d", port=free_port(), workers=2)
        srv.start()
        note(srv)
        mode = os.environ["REAP_MODE"]
        if mode == "raise":
            raise KeyboardInterrupt
        if mode in ("sigint", "sigterm"):
            Path(os.environ["REAP_READY"]).write_text("ready")
            time.sleep(600)  # the outer test signals pytest here
''')


def alive_lampi(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z" and b"lampi" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, IndexError):
        return False


def noted(path: Path) -> list[int]:
    return [int(p) for line in path.read_text().splitlines() for p in line.split()] if path.exists() else []


@pytest.mark.parametrize("mode", ["leak", "raise", "sigint", "sigterm"])
def test_no_server_outlives_the_run(tmp_path: Path, mode: str) -> None:
    (tmp_path / "test_inner.py").write_text(INNER)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    note, ready = tmp_path / "pids", tmp_path / "ready"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAMPI_", "OS_", "PYTEST_"))}
    env.update(PYTHONPATH=str(ROOT), REAP_NOTE=str(note), REAP_READY=str(ready), REAP_MODE=mode)
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "-p", "tests.functional.conftest", "-c", str(tmp_path / "pytest.ini"),
                             "--rootdir", str(tmp_path), "--basetemp", str(tmp_path / "base"), "test_inner.py"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True,  # a Ctrl-C at our terminal is not meant for it
                            preexec_fn=ctrl_c_answered)
    try:
        if mode in ("sigint", "sigterm"):
            deadline = time.monotonic() + 300
            while not ready.exists():
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                assert time.monotonic() < deadline, "the inner test never got its server"
                time.sleep(0.1)
            os.kill(proc.pid, signal.SIGINT if mode == "sigint" else signal.SIGTERM)
        out, _ = proc.communicate(timeout=300)
        text = out.decode(errors="replace")
        pids = noted(note)
        assert len(pids) == 6, (pids, text)  # two servers, each a supervisor and two workers
        deadline = time.monotonic() + 30
        left = pids
        while left and time.monotonic() < deadline:
            left = [p for p in pids if alive_lampi(p)]
            time.sleep(0.1)
        assert not left, f"still running after the inner run ({mode}): {left}\n{text}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for p in noted(note):  # whatever happened, leave nothing behind
            if alive_lampi(p):
                os.kill(p, signal.SIGKILL)
    assert "fails on purpose" in text
    if mode == "leak":
        # the end-of-run reaper found it, said so, and failed the run
        assert "lampi servers still running at the end of the run" in text
        assert proc.returncode == 1
    else:
        assert proc.returncode == 2, text  # pytest's "interrupted"
