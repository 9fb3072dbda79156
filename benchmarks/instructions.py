"""Server instructions per request, Swift beside S3, counted by valgrind's callgrind.

    python benchmarks/instructions.py [--requests 400] [--ops GET,HEAD,DELETE]
                                      [--apis swift,s3] [--json out.json]
                                      [--keep-dumps DIR]

Starts ``lampi serve --workers 1`` (one process: the event loop, its threads, the
SQLite writer) of this checkout, or of ``PYTHONPATH`` to compare another version
(``PYTHONPATH=<other checkout> python benchmarks/instructions.py``), under
``valgrind --tool=callgrind`` in a throw-away data dir, makes an S3
key pair for the admin, writes one 4 KiB object per request through Swift, and for each
operation and API runs ``--requests`` requests (8 at a time) after a warm-up pass, between a
``callgrind_control --zero`` and a ``--dump``: the dump's total over the requests is
the server's instructions per request, everything it ran included.

Why: on a small, shared machine the throughput ratios of ``lampi bench`` move by 10–20%
from run to run (docs/benchmarks.md, sessions 14 and 15), more than a change to one
request path saves. An instruction count is the same within about 1% from run to run,
whatever else the machine does, so two versions of the code can be compared with one
run each. It is not a time: it weighs a cache miss or a system call's wait as nothing,
so confirm a gain with ``lampi bench --rounds 3`` too.

Needs valgrind (Debian's ``valgrind``); the server starts in about a minute under it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lampi.bench.s3sign import Signer  # noqa: E402
from lampi.bench.servers import free_port  # noqa: E402

CONCURRENCY = 8


def _ctl(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True, timeout=300)


def _total(out_dir: Path, pid: int, before: set[Path]) -> tuple[int, Path]:
    """The instruction total of the dump made since ``before`` was listed, and the dump."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        new = sorted(set(out_dir.glob(f"cg.{pid}.*")) - before, key=lambda p: p.stat().st_mtime)
        for path in new:
            for line in path.read_text(errors="replace").splitlines():
                if line.startswith(("summary:", "totals:")):
                    return int(line.split()[1]), path
        time.sleep(0.5)
    raise RuntimeError("callgrind wrote no dump")


async def _measure(base: str, pid: int, out_dir: Path, password: str, access: str, secret: str,
                   requests: int, ops: list[str], apis: list[str],
                   keep: Path | None = None) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{base}/auth/v1.0", headers={"X-Auth-User": "admin:admin", "X-Auth-Key": password}) as r:
            if r.status >= 300:
                raise RuntimeError(f"v1 auth: HTTP {r.status}")
            token, storage = r.headers["X-Auth-Token"], r.headers["X-Storage-Url"]
        swift_h = {"X-Auth-Token": token}
        async with s.put(f"{storage}/instr", headers=swift_h) as r:
            if r.status not in (201, 202):
                raise RuntimeError(f"PUT container: HTTP {r.status}")
        signer = Signer(access, secret)
        gate = asyncio.Semaphore(CONCURRENCY)

        async def put(i: int) -> None:
            async with gate, s.put(f"{storage}/instr/o{i}", data=b"x" * 4096, headers=swift_h) as r:
                if r.status != 201:
                    raise RuntimeError(f"PUT object: HTTP {r.status}")

        async def fill() -> None:  # one object per request (written through Swift, not counted)
            await asyncio.gather(*(put(i) for i in range(requests)))

        async def run(op: str, api: str) -> None:
            async def lane(k: int) -> None:
                for i in range(k, requests, CONCURRENCY):
                    name = f"o{i}"
                    if api == "swift":
                        url, headers = f"{storage}/instr/{name}", swift_h
                    else:
                        url = f"{base}/instr/{name}"
                        headers = signer.headers(op, url)
                    async with s.request(op, url, headers=headers) as r:
                        await r.read()
                        if r.status not in (200, 204):
                            raise RuntimeError(f"{api} {op}: HTTP {r.status}")
            await asyncio.gather(*(lane(k) for k in range(CONCURRENCY)))

        await fill()
        for op in ops:
            for api in apis:
                if op == "DELETE":
                    await fill()
                await run(op, api)  # warm: caches, the key cache, the connection pool
                if op == "DELETE":
                    await fill()
                before = set(out_dir.glob(f"cg.{pid}.*"))
                _ctl(pid, "--zero")
                await run(op, api)
                _ctl(pid, "--dump")
                total, dump = _total(out_dir, pid, before)
                if keep is not None:  # for callgrind_annotate: where the instructions went
                    shutil.copyfile(dump, keep / f"{op.lower()}-{api}.callgrind")
                results.setdefault(op, {})[api] = total / requests
                print(f"{op:6} {api:5} {total / requests:12,.0f} instructions per request", flush=True)
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=400, help="measured requests per operation and API")
    ap.add_argument("--ops", default="GET,HEAD,DELETE", help="comma-separated: GET, HEAD, DELETE")
    ap.add_argument("--apis", default="swift,s3", help="comma-separated: swift, s3")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--start-timeout", type=float, default=600, help="seconds the server may take to start")
    ap.add_argument("--keep-dumps", metavar="DIR",
                    help="copy each figure's callgrind dump here (<op>-<api>.callgrind), for callgrind_annotate")
    args = ap.parse_args()
    ops = [o.strip().upper() for o in args.ops.split(",") if o.strip()]
    apis = [a.strip().lower() for a in args.apis.split(",") if a.strip()]
    if args.requests < CONCURRENCY or set(ops) - {"GET", "HEAD", "DELETE"} or set(apis) - {"swift", "s3"} or not ops:
        ap.error(f"--requests must be at least {CONCURRENCY}; --ops of GET, HEAD, DELETE; --apis of swift, s3")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: the server is stopped too (finally)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("valgrind is needed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    keep = Path(args.keep_dumps).resolve() if args.keep_dumps else None
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lampi-instr-") as tmp:
        tmpdir = Path(tmp)
        data, out_dir = tmpdir / "data", tmpdir / "callgrind"
        out_dir.mkdir()
        lampi = [sys.executable, "-m", "lampi"]
        # the server is this checkout's code, or PYTHONPATH's (another version, to compare)
        env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH") or str(ROOT)}
        subprocess.run([*lampi, "init", "--data-dir", str(data)], check=True, capture_output=True, timeout=300,
                       cwd=tmp, env=env)
        made = subprocess.run([*lampi, "credential", "create", "admin", "admin", "--data-dir", str(data)],
                              check=True, capture_output=True, text=True, timeout=300, cwd=tmp, env=env).stdout
        access = re.search(r"^access:\s*(\S+)", made, re.M)
        secret = re.search(r"^secret:\s*(\S+)", made, re.M)
        rc = (data / "openrc.sh").read_text()
        password = re.search(r"OS_PASSWORD=['\"]?([^'\"\n]+)", rc)
        if not (access and secret and password):
            print("could not read the admin's credentials", file=sys.stderr)
            return 1
        port = free_port()
        log = (tmpdir / "serve.log").open("wb")
        proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_dir}/cg.%p",
                                 *lampi, "serve", "--data-dir", str(data), "--host", "127.0.0.1",
                                 "--port", str(port), "--workers", "1", "--console-port", "0"],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp, env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + args.start_timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"the server exited: {(tmpdir / 'serve.log').read_text()[-2000:]}")
                try:
                    with urllib.request.urlopen(f"{base}/_lampi/ready", timeout=10) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the server did not start in time")
                time.sleep(2)
            print(f"lampi serve --workers 1 under callgrind: {args.requests} requests per figure, "
                  f"{CONCURRENCY} at a time", flush=True)
            results = asyncio.run(_measure(base, proc.pid, out_dir, password.group(1), access.group(1),
                                           secret.group(1), args.requests, ops, apis, keep))
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            log.close()
    for op, by_api in results.items():
        if "swift" in by_api and "s3" in by_api:
            print(f"{op:6} S3 / Swift {by_api['s3'] / by_api['swift']:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"requests": args.requests, "concurrency": CONCURRENCY,
                                               "instructions_per_request": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
