"""Bounded memory: the server's memory does not grow with object size.

A 256 MiB object goes up (chunked, from a generator) and comes back down (streamed),
through Swift and through S3; the server process's peak RSS (VmHWM) may grow by no
more than a few tens of MiB — far less than the object.
"""

from __future__ import annotations

import hashlib
import os

import pytest
import requests

from tests.functional.conftest import LampiServer, free_port

SIZE = 256 * 1024 * 1024
CHUNK = 1024 * 1024
LIMIT = 64 * 1024 * 1024


def vm_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def body(md5: "hashlib._Hash"):  # noqa: ANN201
    block = os.urandom(CHUNK)
    for i in range(SIZE // CHUNK):
        chunk = block[:8] + i.to_bytes(8, "big") + block[16:]
        md5.update(chunk)
        yield chunk


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
def test_swift_put_and_get_of_256_mib_keep_memory_flat(tmp_path) -> None:  # noqa: ANN001
    import swiftclient

    srv = LampiServer(data_dir=tmp_path / "data", port=free_port())
    srv.start()
    try:
        rc = srv.openrc()
        conn = swiftclient.Connection(
            authurl=rc["OS_AUTH_URL"], user=rc["OS_USERNAME"], key=rc["OS_PASSWORD"], auth_version="3",
            os_options={"user_domain_name": "Default", "project_domain_name": "Default",
                        "project_name": rc["OS_PROJECT_NAME"]},
        )
        url, token = conn.get_auth()
        conn.put_container("big")
        pid = srv.proc.pid  # type: ignore[union-attr]
        # warm up every code path once so that lazy imports and buffers are counted
        conn.put_object("big", "warm", contents=b"x" * (4 * CHUNK))
        conn.get_object("big", "warm")
        base = vm_kib(pid, "VmHWM")

        md5 = hashlib.md5()
        r = requests.put(f"{url}/big/obj", data=body(md5), headers={"X-Auth-Token": token}, timeout=300)
        assert r.status_code == 201, r.text
        assert r.headers["ETag"] == md5.hexdigest()

        got = hashlib.md5()
        n = 0
        with requests.get(f"{url}/big/obj", headers={"X-Auth-Token": token}, stream=True, timeout=300) as resp:
            assert resp.status_code == 200
            for chunk in resp.iter_content(CHUNK):
                got.update(chunk)
                n += len(chunk)
        assert n == SIZE and got.hexdigest() == md5.hexdigest()
        # a ranged read of the middle streams too
        with requests.get(f"{url}/big/obj", headers={"X-Auth-Token": token, "Range": f"bytes={CHUNK}-{SIZE - CHUNK - 1}"},
                          stream=True, timeout=300) as resp:
            assert resp.status_code == 206
            assert sum(len(c) for c in resp.iter_content(CHUNK)) == SIZE - 2 * CHUNK

        growth = vm_kib(pid, "VmHWM") - base
        print(f"peak RSS growth: {growth / 2**20:.1f} MiB")
        assert growth < LIMIT, f"server peak RSS grew by {growth / 2**20:.1f} MiB for a {SIZE // 2**20} MiB object"
    finally:
        srv.stop()
