"""One daemon per node: exclusive locks held for the daemon's lifetime.

Two locks, both ``flock`` on files of their own (SQLite's own fcntl locks on the state file are
left alone): ``<state db>.lock`` beside the state file, so two daemons never share one state, and
``/run/mayastor/node-<node>.lock``, so two daemons never manage one node's kernel objects (each
would reconcile the other's as orphans). The holder's pid is written into both, so a second start
can name it. A filesystem without flock (some network filesystems) keeps only the node lock.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os

log = logging.getLogger(__name__)

RUN_DIR = "/run/mayastor"


class AlreadyRunning(Exception):
    pass


def _holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        pid = ""
    return f"pid {pid}" if pid.isdigit() else "another process"


def _take(path: str, what: str) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise AlreadyRunning(
            f"another mayastor daemon ({holder}) already serves {what} (it holds {path}); one daemon per node"
        ) from None
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
            log.warning("%s: this filesystem cannot lock files (%s); relying on the node lock", path, exc)
            return None
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def acquire(state_db: str, node: str) -> list[int]:
    """Lock the node and the state file, or raise AlreadyRunning naming the holder. The returned
    descriptors must stay open while the daemon runs."""
    os.makedirs(RUN_DIR, mode=0o755, exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(state_db)), exist_ok=True)
    held: list[int] = []
    try:
        for path, what in (
            (os.path.join(RUN_DIR, f"node-{node}.lock"), f"node {node}"),
            (state_db + ".lock", f"state {state_db}"),
        ):
            fd = _take(path, what)
            if fd is not None:
                held.append(fd)
    except BaseException:
        release(held)
        raise
    return held


def release(held: list[int]) -> None:
    for fd in held:
        os.close(fd)
    held.clear()
