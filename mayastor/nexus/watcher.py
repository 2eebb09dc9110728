"""Event-driven fault detection: one thread waits for device-mapper events (DM_DEV_ARM_POLL + poll
on its own control fd), then reads each nexus's raid status and persists what changed:

* a leg turned 'D' -> its child FAULTED / IO_FAILURE (with the fault time);
* a leg resyncing ('a') and then in sync ('A') -> the rebuild job completes, the child is ONLINE;
* the top device's path failed (no healthy child left, I/O now queued) -> every child that was
  still online is FAULTED and so is the nexus.

Idle means idle: without events the thread sleeps. A dm event (any table swap, a leg's fault, a
resync's end, a multipath path failure all raise one) makes it check every nexus in full; a nexus
busy with a call is looked at again a tick (1 s) later, and so is every nexus while md resyncs one.
A sweep every 30 s is the safety net for a missed event: it reads each nexus's raid and top status
and looks further (rows, database) only where that changed since the last look.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import select

from ..errors import DeadlineExceeded
from ..kernel import block
from ..kernel.dm import DeviceMapper
from ..kernel.errors import KernelError
from ..store import Nexus as Row
from ..store import RebuildJob
from ..store.models import RebuildState
from . import state as S

log = logging.getLogger(__name__)


class NexusWatcher:
    def __init__(self, svc, tick: float = 1.0, sweep: float = 30.0):
        self.svc, self.tick, self.sweep = svc, tick, sweep
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.events = 0
        self._seen: dict[str, tuple] = {}  # nexus -> its kernel status at the last look
        self._resyncing = False  # md resyncs a leg of some nexus: look every tick

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="nexus-watcher", daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        """The thread runs (a round may wait long on a nexus lock, e.g. behind a verify: that is
        not a hang, so no round deadline here)."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        ctl = DeviceMapper()
        event = True  # the first round looks at everything
        retry: set[str] = set()
        last_sweep = time.monotonic()
        try:
            while not self._stop.is_set():
                try:
                    ctl.arm_poll()  # before looking: an event meanwhile wakes the next wait at once
                    if event or self._resyncing:
                        retry = self.scan()
                        last_sweep = time.monotonic()
                    elif retry:
                        retry = self.scan(only=retry)
                    elif time.monotonic() - last_sweep >= self.sweep:
                        retry = self.scan(full=False)
                        last_sweep = time.monotonic()
                    wait = self.tick if retry or self._resyncing else self.sweep - (time.monotonic() - last_sweep)
                    event = ctl.poll_event(max(wait, 0.0))
                    if event:
                        self.events += 1
                except Exception:  # the watcher must outlive any one bad round
                    log.exception("nexus watcher round failed")
                    event = True
                    self._stop.wait(self.tick)
        finally:
            ctl.close()

    def scan(self, only: set[str] | None = None, full: bool = True) -> set[str]:
        """Check the running nexuses (``only`` these); ``full`` False looks past the kernel status
        only where it changed. Returns the nexuses skipped because a call held their lock."""
        with self.svc.store.session() as s:
            uuids = list(
                s.scalars(
                    select(Row.uuid).where(Row.lifecycle == "ready", Row.state.notin_(("shutting_down", "shutdown")))
                )
            )
        for gone in set(self._seen) - set(uuids):
            del self._seen[gone]
        if only is None:
            self._resyncing = False
        busy = set()
        for uuid in uuids:
            if only is not None and uuid not in only:
                continue
            try:
                with self.svc.locks.hold(f"nexus:{uuid}", timeout=0.05):
                    self.check(uuid, full=full)
            except DeadlineExceeded:
                busy.add(uuid)
            except KernelError as exc:
                log.warning("nexus %s: %s", uuid, exc)
        return busy

    def check(self, uuid: str, full: bool = True) -> None:
        svc = self.svc
        st = svc.stack(uuid)
        status = st.status()
        if status is None:
            return
        if status.sync_action not in ("idle", "frozen"):  # md copies: its end is looked for each tick
            self._resyncing = True
        top_failed = st.exists() and st.top_path_failed()
        seen = (status.health, status.sync_action, status.sync_current, top_failed)
        if not full and self._seen.get(uuid) == seen:
            return
        self._seen[uuid] = seen
        row, kids = svc.load_any(uuid)
        if row is None or row.state in ("shutting_down", "shutdown"):
            return
        by_slot = dict(enumerate(svc.raid_members(row, kids)))
        with svc.store.session() as s:  # md resyncs in progress: their end is _finish_jobs' to record
            resyncing = set(
                s.scalars(
                    select(RebuildJob.dst_uri).where(
                        RebuildJob.nexus_uuid == uuid, RebuildJob.state == RebuildState.RUNNING, RebuildJob.phase == ""
                    )
                )
            )
        changed = False
        for slot, char in enumerate(status.health):
            kid = by_slot.get(slot)
            if kid is None:
                continue
            new = S.from_health(char, kid.state, kid.reason, status.sync_action, "A" in status.health)
            if new is None or (new[0] == "online" and kid.uri in resyncing):
                continue  # a finished resync: job and child state change together in _finish_jobs
            log.info(
                "nexus %s: child %s %s -> %s (raid health %s, sync %s)",
                row.name,
                kid.uri,
                kid.state,
                new[0],
                status.health,
                status.sync_action,
            )
            faulted = new[0] == "faulted"
            reason = new[1]
            if faulted and svc.fenced(row, kid):
                # another nexus of the volume took the reservation: this one stops, as io-engine's
                # does, and neither retires the replica nor rebuilds onto it
                log.error(
                    "nexus %s: child %s: reservation conflict, another nexus holds it; shutting down", row.name, kid.uri
                )
                svc.shutdown_in_background(uuid)
                return
            if faulted:
                svc.forget_reservation(uuid, kid.id)  # taken again when the child comes back
                reason = svc.fault_reason(kid)
                why = "out of space" if reason == S.R_NO_SPACE else "I/O error"
                log.warning("nexus %s: child %s failed (%s); nexus continues on the others", row.name, kid.uri, why)
                svc.end_jobs(uuid, kid.uri, RebuildState.FAILED)
            svc.set_child(kid.id, new[0], reason, healthy=new[0] == "online" if not faulted else False, fault=faulted)
            changed = True
        if top_failed:
            if any(svc.fenced(row, k) for k in kids if k.state == "online"):
                # every leg failed at once and md marked none (it keeps the last one): a
                # reservation conflict on all of them is a preempt, not a lost volume
                log.error(
                    "nexus %s: reservation conflict on its children, another nexus holds them; shutting down", row.name
                )
                svc.shutdown_in_background(uuid)
                return
            for kid in kids:
                if kid.state == "online":
                    log.error("nexus %s: no healthy child left; I/O is held until one comes back", row.name)
                    svc.set_child(kid.id, "faulted", S.R_IO_FAILURE, healthy=False, fault=True)
                    changed = True
        if status.sync_action == "idle" and status.sync_current == status.sync_total:
            changed |= self._finish_jobs(row, kids, status)
        if changed:
            svc.refresh_state(uuid)
            svc.persist_info_unanswered(uuid)  # a retired child unhealthy, a rebuilt one healthy

    def _finish_jobs(self, row, kids, status) -> bool:
        svc = self.svc
        from ..store.models import utcnow as now

        done = False
        with svc.store.session() as s:
            jobs = list(
                s.scalars(
                    select(RebuildJob).where(
                        RebuildJob.nexus_uuid == row.uuid,
                        RebuildJob.state == RebuildState.RUNNING,
                        RebuildJob.phase == "",
                    )
                )
            )  # md's, not the copier's
        slots = {k.id: i for i, k in enumerate(svc.raid_members(row, kids))}
        for job in jobs:
            kid = next((k for k in kids if k.uri == job.dst_uri), None)
            slot = slots.get(kid.id) if kid is not None else None
            if kid is None or slot is None or slot >= len(status.health) or status.health[slot] != "A":
                continue
            data = svc.stack(row.uuid).leg_device(kid.id, "data")
            written = block.io_stats(data).write_sectors if data else job.checkpoint
            with svc.store.session() as s:
                j = s.get(RebuildJob, job.id)
                j.state, j.ended_at = RebuildState.COMPLETED, now()
                j.blocks_recovered = j.blocks_total
                j.blocks_transferred = max(written - j.checkpoint, 0) * block.SECTOR // j.block_size
            svc.set_child(kid.id, "online", S.R_NONE, healthy=True)
            log.info(
                "nexus %s: child %s in sync again (%s rebuild, %d blocks written)",
                row.name,
                kid.uri,
                "partial" if job.partial else "full",
                max(written - job.checkpoint, 0),
            )
            done = True
        if done:
            live = svc.stack(row.uuid).live_raid_table()
            if live is not None and live.rebuild:
                # as LVM does: drop 'rebuild' once done, else the next activation rebuilds again
                row2, kids2 = svc.load_any(row.uuid)
                svc.apply(row2, kids2)
        return done
