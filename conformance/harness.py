"""What the conformance runners share: a cached suite venv, a fresh ``lampi serve`` that
is always reaped, lampi's admin CLI, pytest under a deadline, junit results, the table,
the floor.

Standard library only: a runner works with any Python >= 3.11 that can make a venv, and
uses the ``lampi`` on PATH (or ``--lampi``). Nothing here imports lampi.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLUGIN = "lampi_conformance_plugin"  # conformance/lampi_conformance_plugin.py, loaded with -p
OUTCOMES = ("passed", "failed", "error", "skipped")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def default_cache_dir() -> Path:
    env = os.environ.get("LAMPI_CONFORMANCE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "lampi-conformance"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock (flock) so two runs never build the same cache entry at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def run(cmd: list[str], timeout: float, cwd: Path | None = None, env: dict[str, str] | None = None,
        what: str = "") -> subprocess.CompletedProcess[str]:
    """Run ``cmd``; raise with its output when it fails."""
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"{what or cmd[0]} failed ({res.returncode}): {' '.join(cmd)}\n"
                           f"{res.stdout[-4000:]}\n{res.stderr[-4000:]}")
    return res


# -- the suite's venv (cached) -------------------------------------------------------------


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_venv(venv: Path, python: str, packages: list[str], timeout: float = 1800) -> Path:
    """A venv at ``venv`` with ``packages`` (pip requirement strings or paths) installed.

    Reused while its stamp (interpreter + package list) matches; rebuilt from scratch
    otherwise. The stamp is written last, so an interrupted build is redone next time.
    """
    stamp = venv / "lampi-conformance.stamp"
    version = run([python, "-c", "import sys; print(sys.version)"], 60, what="python").stdout.strip()
    want = json.dumps({"python": python, "version": version, "packages": packages}, sort_keys=True)
    with file_lock(venv.with_name(venv.name + ".lock")):
        if stamp.exists() and stamp.read_text() == want and venv_python(venv).exists():
            return venv_python(venv)
        log(f"building the suite's venv {venv} (once; cached afterwards)")
        shutil.rmtree(venv, ignore_errors=True)
        run([python, "-m", "venv", str(venv)], 300, what="venv")
        run([str(venv_python(venv)), "-m", "pip", "install", "-q", "--upgrade", "pip"], timeout, what="pip")
        run([str(venv_python(venv)), "-m", "pip", "install", "-q", *packages], timeout, what="pip install")
        stamp.write_text(want)
    return venv_python(venv)


# -- lampi: one fresh server, always reaped --------------------------------------------------


def session_members(sid: int) -> list[int]:
    """Pids of the live processes in session ``sid`` (from /proc; empty elsewhere)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2:].split()  # after "pid (comm) "
        if len(fields) > 3 and fields[0] != "Z" and int(fields[3]) == sid:
            pids.append(int(stat.parent.name))
    return pids


def kill_session(sid: int, grace: float) -> None:
    """SIGTERM, then after ``grace`` seconds SIGKILL, to each process still in session
    ``sid`` — one our runner started with ``start_new_session`` — by pid."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        members = session_members(sid)
        if not members:
            return
        for pid in members:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while session_members(sid) and time.monotonic() < deadline:
            time.sleep(0.2)


class Lampi:
    """``lampi serve`` on a free port over a fresh data dir, in a session of its own so
    that stopping it reaches every worker; plus lampi's admin CLI on that data dir."""

    def __init__(self, exe: str, workdir: Path, workers: int = 2, ready_timeout: float = 180.0) -> None:
        self.exe = exe
        self.data_dir = workdir / "lampi-data"
        self.log_path = workdir / "lampi-serve.log"
        self.workers = workers
        self.ready_timeout = ready_timeout
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._help: dict[tuple[str, ...], str | None] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def help_text(self, *cmd: str) -> str | None:
        """``lampi <cmd> --help`` output, None when the command does not exist."""
        if cmd not in self._help:
            res = subprocess.run([self.exe, *cmd, "--help"], capture_output=True, text=True, timeout=120, check=False)
            self._help[cmd] = res.stdout if res.returncode == 0 else None
        return self._help[cmd]

    def has_option(self, cmd: tuple[str, ...], option: str) -> bool:
        text = self.help_text(*cmd)
        return text is not None and option in text

    def start(self, extra_args: Iterable[str] = ()) -> None:
        env = dict(os.environ)
        env.pop("LAMPI_CONFIG", None)
        last_error = ""
        for _attempt in range(3):  # an exit at start may be a port taken between probe and bind: retry
            self.port = free_port()
            with open(self.log_path, "ab") as logf:
                self.proc = subprocess.Popen(
                    [self.exe, "serve", "--host", "127.0.0.1", "--port", str(self.port), "--data-dir",
                     str(self.data_dir), "--workers", str(self.workers), "--log-format", "json", "--console-port", "0",
                     *extra_args],
                    stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                    start_new_session=True,
                )
            deadline = time.monotonic() + self.ready_timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if not (self.data_dir / "meta.db").exists():
                    # not bound yet: lampi serve binds, then creates its store; until then
                    # another process that took the port meanwhile would answer below
                    time.sleep(0.25)
                    continue
                try:
                    with urllib.request.urlopen(f"{self.url}/healthcheck", timeout=5) as r:
                        if r.status == 200:
                            log(f"lampi serve ready at {self.url} (pid {self.proc.pid}, {self.workers} workers)")
                            return
                except (urllib.error.URLError, OSError):
                    pass
                time.sleep(0.25)
            exited = self.proc.poll() is not None
            last_error = self.log_tail()
            self.stop()
            if not exited:
                raise RuntimeError(f"lampi serve did not become ready within {self.ready_timeout:.0f} s:\n"
                                   f"{last_error}")
        raise RuntimeError(f"lampi serve exited at start (3 tries):\n{last_error}")

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM to the server's session (parent and workers), SIGKILL after ``timeout``;
        then any process still in that session (a worker that outlived its parent)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 30.0)):
            if proc.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(wait)
        kill_session(proc.pid, grace=30.0)

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def cli(self, *args: str, as_json: bool = False) -> object:
        """Run ``lampi <args> --data-dir <data dir> [--json]``; its JSON output if asked."""
        cmd = [self.exe, *args, "--data-dir", str(self.data_dir)] + (["--json"] if as_json else [])
        res = run(cmd, 180, what="lampi " + " ".join(args[:2]))
        return json.loads(res.stdout) if as_json else res.stdout.strip()

    def try_cli(self, *args: str) -> bool:
        try:
            self.cli(*args)
            return True
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            log(f"note: {str(e).splitlines()[0]}")
            return False


@contextlib.contextmanager
def work_dir(keep: bool, prefix: str) -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield d
    finally:
        if keep:
            log(f"kept {d}")
        else:
            shutil.rmtree(d, ignore_errors=True)


# -- pytest under a deadline ---------------------------------------------------------------


def run_pytest(python: Path, args: list[str], cwd: Path, env: dict[str, str], log_path: Path,
               deadline: float) -> int:
    """Run ``python -m pytest args`` in its own session, output to ``log_path``; after
    ``deadline`` seconds it is stopped (SIGTERM, then SIGKILL): the junit file pytest
    wrote so far is what counts. Returns pytest's exit status (or -signal)."""
    env = dict(env)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    cmd = [str(python), "-m", "pytest", "-p", "no:cacheprovider", "-p", PLUGIN, *args]
    log(f"running: {' '.join(cmd)}  (cwd {cwd}; output in {log_path})")
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            return proc.wait(deadline)
        except subprocess.TimeoutExpired:
            log(f"pytest still running after {deadline:.0f} s: stopping it")
            for sig, wait in ((signal.SIGTERM, 60.0), (signal.SIGKILL, 30.0)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    return proc.wait(wait)
            return proc.wait()
        finally:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            kill_session(proc.pid, grace=10.0)  # anything the suite left running


# -- results --------------------------------------------------------------------------------


@dataclass
class Result:
    nodeid: str
    outcome: str  # passed | failed | error | skipped
    message: str = ""  # first line of the failure, error or skip reason
    markers: tuple[str, ...] = ()
    props: dict[str, str] = field(default_factory=dict)

    @property
    def module(self) -> str:
        return self.nodeid.split("::", 1)[0]

    @property
    def name(self) -> str:
        return self.nodeid.rsplit("::", 1)[-1]


def first_line(text: str | None) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


def _error_line(el: ET.Element) -> str:
    """The most telling line of a failure: the last ``E   `` line of the traceback that
    names an exception (``E   AssertionError: ...``), else the message's first line."""
    text = el.text or ""
    e_lines = [ln[1:].strip() for ln in text.splitlines() if ln.startswith("E ") and ln[1:].strip()]
    for ln in e_lines:
        head = ln.split(":", 1)[0]
        if head.endswith(("Error", "Exception", "Failed", "Timeout")) or head.startswith("Failed"):
            return ln
    return first_line(el.get("message")) or (e_lines[0] if e_lines else "")


def _nodeid_from_junit(tc: ET.Element, root: Path | None) -> str:
    """pytest's node id from a junit testcase: the plugin's ``nodeid`` property, else
    rebuilt from ``classname`` (``a.b.test_x.TestC``) by finding the module file."""
    props = {p.get("name"): p.get("value") for p in tc.iter("property")}
    if props.get("nodeid"):
        return str(props["nodeid"])
    parts = (tc.get("classname") or "").split(".")
    name = tc.get("name") or ""
    for i in range(len(parts), 0, -1):
        path = "/".join(parts[:i]) + ".py"
        if root is None or (root / path).exists():
            return "::".join([path, *parts[i:], name])
    return "::".join([*parts, name])


def parse_junit(path: Path, root: Path | None = None) -> list[Result]:
    """Every test case of a pytest junit file. A case reported twice (a failure in
    teardown after a pass) keeps its worst outcome."""
    results: dict[str, Result] = {}
    rank = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}
    tree = ET.parse(path)
    for tc in tree.iter("testcase"):
        nodeid = _nodeid_from_junit(tc, root)
        props = {str(p.get("name")): str(p.get("value")) for p in tc.iter("property")}
        outcome, message = "passed", ""
        for tag in ("error", "failure", "skipped"):
            el = tc.find(tag)
            if el is not None:
                outcome = {"failure": "failed"}.get(tag, tag)
                message = first_line(el.get("message")) if tag == "skipped" else _error_line(el)
                break
        markers = tuple(m for m in props.get("markers", "").split(",") if m)
        r = Result(nodeid, outcome, message, markers, props)
        old = results.get(nodeid)
        if old is None or rank[outcome] > rank[old.outcome]:
            results[nodeid] = r
    return list(results.values())


def counts(results: Iterable[Result]) -> dict[str, int]:
    c = dict.fromkeys(OUTCOMES, 0)
    for r in results:
        c[r.outcome] += 1
    return c


def table(results: list[Result], group: Callable[[Result], str], title: str = "group") -> str:
    """A per-group table: passed / failed / errors / skipped / total, groups sorted by name,
    and a total row."""
    groups: dict[str, list[Result]] = {}
    for r in results:
        groups.setdefault(group(r), []).append(r)
    rows = [[g, *(str(counts(rs)[o]) for o in OUTCOMES), str(len(rs))] for g, rs in sorted(groups.items())]
    tot = counts(results)
    rows.append(["total", *(str(tot[o]) for o in OUTCOMES), str(len(results))])
    header = [title, "passed", "failed", "errors", "skipped", "total"]
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]

    def fmt(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i])
                                 for i, c in enumerate(cells)) + " |"

    sep = "|" + "|".join("-" * (w + 1) + (":" if i else "-") for i, w in enumerate(widths)) + "|"
    return "\n".join([fmt(header), sep, *(fmt(r) for r in rows)])


def summary_line(results: list[Result]) -> str:
    """``N passed, M failed, K skipped``: errors (set-up failures) count as failed."""
    c = counts(results)
    return f"{c['passed']} passed, {c['failed'] + c['error']} failed, {c['skipped']} skipped"


def write_failures(path: Path, results: list[Result]) -> int:
    """Every failing (or erroring) test id with the first line of its error; returns the count."""
    bad = sorted((r for r in results if r.outcome in ("failed", "error")), key=lambda r: r.nodeid)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        for r in bad:
            fh.write(f"{r.nodeid}\t{r.outcome}: {r.message}\n")
    return len(bad)


def report(results: list[Result], group: Callable[[Result], str], title: str, floor: int,
           failures_file: Path | None, label: str) -> int:
    """Print the table and the closing line; write the failure list; the exit status:
    1 if fewer than ``floor`` tests passed, else 0."""
    print()
    print(table(results, group, title))
    print()
    if failures_file is not None:
        n = write_failures(failures_file, results)
        log(f"{n} failing tests listed in {failures_file}")
    c = counts(results)
    status = 0
    if c["passed"] < floor:
        print(f"{label}: FAIL: {c['passed']} passed is below the floor of {floor}")
        status = 1
    else:
        print(f"{label}: {c['passed']} passed, floor {floor}: ok")
    print(summary_line(results), flush=True)
    return status
