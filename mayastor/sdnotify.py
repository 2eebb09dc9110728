"""systemd's notify protocol (sd_notify(3)) without libsystemd: datagrams to $NOTIFY_SOCKET.

READY=1 once the node is reconciled and serving, STATUS= lines, STOPPING=1 at shutdown, and
WATCHDOG=1 at half the unit's WatchdogSec while the daemon's loop is alive. Without
$NOTIFY_SOCKET (not started by systemd) every call does nothing."""

from __future__ import annotations

import logging
import os
import socket
import threading

log = logging.getLogger(__name__)


def _address() -> str | None:
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return None
    return "\0" + path[1:] if path.startswith("@") else path  # "@name": the abstract namespace


def notify(*lines: str) -> bool:
    """Send ``KEY=value`` lines; True when a socket took them."""
    addr = _address()
    if addr is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.sendto("\n".join(lines).encode(), addr)
        return True
    except OSError as exc:
        log.warning("sd_notify %s: %s", lines, exc)
        return False


def watchdog_interval() -> float | None:
    """Seconds between pings (half of WATCHDOG_USEC), or None when the watchdog is off or meant
    for another process (WATCHDOG_PID)."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(int(usec) / 2e6, 0.1)
    except ValueError:
        return None


class Watchdog:
    """Pings while ``alive()`` holds; a wedged daemon stops pinging and systemd restarts it."""

    def __init__(self, alive):
        self.alive = alive
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        every = watchdog_interval()
        if every is None:
            return
        self._thread = threading.Thread(target=self._run, args=(every,), name="sd-watchdog", daemon=True)
        self._thread.start()

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            if self.alive():
                notify("WATCHDOG=1")
            else:
                log.error("watchdog: the daemon is not healthy; not pinging systemd")

    def stop(self) -> None:
        self._stop.set()
