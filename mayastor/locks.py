"""Per-object locks: calls on different pools never wait for each other (Mayastor keeps a lock per
pool for pool and replica calls). A lock not taken in time is DEADLINE_EXCEEDED, as upstream.

How long a call waits follows the caller: the gRPC layer records the request's deadline
(``grpc-timeout``) with ``deadline()``, and a lock is waited for until then; a call without a
deadline waits up to ``NO_DEADLINE_WAIT``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from .errors import DeadlineExceeded

NO_DEADLINE_WAIT = 300.0
MAX_DEADLINE = 86400.0
_deadline: ContextVar[float | None] = ContextVar("mayastor_call_deadline", default=None)


@contextmanager
def deadline(seconds_left: float | None) -> Iterator[None]:
    """Calls made inside wait for locks at most ``seconds_left`` seconds from now (None: no deadline)."""
    if seconds_left is not None and seconds_left > MAX_DEADLINE:
        seconds_left = None  # grpc reports "no deadline" as an enormous time left
    token = _deadline.set(None if seconds_left is None else time.monotonic() + seconds_left)
    try:
        yield
    finally:
        _deadline.reset(token)


def wait_budget() -> float:
    """Seconds the current call may still wait."""
    d = _deadline.get()
    return NO_DEADLINE_WAIT if d is None else max(0.0, d - time.monotonic())


class KeyedLocks:
    """``hold(key)``: one caller at a time. ``shared(key)``/``exclusive(key)``: a pool's replica
    calls run side by side (shared) while pool-wide calls (destroy, export, grow) run alone."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.RLock] = {}
        self._shared_locks: dict[str, SharedLock] = {}

    def _lock(self, key: str) -> threading.RLock:
        with self._guard:
            return self._locks.setdefault(key, threading.RLock())

    @contextmanager
    def hold(self, key: str, timeout: float | None = None) -> Iterator[None]:
        lock = self._lock(key)
        wait = wait_budget() if timeout is None else timeout
        if not lock.acquire(timeout=wait):
            raise DeadlineExceeded(
                f"{key} is busy with another call; gave up after {wait:.3g}s (the caller's deadline)"
            )
        try:
            yield
        finally:
            lock.release()

    @contextmanager
    def shared(self, key: str) -> Iterator[None]:
        with self._mode(key, exclusive=False):
            yield

    @contextmanager
    def exclusive(self, key: str) -> Iterator[None]:
        with self._mode(key, exclusive=True):
            yield

    @contextmanager
    def _mode(self, key: str, exclusive: bool) -> Iterator[None]:
        with self._guard:
            lock = self._shared_locks.setdefault(key, SharedLock())
        wait = wait_budget()
        if not lock.acquire(exclusive, wait):
            raise DeadlineExceeded(
                f"{key} is busy with {'other calls' if exclusive else 'a pool-wide call'}; "
                f"gave up after {wait:.3g}s (the caller's deadline)"
            )
        try:
            yield
        finally:
            lock.release(exclusive)


class SharedLock:
    """Many holders in shared mode or one in exclusive mode; re-entrant per thread (a thread
    holding it exclusively may take it shared too). Waiting exclusive callers block new shared
    ones, so a pool destroy is not starved by a stream of replica calls."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._shared: dict[int, int] = {}  # thread -> depth
        self._owner: int | None = None
        self._depth = 0
        self._writers_waiting = 0

    def acquire(self, exclusive: bool, timeout: float) -> bool:
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                if exclusive:
                    self._depth += 1
                else:
                    self._shared[me] = self._shared.get(me, 0) + 1
                return True
            if exclusive:
                if me in self._shared:
                    raise RuntimeError("exclusive lock wanted by a thread that holds it shared")
                self._writers_waiting += 1
                try:
                    ok = self._cond.wait_for(lambda: self._owner is None and not self._shared, timeout)
                finally:
                    self._writers_waiting -= 1
                if ok:
                    self._owner, self._depth = me, 1
                return ok
            if me in self._shared:  # nested shared: never wait behind a writer (that would deadlock)
                self._shared[me] += 1
                return True
            ok = self._cond.wait_for(lambda: self._owner is None and not self._writers_waiting, timeout)
            if ok:
                self._shared[me] = 1
            return ok

    @property
    def writers_waiting(self) -> int:
        with self._cond:
            return self._writers_waiting

    def release(self, exclusive: bool) -> None:
        me = threading.get_ident()
        with self._cond:
            if exclusive:
                self._depth -= 1
                if self._depth == 0:
                    self._owner = None
            else:
                self._shared[me] -= 1
                if self._shared[me] == 0:
                    del self._shared[me]
            self._cond.notify_all()
