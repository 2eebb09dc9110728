"""NexusInfo: what the control plane reads from etcd to pick a restarted nexus's children.

``{"clean_shutdown": bool, "children": [{"uuid": <the child URI's uuid=>, "healthy": bool}]}`` at the
CreateNexus ``nexus_info_key`` (else the nexus uuid). It is put when io-engine puts it: at create
(after the children open, before the nexus is listed), add/remove child, a child's fault (never
the last healthy child: ``NexusService._set_child`` keeps that one healthy so the control plane
rebuilds from it), rebuild completion, shutdown and destroy.

As io-engine does, new I/O is held while a put is in flight (the published multipath device is
suspended without flushing: I/O queues, nothing fails), so no write is acknowledged while etcd
still calls a stale child healthy. A put that fails after all its tries leaves I/O held and shuts
the nexus down; a failed put at shutdown or destroy is only logged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from ..kernel.errors import KernelError
from ..persistent_store import NoStore, StoreUnavailable

log = logging.getLogger(__name__)


def key_of(row) -> str:
    return row.nexus_info_key or row.uuid


def nexus_info(row, kids, without: str | None = None, clean_shutdown: bool | None = None) -> dict:
    """The JSON value, children in the order they joined (io-engine appends them)."""
    ordered = sorted((k for k in kids if k.uri != without), key=lambda k: k.id)
    return {
        "clean_shutdown": row.clean_shutdown if clean_shutdown is None else clean_shutdown,
        "children": [{"uuid": k.device_uuid or "", "healthy": bool(k.healthy)} for k in ordered],
    }


class InfoPublisher:
    def __init__(self, pstore=None):
        self.pstore = pstore or NoStore()

    @property
    def enabled(self) -> bool:
        return self.pstore.enabled

    def put(self, row, kids, stack=None, without: str | None = None, clean_shutdown: bool | None = None) -> None:
        """Put the NexusInfo; with ``stack`` (a live nexus) its I/O is held during the put and,
        when the put fails, stays held. Raises StoreUnavailable."""
        if not self.pstore.enabled:
            return
        value = nexus_info(row, kids, without, clean_shutdown)
        with self._held(stack) as hold:
            try:
                self.pstore.put(key_of(row), value)
            except StoreUnavailable:
                hold.keep = True
                raise

    @contextmanager
    def _held(self, stack) -> Iterator[_Hold]:
        hold = _Hold()
        if stack is None or not stack.exists():
            yield hold
            return
        stack.ctl.suspend(stack.top_name, noflush=True)
        try:
            yield hold
        finally:
            if not hold.keep:
                try:
                    stack.ctl.resume(stack.top_name)
                except KernelError as exc:
                    log.error("nexus %s: resuming I/O after the NexusInfo put: %s", stack.uuid, exc)


class _Hold:
    keep = False  # a failed put leaves I/O held (the nexus shuts down next)
