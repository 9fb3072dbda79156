"""lampi.gateway.balance.Loads: the connection counts the workers share."""

from __future__ import annotations

import os

from lampi.gateway.balance import Loads


def test_least_of_the_other_running_workers() -> None:
    loads = Loads(3)
    assert loads.least_of_others() is None  # none running
    loads.join(0)
    assert loads.least_of_others() is None  # only this one
    loads.note(5)
    other = Loads.__new__(Loads)  # worker 1's view of the same memory
    other._mem, other._slots, other.me = loads._mem, loads._slots, None
    other.join(1)
    other.note(2)
    assert loads.least_of_others() == 2
    assert other.least_of_others() == 5
    other.leave(1)  # died: not waited for
    assert loads.least_of_others() is None


def test_counts_are_shared_with_forked_workers() -> None:
    loads = Loads(2)
    loads.join(0)
    pid = os.fork()
    if pid == 0:  # the worker: its slot, seen by the parent
        try:
            loads.join(1)
            loads.note(7)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    assert loads.least_of_others() == 7


async def test_a_connection_another_worker_took_leaves_no_free_accept() -> None:
    """A worker holding more connections than another steps back from a pending one;
    when the other takes it, the next connection, arriving later, is stepped back from
    again (DEFER counts from it), not accepted at once because DEFER ran out meanwhile."""
    import asyncio
    import socket

    from aiohttp import web

    from lampi.gateway import balance

    loads = Loads(2)
    loads.join(0)
    other = Loads.__new__(Loads)
    other._mem, other._slots, other.me = loads._mem, loads._slots, None
    other.join(1)  # worker 1: no connections
    runner = web.AppRunner(web.Application())
    await runner.setup()
    listening = socket.create_server(("127.0.0.1", 0))
    site = balance.BalancedSite(runner, listening, loads=loads)
    await site.start()
    loop = asyncio.get_running_loop()
    clock = [loop.time()]
    loop.time = lambda: clock[0]  # type: ignore[method-assign]
    held = object()
    runner.server._connections[held] = None  # type: ignore[union-attr,index]  # this worker holds one
    clients = []
    try:
        def pending() -> None:
            clients.append(socket.create_connection(listening.getsockname()))

        pending()
        site._ready()
        assert site._since is not None and site._paused is not None  # stepped back
        listening.accept()[0].close()  # the other worker took it
        clock[0] += 1.0  # a second later, a new connection
        site._paused.cancel()
        site._resume()
        pending()
        site._ready()
        assert site._paused is not None and not site._pending  # stepped back again, not accepted
        clock[0] += balance.DEFER + 0.001  # no other worker came for it: taken after DEFER
        site._paused.cancel()
        site._resume()
        site._ready()
        assert len(site._pending) == 1
        await asyncio.gather(*site._pending, return_exceptions=True)
    finally:
        del loop.time
        runner.server._connections.pop(held, None)  # type: ignore[union-attr]
        for c in clients:
            c.close()
        await runner.cleanup()
