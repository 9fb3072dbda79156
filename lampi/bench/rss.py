"""Server memory: resident set size summed over a server's processes (workers included).

Sampled a few times a second while a phase runs (the peak of the sum), plus the
kernel's per-process high-water mark (VmHWM) at the end of the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

try:
    import psutil
except ImportError:  # pragma: no cover - psutil is a dependency; /proc is the fallback
    psutil = None  # type: ignore[assignment]

MiB = 1024 * 1024
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_children(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            pass
    return out


def tree(pids: Iterable[int]) -> list[int]:
    """The processes and all their descendants (deduplicated)."""
    seen: dict[int, None] = {}
    for pid in pids:
        if psutil is not None:
            try:
                p = psutil.Process(pid)
                seen[pid] = None
                for c in p.children(recursive=True):
                    seen[c.pid] = None
            except psutil.Error:
                continue
        else:
            for c in _proc_children(pid):
                seen[c] = None
    return list(seen)


def _kib_field(path: str, key: str) -> int:
    """The ``key: N kB`` line of a /proc file, in bytes (0 if there is none)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _status(pid: int, key: str) -> int:
    return _kib_field(f"/proc/{pid}/status", key)


def rss(pids: Iterable[int]) -> int:
    """Current RSS in bytes summed over the process trees."""
    total = 0
    for pid in tree(pids):
        if psutil is not None:
            try:
                total += psutil.Process(pid).memory_info().rss
            except psutil.Error:
                pass
        else:
            total += _status(pid, "VmRSS")
    return total


def pss(pids: Iterable[int]) -> int:
    """Proportional set size in bytes summed over the process trees.

    RSS counts a page in every process that maps it, so the sum of the RSS of a
    parent and the workers it forked counts their shared pages (the interpreter,
    the imported modules, the shared libraries) once per process. PSS divides each
    page among the processes sharing it: the sum is what the server really holds.
    0 when the kernel has no smaps_rollup (before Linux 4.14).
    """
    return sum(_kib_field(f"/proc/{pid}/smaps_rollup", "Pss") for pid in tree(pids))


def hwm(pids: Iterable[int]) -> int:
    """Sum of the per-process peak RSS (VmHWM) — an upper bound of the peak of the sum."""
    return sum(_status(pid, "VmHWM") for pid in tree(pids))


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU seconds used so far, summed over the process trees."""
    total = 0.0
    for pid in tree(pids):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / _CLK_TCK
        except (OSError, ValueError, IndexError):
            pass
    return total


class Sampler:
    """``async with Sampler(pids) as s:`` ... ``s.start``, ``s.peak`` (bytes), ``s.cpu``
    (CPU seconds the server's processes used meanwhile: unlike a rate, CPU per request
    barely moves when other work shares the machine)."""

    def __init__(self, pids: list[int], interval: float = 0.1) -> None:
        self.pids, self.interval = pids, interval
        self.start = self.peak = 0
        self.cpu = 0.0
        self._cpu0 = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.peak = max(self.peak, rss(self.pids))

    async def __aenter__(self) -> Sampler:
        if self.pids:
            self.start = self.peak = rss(self.pids)
            self._cpu0 = cpu_seconds(self.pids)
            self._task = asyncio.ensure_future(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self.peak = max(self.peak, rss(self.pids))
            self.cpu = cpu_seconds(self.pids) - self._cpu0
