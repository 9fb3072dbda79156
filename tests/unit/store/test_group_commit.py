"""SQLite group commit (``SQLiteMetaStore._tx``): write transactions queued while one
commits share the next COMMIT, each in its own savepoint. A failing one must leave no
trace and must not disturb the others; nobody hears back before the COMMIT."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

from lampi.core import errors
from lampi.core.models import Domain, Project
from lampi.store.meta.sqlite import SQLiteMetaStore


async def test_grouped_writes_are_isolated_and_committed(tmp_path) -> None:  # noqa: ANN001
    meta = SQLiteMetaStore(tmp_path / "meta.db")
    other = SQLiteMetaStore(tmp_path / "meta.db")  # another worker's view of the same file
    try:
        await meta.create_domain(Domain("default", "Default"))
        gate, entered = threading.Event(), threading.Event()

        def hold(c: sqlite3.Connection) -> None:  # keeps the writer busy while the rest queue up
            entered.set()
            assert gate.wait(10)

        def failing(c: sqlite3.Connection) -> None:  # writes, then fails: must be undone alone
            c.execute("INSERT INTO project_quotas (project_id, max_bytes) VALUES ('ghost', 1)")
            raise errors.Conflict("boom")

        first = asyncio.ensure_future(meta._tx(hold))
        assert await asyncio.to_thread(entered.wait, 10)
        projects = [Project(f"p{i}", f"name{i}", "default", "") for i in range(20)]
        writes = [asyncio.ensure_future(meta.create_project(p)) for p in projects[:10]]
        writes.append(asyncio.ensure_future(meta._tx(failing)))
        writes.append(asyncio.ensure_future(meta.create_project(Project("dup", "name0", "default", ""))))  # name taken
        writes += [asyncio.ensure_future(meta.create_project(p)) for p in projects[10:]]
        await asyncio.sleep(0.05)
        assert meta._wq.qsize() == len(writes)  # all queued behind ``hold``: one group
        assert not any(w.done() for w in writes)  # nobody answered before a commit
        gate.set()
        await first
        results = await asyncio.gather(*writes, return_exceptions=True)
        assert isinstance(results[10], errors.Conflict) and results[10].message == "boom"
        assert isinstance(results[11], errors.Conflict)
        assert [r.id for r in results[:10] + results[12:]] == [p.id for p in projects]
        # committed, as seen through another connection; the failed ones left nothing
        assert sorted(p.id for p in await other.list_projects()) == sorted(p.id for p in projects)
        assert await other.get_project("dup") is None
        quotas = await other._run(lambda c: c.execute("SELECT COUNT(*) FROM project_quotas").fetchone()[0])
        assert quotas == 0
    finally:
        await meta.close()
        await other.close()


async def test_point_reads_on_the_loop_see_commits_and_fall_back_when_busy(tmp_path) -> None:  # noqa: ANN001
    """``_read`` runs a lookup on the event loop and sees every commit at once; when the
    database answers busy (a checkpoint restarting the WAL, say) the read goes to the
    store's thread, which waits for the lock there instead of on the loop."""
    meta = SQLiteMetaStore(tmp_path / "meta.db")
    try:
        await meta.create_domain(Domain("default", "Default"))
        await meta.create_project(Project("p1", "one", "default", ""))
        await meta.set_project_quota("p1", {"bytes": 5})
        assert (await meta.get_project_quota("p1"))["bytes"] == 5
        await meta.set_project_quota("p1", {"bytes": 7})
        assert (await meta.get_project_quota("p1"))["bytes"] == 7  # a commit is seen at once
        assert meta._local.rconn is not None  # ... by the loop's own connection

        class Busy:  # what sqlite3 raises when the lock cannot be had at once
            def execute(self, *_a: object) -> None:
                raise sqlite3.OperationalError("database is locked")

        real = meta._local.rconn
        meta._local.rconn = Busy()
        on_thread = []
        run = meta._run

        async def spy(fn):  # noqa: ANN001, ANN202
            on_thread.append(fn)
            return await run(fn)

        meta._run = spy
        assert (await meta.get_project_quota("p1"))["bytes"] == 7
        assert len(on_thread) == 1
        meta._local.rconn = real
        assert (await meta.get_project_quota("p1"))["bytes"] == 7 and len(on_thread) == 1
    finally:
        await meta.close()


async def test_the_workers_writers_take_turns_on_a_lock_file(tmp_path) -> None:  # noqa: ANN001
    """Each worker's writer takes its turn on an flock of ``meta.db.writers`` (private to
    the service user) around its transaction: while one writes, another worker's writer
    waits in the kernel (woken as soon as the turn is free) rather than in SQLite's busy
    handler's sleeps, which let the writer holding the database take every turn."""
    import fcntl
    import os

    meta = SQLiteMetaStore(tmp_path / "meta.db")
    try:
        await meta.create_domain(Domain("default", "Default"))
        turn_file = tmp_path / "meta.db.writers"
        assert turn_file.exists() and (turn_file.stat().st_mode & 0o777) == 0o600
        taken, inside, gate = threading.Event(), threading.Event(), threading.Event()

        def hold(c: sqlite3.Connection) -> None:
            inside.set()
            assert gate.wait(10)

        fut = asyncio.ensure_future(meta._tx(hold))
        assert await asyncio.to_thread(inside.wait, 10)
        probe = os.open(turn_file, os.O_RDWR)  # another worker's open of the file
        try:
            try:
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                taken.set()  # the writer holds its turn while its transaction runs
            gate.set()
            await fut
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again after the commit
        finally:
            os.close(probe)
        assert taken.is_set()
    finally:
        gate.set()
        await meta.close()
