"""Errors raised by the kernel adapters: errno plus the reason the kernel logged."""

from __future__ import annotations

import errno as _errno
import os


class KernelError(OSError):
    """A kernel operation failed. ``errno`` is the bare errno, ``reason`` the kernel log line."""

    def __init__(self, err: int, operation: str, reason: str = "", target: str = ""):
        self.operation = operation
        self.reason = reason
        self.target = target
        text = f"{operation} failed: {os.strerror(err)}"
        if reason:
            text += f" (kernel: {reason})"
        super().__init__(err, text)
        # OSError(errno, msg) sets filename=None; keep the target for messages.
        self.filename = target or None

    def __str__(self) -> str:
        suffix = f" [{self.target}]" if self.target else ""
        return f"{self.strerror}{suffix}"


class NotSupportedError(KernelError):
    """The running kernel lacks a facility (module missing, attribute absent)."""

    def __init__(self, operation: str, reason: str = "", target: str = ""):
        super().__init__(_errno.EOPNOTSUPP, operation, reason, target)
