"""How responsive the web console stays on a 100,000-object bucket (issue 14).

Starts `lampi serve` (one worker) on free ports, puts 100,000 one-byte objects in ten
pseudo-folders with one Swift bulk request (`?extract-archive=tar`), logs in to the
console and times its pages (median of 5): the bucket list, the bucket's top level
(folders), a folder's first page, a prefix filter, and 20 "next" pages.

    python benchmarks/console_big_bucket.py [--objects 100000]
"""

from __future__ import annotations

import argparse
import html
import io
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import requests
import swiftclient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lampi.testing import wait_healthy  # noqa: E402
from tests.functional.console_helpers import ConsoleUser  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=100_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lampi-console-bench-"))
    port, cport = free_port(), free_port()
    proc = subprocess.Popen(["lampi", "serve", "--port", str(port), "--console-port", str(cport), "--workers", "1",
                             "--data-dir", str(tmp / "data"), "--admin-password", "bench-admin-pw"],
                            stdout=open(tmp / "serve.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc, timeout=120)
        conn = swiftclient.Connection(authurl=f"http://127.0.0.1:{port}/v3", user="admin", key="bench-admin-pw",
                                      auth_version="3", os_options={"user_domain_name": "Default",
                                                                    "project_domain_name": "Default",
                                                                    "project_name": "admin"})
        url, token = conn.get_auth()
        conn.put_container("big")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            for i in range(args.objects):
                ti = tarfile.TarInfo(f"dir{i % 10}/file-{i:06d}.txt")
                ti.size = 1
                t.addfile(ti, io.BytesIO(b"x"))
        start = time.monotonic()
        r = requests.put(f"{url}/big?extract-archive=tar", data=buf.getvalue(),
                         headers={"X-Auth-Token": token, "Accept": "application/json"}, timeout=3600)
        print(f"{args.objects} objects by one bulk request: {time.monotonic() - start:.0f} s ({r.json()['Number Files Created']})")

        class Srv:
            console_port = cport

        u = ConsoleUser(Srv())  # type: ignore[arg-type]
        u.login("admin", "bench-admin-pw")

        def timed(path: str) -> tuple[float, str]:
            took = []
            for _ in range(5):
                a = time.monotonic()
                resp = u.get(path)
                took.append(time.monotonic() - a)
                resp.raise_for_status()
            return statistics.median(took) * 1000, resp.text

        nxt: list[str] = []
        for path in ("/buckets", "/bucket?bucket=big", "/bucket?bucket=big&prefix=dir5/",
                     "/bucket?bucket=big&prefix=dir5/file-0999"):
            ms, text = timed(path)
            print(f"{path:45s} {ms:7.1f} ms")
            if path.endswith("dir5/"):
                nxt = [html.unescape(x) for x in re.findall(r'href="(/bucket\?[^"]*marker=[^"]*)"', text)]
        pages, start, p = 0, time.monotonic(), nxt[0] if nxt else None
        while p and pages < 20:
            text = u.get(p).text
            pages += 1
            links = [html.unescape(x) for x in re.findall(r'href="(/bucket\?[^"]*marker=[^"]*)"', text)]
            p = links[-1] if links else None
        if pages:
            print(f"{pages} 'next' pages of dir5/: {(time.monotonic() - start) / pages * 1000:.1f} ms per page")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
