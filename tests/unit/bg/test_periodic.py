"""Background passes: a failure caused by the machine's state is one line, a bug a traceback."""

from __future__ import annotations

import asyncio
import errno
import logging
import subprocess
import sys
import textwrap

import pytest

from lampi.bg import periodic


def _one_failing_pass(exc: BaseException, caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    calls = 0

    async def run_once() -> int:
        nonlocal calls
        calls += 1
        raise exc

    async def main() -> None:
        task = asyncio.ensure_future(periodic.run_forever(run_once, 0.01, logging.getLogger("t.pass"),
                                                          "did %d", "pass failed"))
        while calls < 2:
            await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    with caplog.at_level(logging.INFO, logger="t.pass"):
        asyncio.run(main())
    return [r for r in caplog.records if r.name == "t.pass"]


def test_out_of_descriptors_is_one_line_without_traceback(caplog: pytest.LogCaptureFixture) -> None:
    records = _one_failing_pass(OSError(errno.EMFILE, "Too many open files"), caplog)
    assert records and all(r.exc_info is None for r in records)
    assert "Too many open files" in records[0].getMessage()
    assert records[0].levelno == logging.WARNING


def test_a_wrapped_exhaustion_is_recognised_through_the_chain(caplog: pytest.LogCaptureFixture) -> None:
    try:
        try:
            raise OSError(errno.ENFILE, "Too many open files in system")
        except OSError as inner:
            raise RuntimeError("lease failed") from inner
    except RuntimeError as outer:
        records = _one_failing_pass(outer, caplog)
    assert records and all(r.exc_info is None for r in records)


def test_any_other_failure_keeps_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    records = _one_failing_pass(ValueError("a bug"), caplog)
    assert records and all(r.exc_info is not None for r in records)
    assert records[0].levelno == logging.ERROR


def test_sqlite_refusing_to_open_while_descriptors_run_out_is_exhaustion() -> None:
    """SQLite says "unable to open database file" with no errno: the probe finds EMFILE.
    Run in a child: it lowers its own descriptor limit."""
    code = textwrap.dedent("""
        import os, resource, sqlite3, sys, tempfile
        from lampi.bg.periodic import exhaustion
        d = tempfile.mkdtemp()
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
        held = []
        try:
            while True:
                held.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            pass
        try:
            sqlite3.connect(os.path.join(d, "x.db")).execute("create table t (a)")
        except sqlite3.Error as exc:
            print("exhausted:", exhaustion(exc))
        for fd in held:
            os.close(fd)
        print("after:", exhaustion(sqlite3.OperationalError("unable to open database file")))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    assert "exhausted: Too many open files" in out, out
    assert "after: None" in out, out
