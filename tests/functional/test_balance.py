"""A server's connections spread over its workers (lampi.gateway.balance): a burst of
keep-alive connections, as a client opens its pool, is not taken by one worker."""

from __future__ import annotations

import collections
import json
import socket
import subprocess
import time
from pathlib import Path

import requests

from tests.functional.conftest import free_port, lampi_cmd


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text(errors="replace")
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError(f"lampi did not become ready:\n{log.read_text(errors='replace')}")


def _connections_per_worker(port: int, log: Path, tag: str, n: int = 16) -> list[int]:
    """Open ``n`` connections at once, one request on each (kept alive until all are
    answered), and count the workers that answered them (the access line's pid)."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(n)]
    try:
        for i, s in enumerate(socks):
            s.sendall(f"GET /healthcheck?{tag}={i} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        for s in socks:
            got = b""
            while b"\r\n\r\n" not in got or not got.endswith(b"OK"):
                chunk = s.recv(4096)
                assert chunk, got
                got += chunk
    finally:
        for s in socks:
            s.close()
    deadline = time.monotonic() + 30
    while True:  # the access lines are written after the responses
        pids = [json.loads(line)["pid"] for line in log.read_text().splitlines()
                if f'"query":"{tag}=' in line]
        if len(pids) == n or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(pids) == n, pids
    return sorted(collections.Counter(pids).values())


def test_a_burst_of_connections_is_spread_over_the_workers(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "server.log"
    proc = subprocess.Popen([*lampi_cmd(), "serve", "--host", "127.0.0.1", "--port", str(port),
                             "--data-dir", str(tmp_path / "data"), "--workers", "2", "--log-format", "json",
                             "--console-port", "0"], stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        _wait_ready(f"http://127.0.0.1:{port}/healthcheck", proc, log)
        # a worker steps back for at most 20 ms when it holds more than the other: on a
        # busy machine the other may not come in time, so the best of 3 bursts counts
        # (without the balance, one worker took 12-16 of 16 here)
        splits = []
        for attempt in range(3):
            split = _connections_per_worker(port, log, f"burst{attempt}")
            splits.append(split)
            if len(split) == 2 and min(split) >= 6:
                break
        assert any(len(s) == 2 and min(s) >= 6 for s in splits), splits
    finally:
        subprocess.run(["pkill", "-KILL", "-s", str(proc.pid)], check=False)
        proc.wait(timeout=30)
