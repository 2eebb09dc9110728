"""A paced, pausable, checkpointed copy of byte extents from one block device to another.

The copy loop itself is Cython (_native.copy.copy_range, GIL released); this driver hands it one
chunk at a time so it can honour a rate limit, pause, stop and report progress between chunks."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .._native._buffer import AlignedBuffer
from .._native.copy import copy_range

MiB = 1 << 20
CHUNK = 8 * MiB  # work handed to Cython per call: control latency vs. call overhead
BUFFER = 1 * MiB  # one O_DIRECT read/write


class Stopped(Exception):
    """The copy was stopped before it finished."""


@dataclass
class Progress:
    position: int = 0  # every byte of the extents below this offset is done (the checkpoint)
    done: int = 0  # bytes of the extents walked (read or known zero)
    read: int = 0
    written: int = 0
    total: int = 0  # bytes in all extents


def remaining_extents(extents: list[tuple[int, int]], position: int) -> list[tuple[int, int]]:
    """The part of ``extents`` at or after ``position`` (resuming from a checkpoint)."""
    out = []
    for start, length in extents:
        end = start + length
        if end <= position:
            continue
        s = max(start, position)
        out.append((s, end - s))
    return out


class CopyJob:
    """Copy ``extents`` (byte offset, length; sorted) of ``src`` to the same offsets of ``dst``.

    ``skip_zero``: leave all-zero chunks unwritten (the destination must read zeros there).
    ``rate``: bytes per second of source walked, 0 for unlimited. ``on_checkpoint(progress)`` is
    called about every ``checkpoint_every`` seconds and at the end, from the copying thread."""

    def __init__(
        self,
        src: str,
        dst: str,
        extents: list[tuple[int, int]],
        *,
        skip_zero: bool = True,
        rate: int = 0,
        start: int = 0,
        direct: bool = True,
        on_checkpoint: Callable[[Progress], None] | None = None,
        checkpoint_every: float = 1.0,
    ):
        self.src, self.dst, self.skip_zero = src, dst, skip_zero
        self.extents = sorted(extents)
        self.rate = rate
        self.direct = direct
        self.on_checkpoint = on_checkpoint
        self.checkpoint_every = checkpoint_every
        self.progress = Progress(position=start, total=sum(n for _, n in self.extents))
        self.progress.done = self.progress.total - sum(n for _, n in remaining_extents(self.extents, start))
        self._resume = threading.Event()
        self._resume.set()
        self.parked = threading.Event()  # set while the copy waits in a pause
        self._stop = False

    # control, from any thread ------------------------------------------------------------------
    def pause(self) -> None:
        self._resume.clear()

    def resume(self) -> None:
        self._resume.set()

    def stop(self) -> None:
        self._stop = True
        self._resume.set()

    @property
    def paused(self) -> bool:
        return not self._resume.is_set()

    # the copy -----------------------------------------------------------------------------------
    def _open(self, path: str, flags: int) -> int:
        if self.direct:
            flags |= os.O_DIRECT
        return os.open(path, flags | os.O_CLOEXEC)

    def run(self) -> Progress:
        """Copy everything from the checkpoint on; raises Stopped if stopped, OSError on I/O errors."""
        buf = AlignedBuffer(BUFFER)
        src = self._open(self.src, os.O_RDONLY)
        try:
            dst = self._open(self.dst, os.O_WRONLY)
            try:
                self._copy(src, dst, buf)
                os.fsync(dst)
            finally:
                os.close(dst)
        finally:
            os.close(src)
        if self.on_checkpoint:
            self.on_checkpoint(self.progress)
        return self.progress

    def _copy(self, src: int, dst: int, buf: AlignedBuffer) -> None:
        p = self.progress
        began = time.monotonic()
        walked_since = 0
        last_checkpoint = began
        for start, length in remaining_extents(self.extents, p.position):
            pos, end = start, start + length
            while pos < end:
                if not self._resume.is_set():
                    self._checkpoint(dst)
                    self.parked.set()
                    self._resume.wait()
                    self.parked.clear()
                    began, walked_since = time.monotonic(), 0  # the pause does not earn rate credit
                if self._stop:
                    self._checkpoint(dst)
                    raise Stopped()
                n = min(CHUNK, end - pos)
                r, w = copy_range(src, dst, pos, n, buf, self.skip_zero)
                if r < n:
                    raise OSError(5, f"{self.src} ends at byte {pos + r}, before {end}")
                p.read += r
                p.written += w
                p.done += r
                pos += r
                p.position = pos
                walked_since += r
                if self.rate:
                    ahead = walked_since / self.rate - (time.monotonic() - began)
                    if ahead > 0:
                        time.sleep(ahead)
                now = time.monotonic()
                if now - last_checkpoint >= self.checkpoint_every:
                    self._checkpoint(dst)
                    last_checkpoint = now
        p.position = self.extents[-1][0] + self.extents[-1][1] if self.extents else p.position

    def _checkpoint(self, dst: int) -> None:
        # the destination must hold what the checkpoint claims before the checkpoint is recorded
        os.fsync(dst)
        if self.on_checkpoint:
            self.on_checkpoint(self.progress)
