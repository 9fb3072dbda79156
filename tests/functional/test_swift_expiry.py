"""Expiring objects: hidden at once, reclaimed (row, blob, counters) by the background
expirer that runs in every worker."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import swiftclient
from swiftclient import ClientException

from tests.functional.conftest import LampiServer


def _blob_files(data_dir: Path) -> set[Path]:
    return {p for p in (data_dir / "blobs").rglob("*") if p.is_file()}


def _conn(srv: LampiServer) -> swiftclient.Connection:
    rc = srv.openrc()
    return swiftclient.Connection(
        authurl=rc["OS_AUTH_URL"], user=rc["OS_USERNAME"], key=rc["OS_PASSWORD"], auth_version="3", retries=0,
        os_options={"user_domain_name": "Default", "project_domain_name": "Default",
                    "project_name": rc["OS_PROJECT_NAME"]},
    )


@pytest.mark.parametrize("workers", [2])
def test_expired_object_disappears_and_is_reclaimed(fresh_server: LampiServer, monkeypatch, workers: int) -> None:  # noqa: ANN001
    monkeypatch.setenv("LAMPI_EXPIRER_INTERVAL", "0.5")
    fresh_server.workers = workers
    fresh_server.start()
    conn = _conn(fresh_server)
    conn.put_container("c")
    conn.put_object("c", "keep", b"k" * 100)
    before = _blob_files(fresh_server.data_dir)
    # X-Delete-At is whole seconds (int(now) + after, as Swift): "1" can expire, and be
    # reclaimed, a few ms after the PUT; "3" leaves more than 2 s for the checks below.
    conn.put_object("c", "gone", b"g" * 70_000, headers={"X-Delete-After": "3"})  # a blob file: past inline_max
    put_done = time.time()
    (new_blob,) = _blob_files(fresh_server.data_dir) - before
    assert conn.head_container("c")["x-container-bytes-used"] == "70100"
    time.sleep(max(0.0, int(put_done) + 3 + 0.2 - time.time()))
    # at once for readers and listings
    with pytest.raises(ClientException) as exc:
        conn.get_object("c", "gone")
    assert exc.value.http_status == 404
    assert [o["name"] for o in conn.get_container("c")[1]] == ["keep"]
    # reclaimed within a few seconds: blob file gone, counters back
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        h = conn.head_container("c")
        if not new_blob.exists() and h["x-container-bytes-used"] == "100":
            break
        time.sleep(0.2)
    assert not new_blob.exists()
    h = conn.head_container("c")
    assert (h["x-container-object-count"], h["x-container-bytes-used"]) == ("1", "100")
    a = conn.head_account()
    assert (a["x-account-object-count"], a["x-account-bytes-used"]) == ("1", "100")
    assert conn.get_object("c", "keep")[1] == b"k" * 100  # the rest intact
    # a POST that pushes X-Delete-At into the future keeps the object
    conn.put_object("c", "saved", b"s", headers={"X-Delete-After": "4"})
    conn.post_object("c", "saved", headers={"X-Delete-After": "3600"})
    time.sleep(5)
    assert conn.get_object("c", "saved")[1] == b"s"
    # the passes ran under the "expirer" lease, held by one of the workers
    import sqlite3

    db = sqlite3.connect(str(fresh_server.data_dir / "meta.db"))
    holder, expires_at = db.execute("SELECT holder, expires_at FROM leases WHERE name = 'expirer'").fetchone()
    db.close()
    workers_pids = {int(p) for p in subprocess.run(["pgrep", "-P", str(fresh_server.proc.pid)], capture_output=True,
                                                   text=True).stdout.split()}
    assert int(holder.split(":")[1]) in workers_pids and expires_at > time.time() - 5


def test_expirer_disabled_keeps_rows_until_reclaimed(fresh_server: LampiServer, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("LAMPI_EXPIRER_INTERVAL", "0")
    fresh_server.start()
    conn = _conn(fresh_server)
    conn.put_container("c")
    conn.put_object("c", "gone", b"x" * 10, headers={"X-Delete-After": "1"})
    time.sleep(1.5)
    with pytest.raises(ClientException):
        conn.head_object("c", "gone")
    assert conn.get_container("c")[1] == []
    # hidden, but nothing reclaimed without the expirer
    assert conn.head_container("c")["x-container-bytes-used"] == "10"
