"""Nexus calls that change a running nexus: children (add, remove, fault, offline/online), resize,
publish/unpublish and ANA, over the nexus core (core.py)."""

from __future__ import annotations

import logging
import uuid as _uuid

from sqlalchemy import func, select

from .. import validate
from ..errors import AlreadyExists, FailedPrecondition, Internal, InvalidArgument, MayastorError, NotFound
from ..exports import ANA_GROUPS, ANA_WIRE_TO_STATE, Export, Share
from ..kernel import block
from ..kernel.block import SECTOR
from ..kernel.errors import KernelError
from ..store import Nexus as Row
from ..store import NexusChild as ChildRow
from ..store import RebuildJob
from ..store.models import RebuildState
from . import state as S
from .children import device_for
from .core import BLOCK, NexusCore
from .uri import parse as parse_uri

log = logging.getLogger(__name__)

# ChildAction wire values
OFFLINE, ONLINE, FAULT_IO_ERROR, OFFLINE_PERMANENT = 0, 1, 2, 3


def namespace_uuid(name: str, uuid: str) -> str:
    """As io-engine: the published namespace's uuid/nguid is the nexus name when that is a UUID
    (the control plane names a nexus by its volume: Mayastor's CSI node plugin finds the device by
    ``uuid.<volume uuid>``, and a switchover to another node keeps the same identity), else the
    nexus uuid."""
    try:
        return str(_uuid.UUID(name))
    except ValueError:
        return uuid


class NexusOperations(NexusCore):
    # children -----------------------------------------------------------------------------------
    def add_child(self, uuid: str, uri: str, norebuild: bool = False):
        uuid = validate.uuid(uuid, "nexus uuid")
        p = parse_uri(uri)
        with self.lock(uuid):
            row, kids = self.running(uuid)
            if any(k.uri == p.uri for k in kids):
                raise AlreadyExists(f"child {uri} is already in nexus {uuid}")
            device_for(p, self.ctx).check()  # a path it may never open is refused before it is recorded
            with self.locks.hold("nexus-claims"), self.store.session() as s:
                clash = s.scalar(select(ChildRow).where(ChildRow.uri == p.uri))
                if clash is not None:
                    raise InvalidArgument(f"child {uri} belongs to nexus {clash.nexus_uuid}")
                pos = (s.scalar(select(func.max(ChildRow.position)).where(ChildRow.nexus_uuid == uuid)) or 0) + 1
                # metadata epoch -1: not in the raid until the copier has brought it level
                kid = ChildRow(
                    nexus_uuid=uuid,
                    uri=p.uri,
                    position=pos if not norebuild else -1,
                    state="degraded",
                    reason=S.R_OUT_OF_SYNC,
                    device_uuid=p.uuid,
                    healthy=False,
                    metadata_epoch=-1,
                )
                s.add(kid)
            row, kids = self.load(uuid)
            kid = self.child(kids, p.uri)
            if norebuild:  # recorded out of sync, outside the raid until a rebuild is started
                self.persist_info(uuid)
                return self.view(uuid)
            try:
                self._renumber(uuid)
                row, kids = self.load(uuid)
                self.open_leg(self.stack(uuid), kid, row)
                self.apply(row, kids)
            except BaseException as exc:
                with self.store.session() as s:
                    s.delete(s.get(ChildRow, kid.id))
                self.close_child(uuid, kid)
                self._renumber(uuid)
                row, kids = self.load(uuid)
                self.apply(row, kids)
                if isinstance(exc, (KernelError, OSError, ValueError)):
                    raise Internal(f"add child {uri}: {exc}") from None
                raise
            self.persist_info(uuid)  # upserted unhealthy until its rebuild completes
            self._start_full(row, kids, kid)
            self.refresh_state(uuid)
            return self.view(uuid)

    def _start_full(self, row: Row, kids: list[ChildRow], kid: ChildRow, paused: bool = False) -> None:
        """Record a full rebuild of ``kid`` and start the copier on it."""
        src = next((k.uri for k in kids if k.state == "online" and k.id != kid.id), "")
        with self.store.session() as s:
            for j in s.scalars(
                select(RebuildJob).where(
                    RebuildJob.nexus_uuid == row.uuid,
                    RebuildJob.dst_uri == kid.uri,
                    RebuildJob.state.in_((RebuildState.RUNNING, RebuildState.PAUSED)),
                )
            ):
                j.state = RebuildState.STOPPED
            job = RebuildJob(
                nexus_uuid=row.uuid,
                src_uri=src,
                dst_uri=kid.uri,
                state=RebuildState.RUNNING,
                partial=False,
                blocks_total=row.size // BLOCK,
                block_size=BLOCK,
                checkpoint=0,
                phase="copy",
            )
            s.add(job)
            s.flush()
            job_id = job.id
        self.rebuilds.start(row.uuid, job_id, kid.uri, paused=paused)

    def _renumber(self, uuid: str) -> None:
        """Slots are 0..n-1 in order (the raid table is positional)."""
        with self.store.session() as s:
            kids = list(
                s.scalars(
                    select(ChildRow)
                    .where(ChildRow.nexus_uuid == uuid, ChildRow.position >= 0)
                    .order_by(ChildRow.position)
                )
            )
            for i, k in enumerate(kids):
                k.position = i

    def _stop_copier(self, uuid: str, uri: str) -> None:
        """End a full rebuild onto ``uri`` (called without the nexus lock: the job may wait for it)."""
        r = self.rebuilds.get(uuid, uri)
        if r is not None:
            r.stop()

    def remove_child(self, uuid: str, uri: str):
        uuid = validate.uuid(uuid, "nexus uuid")
        self._stop_copier(uuid, uri)
        with self.lock(uuid):
            row, kids = self.running(uuid)
            kid = self.child(kids, uri)
            if len(kids) == 1:
                raise FailedPrecondition(f"cannot remove the last child of nexus {uuid}")
            self._check_not_last_healthy(kids, kid)
            self.persist_info(uuid, without=kid.uri)  # first, as io-engine: etcd never names a child gone
            with self.store.session() as s:
                s.delete(s.get(ChildRow, kid.id))
            self._renumber(uuid)
            row, rest = self.load(uuid)
            try:
                self.apply(row, rest)
            except (KernelError, OSError) as exc:
                raise Internal(f"remove child {uri}: {exc}") from None
            self.close_child(uuid, kid)
            self.end_jobs(uuid, kid.uri, RebuildState.STOPPED)
            self.refresh_state(uuid)
            return self.view(uuid)

    def _check_not_last_healthy(self, kids: list[ChildRow], kid: ChildRow) -> None:
        healthy = [k for k in kids if k.state == "online"]
        if kid.state == "online" and len(healthy) == 1:
            raise FailedPrecondition(f"child {kid.uri} is the last healthy child")

    def fault_child(self, uuid: str, uri: str):
        return self.child_operation(uuid, uri, OFFLINE_PERMANENT)

    def child_operation(self, uuid: str, uri: str, action: int):
        uuid = validate.uuid(uuid, "nexus uuid")
        if action not in (OFFLINE, ONLINE, FAULT_IO_ERROR, OFFLINE_PERMANENT):
            raise InvalidArgument(f"unknown child action {action}")
        if action != ONLINE:
            self._stop_copier(uuid, uri)
        with self.lock(uuid):
            row, kids = self.running(uuid)
            kid = self.child(kids, uri)
            if action == ONLINE:
                return self._online(row, kids, kid)
            state, reason = {
                OFFLINE: ("degraded", S.R_BY_CLIENT),
                FAULT_IO_ERROR: ("faulted", S.R_IO_FAILURE),
                OFFLINE_PERMANENT: ("faulted", S.R_BY_CLIENT),
            }[action]
            if (kid.state, kid.reason) == (state, reason):
                return self.view(uuid)
            self._check_not_last_healthy(kids, kid)
            self.set_child(kid.id, state, reason, healthy=False, fault=True)
            self.persist_info(uuid)
            row, kids = self.load(uuid)
            try:
                self.apply(row, kids)  # its slot becomes '- -'
            except (KernelError, OSError) as exc:
                raise Internal(f"take child {uri} out: {exc}") from None
            self.end_jobs(uuid, kid.uri, RebuildState.STOPPED)
            self.refresh_state(uuid)
            return self.view(uuid)

    def _online(self, row: Row, kids: list[ChildRow], kid: ChildRow):
        if kid.state == "online" or (kid.state == "degraded" and kid.reason == S.R_OUT_OF_SYNC):
            return self.view(row.uuid)
        if S.is_permanent_fault(kid.state, kid.reason):
            raise FailedPrecondition(f"child {kid.uri} was faulted permanently; remove it and add a new one")
        if self.needs_copy(row, kid) or kid.reason == S.R_REBUILD_FAILED:
            # its superblock predates the raid's current metadata: only a full copy brings it back
            with self.store.session() as s:
                s.get(ChildRow, kid.id).metadata_epoch = -1
            self.set_child(kid.id, "degraded", S.R_OUT_OF_SYNC, healthy=False)
            row, kids = self.load(row.uuid)
            try:
                self.open_leg(self.stack(row.uuid), kid, row)
                self.apply(row, kids)
            except (MayastorError, KernelError, OSError) as exc:
                self.set_child(kid.id, kid.state, kid.reason)
                if isinstance(exc, MayastorError):
                    raise
                raise Internal(f"online child {kid.uri}: {exc}") from None
            self._start_full(row, kids, self.child(kids, kid.uri))
            self.refresh_state(row.uuid)
            return self.view(row.uuid)
        self.set_child(kid.id, "degraded", S.R_OUT_OF_SYNC)
        row, kids = self.load(row.uuid)
        written = self._leg_writes(row.uuid, kid.id)
        try:
            self.apply(row, kids, revive=True)
        except (MayastorError, KernelError, OSError) as exc:
            self.set_child(kid.id, kid.state, kid.reason)
            if isinstance(exc, MayastorError):
                raise
            raise Internal(f"online child {kid.uri}: {exc}") from None
        self._start_job(row, kids, kid, partial=True, written=written)
        self.refresh_state(row.uuid)
        return self.view(row.uuid)

    # rebuild records (the kernel copies; the watcher finishes the job) ----------------------------
    def _leg_writes(self, uuid: str, cid: int) -> int:
        """Sectors written to a child's data leg so far (0 for a leg not created yet)."""
        data = self.stack(uuid).leg_device(cid, "data")
        return block.io_stats(data).write_sectors if data else 0

    def _start_job(self, row: Row, kids: list[ChildRow], kid: ChildRow, partial: bool, written: int) -> None:
        src = next((k.uri for k in kids if k.state == "online" and k.id != kid.id), "")
        with self.store.session() as s:
            for j in s.scalars(
                select(RebuildJob).where(
                    RebuildJob.nexus_uuid == row.uuid,
                    RebuildJob.dst_uri == kid.uri,
                    RebuildJob.state == RebuildState.RUNNING,
                )
            ):
                j.state = RebuildState.STOPPED
            s.add(
                RebuildJob(
                    nexus_uuid=row.uuid,
                    src_uri=src,
                    dst_uri=kid.uri,
                    state=RebuildState.RUNNING,
                    partial=partial,
                    blocks_total=row.size // BLOCK,
                    block_size=BLOCK,
                    checkpoint=written,
                )
            )

    def end_jobs(self, uuid: str, uri: str, state: str) -> None:
        from ..store.models import utcnow as now

        with self.store.session() as s:
            for j in s.scalars(
                select(RebuildJob).where(
                    RebuildJob.nexus_uuid == uuid, RebuildJob.dst_uri == uri, RebuildJob.state == RebuildState.RUNNING
                )
            ):
                j.state, j.ended_at = state, now()

    # rebuild control (the copier's full rebuilds) -----------------------------------------------
    def start_rebuild(self, uuid: str, uri: str):
        """Start a full rebuild of a child that is out of sync and not being rebuilt (e.g. added with
        norebuild, or whose rebuild was stopped)."""
        uuid = validate.uuid(uuid, "nexus uuid")
        with self.lock(uuid):
            row, kids = self.running(uuid)
            kid = self.child(kids, uri)
            if self.rebuilds.get(uuid, kid.uri) is not None:
                return self.view(uuid)
            if kid.state == "online":
                raise FailedPrecondition(f"child {uri} is in sync: nothing to rebuild")
            if kid.state == "faulted":
                raise FailedPrecondition(f"child {uri} is faulted: bring it online first")
            with self.store.session() as s:
                k = s.get(ChildRow, kid.id)
                k.metadata_epoch = -1
                if k.position < 0:
                    k.position = 1 << 20  # renumbered to the last slot below
            self._renumber(uuid)
            row, kids = self.load(uuid)
            kid = self.child(kids, uri)
            try:
                self.open_leg(self.stack(uuid), kid, row)
                self.apply(row, kids)
            except (KernelError, OSError) as exc:
                raise Internal(f"start rebuild of {uri}: {exc}") from None
            self._start_full(row, kids, kid)
            self.refresh_state(uuid)
            return self.view(uuid)

    def _copier(self, uuid: str, uri: str):
        uuid = validate.uuid(uuid, "nexus uuid")
        _row, kids = self.load(uuid)
        self.child(kids, uri)
        r = self.rebuilds.get(uuid, uri)
        if r is None:
            raise NotFound(f"no rebuild job for child {uri}")
        return r

    def stop_rebuild(self, uuid: str, uri: str):
        self._copier(uuid, uri).stop()
        return self.view(uuid)

    def pause_rebuild(self, uuid: str, uri: str):
        self._copier(uuid, uri).pause()
        return self.view(uuid)

    def resume_rebuild(self, uuid: str, uri: str):
        self._copier(uuid, uri).resume()
        return self.view(uuid)

    def set_rebuild_rate(self, uuid: str, rate: int):
        """Bytes per second a full rebuild of this nexus may copy (0 = unlimited); our extension.
        Applies to copy passes started after the call."""
        uuid = validate.uuid(uuid, "nexus uuid")
        if not 0 <= rate <= validate.U64_MAX:
            raise InvalidArgument("rebuild rate must be a uint64 (bytes per second)")
        with self.lock(uuid):
            self.load(uuid)
            with self.store.session() as s:
                s.get(Row, uuid).rebuild_rate = rate
            return self.view(uuid)

    # size -----------------------------------------------------------------------------------------
    def resize(self, uuid: str, requested_size: int):
        uuid = validate.uuid(uuid, "nexus uuid")
        with self.lock(uuid):
            row, kids = self.running(uuid)
            if requested_size == row.size:
                return self.view(uuid)
            if requested_size < row.size or requested_size % BLOCK:
                raise InvalidArgument(f"a nexus can only grow (now {row.size} bytes) by multiples of {BLOCK}")
            if self.rebuilds.of_nexus(uuid):
                raise FailedPrecondition(f"nexus {uuid} is rebuilding a child; resize it afterwards")
            if requested_size > validate.SIZE_MAX:
                raise FailedPrecondition(f"cannot grow nexus to {requested_size} bytes: no child is that large")
            old = row.size
            with self.store.session() as s:
                s.get(Row, uuid).size = requested_size
            row, kids = self.load(uuid)
            try:
                self.apply(row, kids)
            except InvalidArgument as exc:
                with self.store.session() as s:
                    s.get(Row, uuid).size = old
                raise FailedPrecondition(f"cannot grow nexus: {exc}; grow the replicas first") from None
            except (KernelError, OSError) as exc:
                raise Internal(f"resize nexus: {exc}") from None
            if row.published and row.share == Share.NVMF:
                self.target.revalidate(row.name)
            return self.view(uuid)

    # publish --------------------------------------------------------------------------------------
    def publish(self, uuid: str, share: int, allowed_hosts: list[str], key: str = ""):
        uuid = validate.uuid(uuid, "nexus uuid")
        if share == Share.ISCSI:
            raise InvalidArgument("iSCSI is not supported (NVMf only)")
        if share not in (Share.NONE, Share.NVMF):
            raise InvalidArgument(f"unknown share protocol {share}")
        hosts = validate.host_nqns(allowed_hosts)
        with self.lock(uuid):
            row, _kids = self.running(uuid)
            if row.published and row.share != share:
                raise InvalidArgument(f"nexus {uuid} is already published with another protocol")
            if share == Share.NVMF:
                with self.locks.hold("nexus-ana-groups"):  # two publishes never pick one group
                    grpid = row.ana_grpid or self._free_ana_group()
                    with self.store.session() as s:
                        r = s.get(Row, uuid)
                        r.ana_grpid, r.share, r.published, r.allowed_hosts = grpid, 1, True, hosts
                try:
                    self.publish_kernel(self.load(uuid)[0])
                except (KernelError, OSError, MayastorError) as exc:
                    if not row.published:
                        with self.store.session() as s:
                            r = s.get(Row, uuid)
                            r.ana_grpid, r.published, r.allowed_hosts = 0, False, []
                    if isinstance(exc, MayastorError):
                        raise
                    raise Internal(f"publish nexus {row.name}: {exc}") from None
            else:
                with self.store.session() as s:
                    r = s.get(Row, uuid)
                    r.share, r.published = 0, True
            return self.view(uuid)

    def publish_kernel(self, row: Row) -> None:
        """Export the nexus device (ALREADY_EXISTS when another object owns its NQN)."""
        self.target.expose(
            Export(
                row.name,
                row.uuid,
                self.stack(row.uuid).top_device(),
                tuple(row.allowed_hosts or []),
                (self.nexus_port, self.replica_port),
                (row.min_cntl_id, row.max_cntl_id),
                row.ana_grpid,
                row.ana_state or 1,
                namespace_uuid(row.name, row.uuid),
            )
        )

    def unpublish_kernel(self, row: Row) -> None:
        try:
            device = self.stack(row.uuid).top_device()
        except (KernelError, OSError):
            device = None
        self.target.withdraw(row.name, row.uuid, device, row.ana_grpid)

    def _free_ana_group(self) -> int:
        with self.store.session() as s:
            used = set(s.scalars(select(Row.ana_grpid)))
        free = next((g for g in ANA_GROUPS if g not in used), None)
        if free is None:
            raise FailedPrecondition("no free ANA group: at most 127 published nexuses per node")
        return free

    def unpublish(self, uuid: str):
        uuid = validate.uuid(uuid, "nexus uuid")
        with self.lock(uuid):
            row, _ = self.running(uuid)
            if row.share == Share.NVMF and row.published:
                self.unpublish_kernel(row)
            with self.store.session() as s:
                r = s.get(Row, uuid)
                r.share, r.published, r.allowed_hosts, r.ana_grpid = 0, False, [], 0
            return self.view(uuid)

    def get_ana_state(self, uuid: str) -> int:
        row, _ = self.load(validate.uuid(uuid, "nexus uuid"))
        if not (row.published and row.share == Share.NVMF):
            raise InvalidArgument(f"nexus {uuid} is not published over NVMf")
        return row.ana_state or 1

    def set_ana_state(self, uuid: str, ana_state: int):
        uuid = validate.uuid(uuid, "nexus uuid")
        if ana_state not in ANA_WIRE_TO_STATE:
            raise InvalidArgument(f"invalid ANA state {ana_state}")
        with self.lock(uuid):
            row, _ = self.running(uuid)
            if not (row.published and row.share == Share.NVMF):
                raise InvalidArgument(f"nexus {uuid} is not published over NVMf")
            self.target.set_ana_state([self.nexus_port, self.replica_port], row.ana_grpid, ana_state)
            with self.store.session() as s:
                s.get(Row, uuid).ana_state = ana_state
            return self.view(uuid)

    def data_sectors(self, row: Row) -> int:
        return row.size // SECTOR
