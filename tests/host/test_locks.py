"""Pool locks: replica calls side by side (shared), pool-wide calls alone (exclusive), waits that
follow the caller's deadline."""

import threading
import time

import pytest

from mayastor.errors import DeadlineExceeded
from mayastor.locks import KeyedLocks, SharedLock, deadline, wait_budget


def _in_thread(fn):
    out: list = []

    def run():
        try:
            out.append(fn())
        except Exception as exc:  # noqa: BLE001
            out.append(exc)
    t = threading.Thread(target=run)
    t.start()
    t.join(30)
    assert not t.is_alive()
    return out[0]


def test_shared_holders_run_side_by_side():
    locks = KeyedLocks()
    inside = threading.Barrier(4, timeout=10)

    def replica_call():
        with locks.shared("p"):
            inside.wait()  # all four are inside at once, or this times out
        return "ok"
    ts = [threading.Thread(target=replica_call) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert not inside.broken


def test_exclusive_waits_for_shared_and_blocks_new_shared():
    lock = SharedLock()
    order: list[str] = []
    assert lock.acquire(False, 1)  # a replica call is running

    def writer():
        assert lock.acquire(True, 30)
        order.append("writer")
        lock.release(True)
    w = threading.Thread(target=writer)
    w.start()
    deadline_at = time.monotonic() + 30
    while lock.writers_waiting == 0 and time.monotonic() < deadline_at:
        time.sleep(0.01)
    assert lock.writers_waiting == 1
    # a pool-wide call is waiting: a new replica call does not overtake it
    assert _in_thread(lambda: lock.acquire(False, 0.2)) is False
    order.append("reader done")
    lock.release(False)
    w.join(30)
    assert order == ["reader done", "writer"]


def test_reentrant_per_thread():
    locks = KeyedLocks()
    with locks.exclusive("p"):
        with locks.exclusive("p"), locks.shared("p"):
            pass
    with locks.shared("p"):
        with locks.shared("p"):
            with pytest.raises(RuntimeError):
                with locks.exclusive("p"):
                    pass
    with locks.exclusive("p"):  # everything was released
        pass


def test_waits_follow_the_callers_deadline():
    locks = KeyedLocks()
    assert wait_budget() == 300.0  # no deadline: a generous wait, not 15 s
    with deadline(5):
        assert 4 < wait_budget() <= 5
    with deadline(1e300):  # what grpc says when the caller set no deadline
        assert wait_budget() == 300.0
        with locks.hold("k"):
            pass
    with locks.hold("k"):

        def other():
            with deadline(0.3):
                with locks.hold("k"):
                    return "got it"
        got = _in_thread(other)
        assert isinstance(got, DeadlineExceeded) and "deadline" in str(got)
