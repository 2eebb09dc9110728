"""Full rebuild of a new or replaced child by the Cython copier, correct under concurrent writes.

While it runs the nexus stack is   top (multipath) -> <nexus>-era (dm-era) -> raid (new child's slot
empty); the new child's data leg exists but md does not know it. The job row records the phase, the
copy checkpoint and the era the current pass began in, so a restarted daemon carries on:

  copy   the ranges a healthy child holds (its thin mapping when it is a local replica, else all of
         it; all-zero chunks skipped on a discarded target) onto the new child, paced and checkpointed;
  delta  re-copy the blocks era reports written since the pass began, while that is large;
  final  under the nexus lock, suspend the top (I/O held), copy the last delta, suspend the raid,
         zero every in-sync leg's superblock and load the raid with the new child and `nosync`
         (md takes the legs as identical: they are), point the top back at the raid and resume.
         The hold lasts one small delta copy and two table swaps. The nexus's metadata epoch goes
         up; children left out keep an older epoch and come back through a full rebuild.
"""

from __future__ import annotations

import logging
import os
import threading
from contextlib import AbstractContextManager
from typing import Any, Protocol

from sqlalchemy import select

from ..kernel import block, era, loop
from ..kernel.errors import KernelError
from ..store import Nexus as NexusRow
from ..store import NexusChild as ChildRow
from ..store import RebuildJob
from ..store.db import Store, required
from ..store.models import RebuildState
from .copier import CopyJob, Progress, Stopped

log = logging.getLogger(__name__)

MiB = 1 << 20
ERA_DIR = "/run/mayastor/era"
ERA_META_BYTES = 32 * MiB  # sparse on tmpfs; era needs ~4 bytes per 1 MiB block plus its writesets
DELTA_ROUNDS = 8
FINAL_DELTA = 32 * MiB  # copied with I/O held: the bound on the pause writers see


class RebuildFailed(Exception):
    pass


class RebuildNexus(Protocol):
    """What a full rebuild needs of the nexus service (nexus/core.py provides it); ``stack`` is the
    nexus's NexusStack, left untyped so that this package does not import the nexus's."""

    store: Store
    ctl: Any  # kernel.dm.DeviceMapper
    node: str
    rebuilds: RebuildManager

    @property
    def loop_tag(self) -> str: ...
    def lock(self, uuid: str) -> AbstractContextManager[Any]: ...
    def load(self, uuid: str) -> tuple[NexusRow, list[ChildRow]]: ...
    def stack(self, uuid: str) -> Any: ...
    def open_leg(self, st: Any, kid: ChildRow, row: NexusRow) -> Any: ...
    def data_offset(self, row: NexusRow) -> int: ...
    def is_local(self, kid: ChildRow) -> bool: ...
    def mapped_extents(self, kid: ChildRow) -> list[tuple[int, int]] | None: ...
    def resyncing_besides(self, row: NexusRow, kids: list[ChildRow], dst: ChildRow) -> bool: ...
    def swap_in_copied_child(self, row: NexusRow, kids: list[ChildRow], dst: ChildRow) -> None: ...
    def mark_rebuilt(self, kid_id: int) -> None: ...
    def refresh_state(self, uuid: str) -> str: ...
    def persist_info_unanswered(self, uuid: str) -> None: ...
    def rebuild_failed(self, uuid: str, uri: str) -> None: ...


class FullRebuild:
    """One job: a thread that runs the phases above for child ``dst_uri`` of nexus ``uuid``."""

    def __init__(self, svc: RebuildNexus, uuid: str, job_id: int, dst_uri: str, paused: bool = False):
        self.svc, self.uuid, self.job_id, self.dst_uri = svc, uuid, job_id, dst_uri
        self._resume = threading.Event()
        if not paused:
            self._resume.set()
        self._stopped = False
        self._halted = False  # daemon shutdown: the job stays recorded as it was
        self._copy: CopyJob | None = None
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._main, name=f"rebuild-{uuid[:8]}", daemon=True)

    # control --------------------------------------------------------------------------------------
    def start(self) -> None:
        self.thread.start()

    def pause(self) -> None:
        with self._lock:
            self._resume.clear()
            if self._copy:
                self._copy.pause()
        self._set_job(state=RebuildState.PAUSED)

    def resume(self) -> None:
        with self._lock:
            self._resume.set()
            if self._copy:
                self._copy.resume()
        self._set_job(state=RebuildState.RUNNING)

    def stop(self, wait: float = 30.0) -> None:
        with self._lock:
            self._stopped = True
            self._resume.set()
            if self._copy:
                self._copy.stop()
        if threading.current_thread() is not self.thread and self.thread.is_alive():
            self.thread.join(wait)

    def halt(self, wait: float = 10.0) -> None:
        self._halted = True
        self.stop(wait)

    @property
    def paused(self) -> bool:
        return not self._resume.is_set()

    # persistence ----------------------------------------------------------------------------------
    def _job(self) -> RebuildJob:
        with self.svc.store.session() as s:
            return required(s, RebuildJob, self.job_id)

    def _set_job(self, **values) -> None:
        with self.svc.store.session() as s:
            j = s.get(RebuildJob, self.job_id)
            for k, v in values.items():
                setattr(j, k, v)

    def _on_checkpoint(self, base_read: int, base_written: int, persist_position: bool):
        def save(p: Progress) -> None:
            values = dict(bytes_read=base_read + p.read, bytes_written=base_written + p.written)
            if persist_position:
                values.update(checkpoint=p.position, blocks_recovered=p.position // 512)
            values["blocks_transferred"] = values["bytes_written"] // 512
            self._set_job(**values)

        return save

    # the job --------------------------------------------------------------------------------------
    def _main(self) -> None:
        from ..store.models import utcnow as now

        try:
            self._run()
        except Stopped:
            if self._halted:
                log.info(
                    "nexus %s: rebuild of %s halted at shutdown; it resumes at the next start", self.uuid, self.dst_uri
                )
                return
            log.info("nexus %s: rebuild of %s stopped", self.uuid, self.dst_uri)
            self._set_job(state=RebuildState.STOPPED, ended_at=now())
            self._drop_era_if_idle()
        except Exception as exc:  # noqa: BLE001 - every failure ends the job and is recorded
            log.error("nexus %s: rebuild of %s failed: %s", self.uuid, self.dst_uri, exc)
            self._set_job(state=RebuildState.FAILED, ended_at=now(), error=str(exc)[:1000])
            self.svc.rebuild_failed(self.uuid, self.dst_uri)
            self._drop_era_if_idle()
        finally:
            self.svc.rebuilds.forget(self)

    def _wait_if_paused(self) -> None:
        self._resume.wait()
        if self._stopped:
            raise Stopped()

    def _run_copy(self, copy: CopyJob) -> Progress:
        with self._lock:
            if self._stopped:
                raise Stopped()
            self._copy = copy
            if self.paused:
                copy.pause()
        try:
            return copy.run()
        finally:
            with self._lock:
                self._copy = None

    def _run(self) -> None:
        svc = self.svc
        with svc.lock(self.uuid):
            row, kids = svc.load(self.uuid)
            dst = next((k for k in kids if k.uri == self.dst_uri), None)
            if dst is None:
                raise RebuildFailed(f"child {self.dst_uri} is no longer in the nexus")
            src = self._source(kids, dst)
            st = svc.stack(self.uuid)
            sectors = row.size // block.SECTOR
            svc.open_leg(st, dst, row)  # opens the child and its leg devices
            src_data = st.leg_device(src.id, "data")
            dst_data = st.leg_device(dst.id, "data")
            job = self._job()
            fresh_era = not st.era_meta_devnum()
            meta = self._ensure_era(st, sectors)
            if fresh_era or job.era is None:
                # writes are tracked from here on: a copy that began untracked starts again
                since = era.checkpoint(svc.ctl, st.era_name)
                self._set_job(era=since, phase="copy", checkpoint=0, blocks_recovered=0)
                job = self._job()
            self._set_job(src_uri=src.uri)
        size = row.size
        rate = row.rebuild_rate
        if job.phase == "copy":
            self._copy_pass(src, src_data, dst_data, size, rate, job, svc.data_offset(row))
            self._set_job(phase="delta")
        recorded = self._job().era
        if recorded is None:  # set with phase "copy" above, before any copying
            raise RebuildFailed("the rebuild job has no era checkpoint")
        since = recorded
        for _ in range(DELTA_ROUNDS):
            self._wait_if_paused()
            nxt = era.checkpoint(svc.ctl, st.era_name)
            extents = self._written(st, meta, since, size)
            if sum(n for _, n in extents) <= FINAL_DELTA:
                break
            j = self._job()
            self._run_copy(
                CopyJob(
                    src_data,
                    dst_data,
                    extents,
                    skip_zero=False,
                    rate=rate,
                    on_checkpoint=self._on_checkpoint(j.bytes_read, j.bytes_written, False),
                )
            )
            since = nxt
            self._set_job(era=since)
        self._wait_if_paused()
        self._finish(st, meta, since, src_data, dst_data, dst)

    def _source(self, kids: list[ChildRow], dst: ChildRow) -> ChildRow:
        healthy = [k for k in kids if k.state == "online" and k.id != dst.id and k.position >= 0]
        if not healthy:
            raise RebuildFailed("no healthy child to rebuild from")
        local = [k for k in healthy if self.svc.is_local(k)]
        return (local or healthy)[0]

    def _copy_pass(
        self, src: ChildRow, src_data: str, dst_data: str, size: int, rate: int, job: RebuildJob, off: int
    ) -> None:
        skip_zero = self._discard_rest(dst_data, job.checkpoint, size)
        extents = [(0, size)]
        mapped = self.svc.mapped_extents(src)  # a local replica: only what its thin device maps
        if mapped is not None:
            # the leg's data starts at the nexus's data offset on the replica
            extents = [(max(s - off, 0), s + n - max(s, off)) for s, n in mapped if s + n > off]
            extents = [(s, min(n, size - s)) for s, n in extents if s < size]
        copy = CopyJob(
            src_data,
            dst_data,
            extents,
            skip_zero=skip_zero,
            rate=rate,
            start=job.checkpoint,
            on_checkpoint=self._on_checkpoint(job.bytes_read, job.bytes_written, True),
        )
        self._run_copy(copy)
        self._set_job(checkpoint=size, blocks_recovered=size // 512)

    def _discard_rest(self, dst_data: str, start: int, size: int) -> bool:
        """Discard the target from ``start`` (0, or the checkpoint of a resumed copy) to its end:
        a thin target then reads zeros there and stays thin, so the copy may skip all-zero chunks.
        Done again at every resume rather than remembered: what lies past the checkpoint is not
        copied yet, and the target has no raid slot, so nothing else writes it. False when the
        target cannot discard (the copy then writes zeros too)."""
        if block.discard_max_bytes(dst_data) <= 0 or start >= size:
            return False
        try:
            block.discard(dst_data, start, size - start)
            return True
        except OSError as exc:
            log.warning("rebuild of %s: discard failed (%s); copying zeros too", self.dst_uri, exc)
            return False

    def _written(self, st, meta: str, since: int, size: int) -> list[tuple[int, int]]:
        block_bytes = st.era_block_bytes
        runs = era.written_since(self.svc.ctl, st.era_name, meta, since)
        out = [(b * block_bytes, n * block_bytes) for b, n in runs]
        return [(s, min(n, size - s)) for s, n in out if s < size]

    def _md_busy(self, row, kids: list[ChildRow], dst: ChildRow) -> bool:
        """Is md resyncing another child (a partial rebuild)? The swap waits for it to end."""
        return self.svc.resyncing_besides(row, kids, dst)

    def _finish(self, st, meta: str, since: int, src_data: str, dst_data: str, dst: ChildRow) -> None:
        svc = self.svc
        while True:
            self._wait_if_paused()
            with svc.lock(self.uuid):
                row, kids = svc.load(self.uuid)
                if not self._md_busy(row, kids, dst):
                    break
            threading.Event().wait(1.0)
        with svc.lock(self.uuid):
            row, kids = svc.load(self.uuid)
            if self._stopped:
                raise Stopped()
            still = next((k for k in kids if k.uri == self.dst_uri), None)
            if still is None:
                raise RebuildFailed(f"child {self.dst_uri} left the nexus")
            dst = still
            if self._md_busy(row, kids, dst):
                raise RebuildFailed("md started resyncing another child during the final step; retry")
            sectors = row.size // block.SECTOR
            ctl = svc.ctl
            ctl.suspend(st.top_name)  # waits for I/O in flight; new I/O is held, not failed
            try:
                extents = self._written(st, meta, since, row.size)
                j = self._job()
                p = CopyJob(src_data, dst_data, extents, skip_zero=False).run()
                self._set_job(
                    bytes_read=j.bytes_read + p.read,
                    bytes_written=j.bytes_written + p.written,
                    blocks_transferred=(j.bytes_written + p.written) // 512,
                    phase="final",
                )
                svc.swap_in_copied_child(row, kids, dst)
            finally:
                # the top maps the raid again (the era layer is dropped below) and resumes
                st.load_top_over_raid(sectors)
                ctl.resume(st.top_name)
            from ..store.models import utcnow as now

            # the job ends before the child turns online: whoever sees it online finds the history
            self._set_job(
                state=RebuildState.COMPLETED, ended_at=now(), checkpoint=row.size, blocks_recovered=row.size // 512
            )
            svc.mark_rebuilt(dst.id)
            self._drop_era(st)
            svc.refresh_state(self.uuid)
            svc.persist_info_unanswered(self.uuid)  # healthy=true, as io-engine at rebuild completion
        log.info(
            "nexus %s: child %s rebuilt (full, %d bytes written)", self.uuid, self.dst_uri, self._job().bytes_written
        )

    # the era layer ----------------------------------------------------------------------------------
    def _era_file(self) -> str:
        return era_file(self.svc.node, self.uuid)

    def _ensure_era(self, st, sectors: int) -> str:
        """Put dm-era between the top and the raid (idempotent); returns its metadata device."""
        devnum = st.era_meta_devnum()
        if devnum is not None:  # always one of our loop devices (7:N)
            return f"/dev/loop{devnum.split(':')[1]}"
        os.makedirs(ERA_DIR, exist_ok=True)
        path = self._era_file()
        with open(path, "wb") as f:  # a new era layer starts with empty metadata
            f.truncate(ERA_META_BYTES)
        lo = loop.attach(path, tag=self.svc.loop_tag)
        try:
            st.ensure_era(f"7:{lo.index}", sectors)
            st.ensure_top(sectors)
        except (KernelError, OSError):
            if self.svc.ctl.exists(st.era_name):
                self.svc.ctl.remove(st.era_name)
            loop.detach(lo)
            raise
        return lo.path

    def _drop_era_if_idle(self) -> None:
        try:
            with self.svc.lock(self.uuid):
                st = self.svc.stack(self.uuid)
                if not self.svc.ctl.exists(st.era_name) or self.svc.rebuilds.others(self):
                    return
                row, _ = self.svc.load(self.uuid)
                st.point_top_at_raid(row.size // block.SECTOR)
                self._drop_era(st)
        except Exception as exc:  # noqa: BLE001
            log.warning("nexus %s: could not take the era layer out: %s", self.uuid, exc)

    def _drop_era(self, st) -> None:
        drop_era_layer(self.svc.ctl, st, self.svc.node)


def era_file(node: str, uuid: str) -> str:
    return os.path.join(ERA_DIR, f"{node}-{uuid}.meta")


def drop_era_layer(ctl, st, node: str) -> None:
    """Remove the era device (the top must no longer map it), detach and delete its metadata."""
    devnum = st.era_meta_devnum()
    if ctl.exists(st.era_name):
        ctl.remove(st.era_name)
    release_era_meta(devnum, node, st.uuid)


def release_era_meta(devnum: str | None, node: str, uuid: str) -> None:
    if devnum is not None and devnum.startswith("7:"):
        try:
            loop.detach(f"/dev/loop{devnum.split(':')[1]}")
        except OSError:
            pass
    try:
        os.unlink(era_file(node, uuid))
    except FileNotFoundError:
        pass


class RebuildManager:
    """The running full rebuilds of a node, by (nexus uuid, child uri)."""

    def __init__(self, svc: RebuildNexus):
        self.svc = svc
        self._jobs: dict[tuple[str, str], FullRebuild] = {}
        self._lock = threading.Lock()

    def start(self, uuid: str, job_id: int, dst_uri: str, paused: bool = False) -> FullRebuild:
        with self._lock:
            key = (uuid, dst_uri)
            if key in self._jobs:
                return self._jobs[key]
            r = FullRebuild(self.svc, uuid, job_id, dst_uri, paused=paused)
            self._jobs[key] = r
        r.start()
        return r

    def get(self, uuid: str, dst_uri: str) -> FullRebuild | None:
        with self._lock:
            return self._jobs.get((uuid, dst_uri))

    def forget(self, r: FullRebuild) -> None:
        with self._lock:
            if self._jobs.get((r.uuid, r.dst_uri)) is r:
                del self._jobs[(r.uuid, r.dst_uri)]

    def others(self, r: FullRebuild) -> bool:
        with self._lock:
            return any(k[0] == r.uuid and v is not r for k, v in self._jobs.items())

    def of_nexus(self, uuid: str) -> list[FullRebuild]:
        with self._lock:
            return [v for k, v in self._jobs.items() if k[0] == uuid]

    def stop_nexus(self, uuid: str) -> None:
        for r in self.of_nexus(uuid):
            r.stop()

    def halt_all(self) -> None:
        """Daemon shutdown: end the threads but leave the jobs running in SQLite (resumed at start)."""
        with self._lock:
            jobs = list(self._jobs.values())
        for r in jobs:
            r.halt()

    def resume_persisted(self) -> None:
        """At start: carry on with the full rebuilds that were running or paused."""
        with self.svc.store.session() as s:
            jobs = list(
                s.scalars(
                    select(RebuildJob).where(
                        RebuildJob.phase != "", RebuildJob.state.in_((RebuildState.RUNNING, RebuildState.PAUSED))
                    )
                )
            )
        for j in jobs:
            log.info(
                "nexus %s: resuming the rebuild of %s from byte %d (%s)", j.nexus_uuid, j.dst_uri, j.checkpoint, j.phase
            )
            self.start(j.nexus_uuid, j.id, j.dst_uri, paused=j.state == RebuildState.PAUSED)
