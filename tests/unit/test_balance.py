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
