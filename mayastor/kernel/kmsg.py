"""Read the kernel log (/dev/kmsg) to explain bare errnos.

Kernel interfaces (configfs writes, dm ioctls, /dev/nvme-fabrics) return only an errno; the
reason is printed to the kernel log. `KmsgCursor` remembers the end of the log before an
operation and returns the records written after it.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

KMSG_PATH = "/dev/kmsg"


@dataclass(frozen=True)
class KmsgRecord:
    priority: int  # syslog level (0 = emerg .. 7 = debug)
    facility: int
    sequence: int
    timestamp_us: int
    message: str


def parse_record(raw: str) -> KmsgRecord | None:
    """Parse one /dev/kmsg record: ``prio,seq,ts_us,flags[,...];message`` plus continuation lines."""
    head, sep, rest = raw.partition(";")
    if not sep:
        return None
    fields = head.split(",")
    if len(fields) < 3:
        return None
    try:
        prefix = int(fields[0])
        seq = int(fields[1])
        ts = int(fields[2])
    except ValueError:
        return None
    # Continuation lines (" KEY=value") carry device metadata, not the message.
    message = rest.split("\n", 1)[0]
    return KmsgRecord(priority=prefix & 7, facility=prefix >> 3, sequence=seq, timestamp_us=ts, message=message)


class KmsgCursor:
    """Position in the kernel log; `read_new()` returns the records logged since."""

    def __init__(self, path: str = KMSG_PATH):
        self._fd: int | None = None
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            os.lseek(self._fd, 0, os.SEEK_END)
        except OSError:
            # Without /dev/kmsg (unprivileged, containers) errors just carry strerror.
            self._close()

    def read_new(self) -> list[KmsgRecord]:
        records: list[KmsgRecord] = []
        if self._fd is None:
            return records
        while True:
            try:
                raw = os.read(self._fd, 8192)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # overwritten while we read: skip ahead
                    continue
                break
            if not raw:
                break
            rec = parse_record(raw.decode("utf-8", "replace"))
            if rec is not None:
                records.append(rec)
        return records

    def reason(self, *keywords: str) -> str:
        """The newest warning-or-worse message (or any message matching a keyword)."""
        records = self.read_new()
        self._close()
        return pick_reason(records, keywords)

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        self._close()

    def __enter__(self) -> KmsgCursor:
        return self

    def __exit__(self, *exc) -> None:
        self._close()


def pick_reason(records: list[KmsgRecord], keywords: tuple[str, ...] = ()) -> str:
    """Choose the message that explains a failure: keyword matches first, then errors/warnings."""
    if keywords:
        hits = [r for r in records if any(k in r.message for k in keywords)]
        if hits:
            return "; ".join(r.message for r in hits[-3:])
    severe = [r for r in records if r.priority <= 4]
    if severe:
        return "; ".join(r.message for r in severe[-3:])
    return ""
