"""Per-object locks: calls on different pools never wait for each other (Mayastor keeps a lock per
pool for pool and replica calls). A lock not taken in time is DEADLINE_EXCEEDED, as upstream."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

from .errors import DeadlineExceeded

DEFAULT_TIMEOUT = 15.0  # Mayastor's DEFAULT_GRPC_TIMEOUT_SEC


class KeyedLocks:
    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.RLock] = {}

    def _lock(self, key: str) -> threading.RLock:
        with self._guard:
            return self._locks.setdefault(key, threading.RLock())

    @contextmanager
    def hold(self, key: str, timeout: float = DEFAULT_TIMEOUT) -> Iterator[None]:
        lock = self._lock(key)
        if not lock.acquire(timeout=timeout):
            raise DeadlineExceeded(f"{key} is busy with another call; gave up after {timeout:g}s")
        try:
            yield
        finally:
            lock.release()
