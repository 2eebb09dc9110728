"""The nexus's core: its lock, its rows and their state, the raid table they describe and the
kernel stack that carries it, the children's reservations, and the nexus's views.

SQLite holds the desired shape (children in slot order, each child's state) and the nexus state
machine (state.py); `apply()` makes the kernel carry the table those rows describe. Children taken
out (offline, faulted by the client) keep their slot as ``- -`` so md keeps their dirty regions in
the write-intent bitmap, and a returning child is resynced partially. Calls hold the nexus's lock.
The calls that change a running nexus are in operations.py, create and destroy in service.py;
watcher.py, recover.py, snapshot.py, the rebuilds and health/ use these public methods.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import select

from .. import validate
from ..errors import FailedPrecondition, Internal, InvalidArgument, MayastorError, NotFound
from ..exports import Share
from ..kernel import block
from ..kernel.block import SECTOR
from ..kernel.errors import KernelError
from ..naming import nqn_for
from ..netaddr import host_port
from ..persistent_store import StoreUnavailable
from ..rebuild.full import RebuildManager
from ..store import Nexus as Row
from ..store import NexusChild as ChildRow
from ..store import RebuildJob
from ..store.models import RebuildState
from ..store.models import utcnow as now
from . import fence, reservation
from . import state as S
from .children import ChildContext, ChildDevice, device_for
from .history import RebuildHistory
from .persist import InfoPublisher
from .reservation import Reservation
from .stack import META_BYTES, Leg, NexusStack
from .uri import parse as parse_uri

log = logging.getLogger(__name__)

BLOCK = 512  # the nexus's logical block (io-engine's): sizes are multiples of it, rebuilds count in it


@dataclass
class NexusView:
    row: Row
    children: list[ChildRow]
    device_uri: str
    rebuilds: int
    progress: dict[str, int]  # child uri -> rebuild progress %


class NexusCore:
    def __init__(
        self,
        node_name: str,
        store,
        ctl,
        tags,
        locks,
        replicas,
        target,
        ports: tuple[int, int],
        loop_tag: str,
        paths,
        pstore=None,
        meta_dir: str | None = None,
    ):
        self.node, self.store, self.ctl, self.tags, self.locks = node_name, store, ctl, tags, locks
        self.infos = InfoPublisher(pstore)  # NexusInfo in etcd (-p); nothing without it
        self.meta_dir = meta_dir  # new nexuses keep their raid metadata here, not on the children
        self.target = target
        self.nexus_port, self.replica_port = ports
        self.ctx = ChildContext(node_name, replicas, loop_tag, paths)
        self.rebuilds = RebuildManager(self)
        self.history = RebuildHistory(store)  # rebuild jobs as the API reports them
        self._reserved: set[tuple[str, int, int]] = set()  # (nexus, child id, key) holding its reservation

    # helpers ----------------------------------------------------------------------------------
    def stack(self, uuid: str) -> NexusStack:
        return NexusStack(self.ctl, self.tags, uuid, self.meta_dir, self.ctx.loop_tag)

    def lock(self, uuid: str):
        return self.locks.hold(f"nexus:{uuid}")

    def load(self, uuid: str) -> tuple[Row, list[ChildRow]]:
        with self.store.snapshot() as s:
            row = s.get(Row, uuid)
            if row is None or row.lifecycle != "ready":
                raise NotFound(f"nexus {uuid} not found")
            kids = list(s.scalars(select(ChildRow).where(ChildRow.nexus_uuid == uuid).order_by(ChildRow.position)))
        return row, kids

    def running(self, uuid: str) -> tuple[Row, list[ChildRow]]:
        row, kids = self.load(uuid)
        if row.state in ("shutting_down", "shutdown"):
            raise FailedPrecondition(f"nexus {uuid} is {row.state.replace('_', ' ')}")
        return row, kids

    def child(self, kids: list[ChildRow], uri: str) -> ChildRow:
        for k in kids:
            if k.uri == uri:
                return k
        raise NotFound(f"child {uri} not found in the nexus")

    def device_of(self, kid: ChildRow) -> ChildDevice:
        return device_for(parse_uri(kid.uri), self.ctx)

    def set_child(self, kid_id: int, state: str, reason: int, healthy: bool | None = None, fault: bool = False) -> None:
        """Persist a child's new state and, in the same transaction, the nexus state it implies.
        The last healthy child stays healthy (io-engine's rule for NexusInfo: the control plane
        then rebuilds the volume from the child with the newest data)."""
        with self.store.session() as s:
            k = s.get(ChildRow, kid_id)
            k.state, k.reason = state, reason
            if (
                healthy is False
                and k.healthy
                and not s.scalar(
                    select(ChildRow.id).where(
                        ChildRow.nexus_uuid == k.nexus_uuid, ChildRow.id != k.id, ChildRow.healthy.is_(True)
                    )
                )
            ):
                log.warning(
                    "nexus %s: %s is the last healthy child: it stays healthy in NexusInfo", k.nexus_uuid, k.uri
                )
                healthy = None
            if healthy is not None:
                k.healthy = healthy
            if fault:
                k.fault_at = now()
            s.flush()
            row = s.get(Row, k.nexus_uuid)
            if row.lifecycle == "ready" and row.state not in ("shutting_down", "shutdown"):
                kids = s.scalars(select(ChildRow).where(ChildRow.nexus_uuid == row.uuid, ChildRow.position >= 0))
                row.state = S.transition(row.state, S.derive([(c.state, c.reason) for c in kids]))

    def persist_info(self, uuid: str, without: str | None = None) -> None:
        """Put this nexus's NexusInfo (nothing without -p), its I/O held meanwhile. A put that
        fails after all its tries shuts the nexus down, as io-engine's does, and raises
        StoreUnavailable (INTERNAL)."""
        if not self.infos.enabled:
            return
        row, kids = self.load_any(uuid)
        try:
            self.infos.put(row, kids, self.stack(uuid), without=without)
        except StoreUnavailable as exc:
            log.error("nexus %s: %s; shutting the nexus down", row.name, exc)
            self.shutdown_in_background(uuid)
            raise

    def persist_info_unanswered(self, uuid: str) -> None:
        """persist_info for the watcher, the rebuilds and the start-up, which have no caller to
        answer: the failure is logged and the nexus shuts down all the same."""
        try:
            self.persist_info(uuid)
        except MayastorError:
            pass

    def shutdown_in_background(self, uuid: str) -> None:
        """Shut the nexus down from a thread of its own (the caller may hold the nexus lock)."""
        threading.Thread(target=self._shutdown_quietly, args=(uuid,), name=f"shutdown-{uuid[:8]}", daemon=True).start()

    def _shutdown_quietly(self, uuid: str) -> None:
        try:
            self.shutdown(uuid)
        except MayastorError as exc:
            log.error("nexus %s: self shutdown: %s", uuid, exc)

    def _put_clean_shutdown(self, row: Row, kids: list[ChildRow]) -> None:
        """Shutdown and destroy: clean_shutdown=true; a failure is only logged (io-engine)."""
        try:
            self.infos.put(row, kids, None, clean_shutdown=True)
        except StoreUnavailable as exc:
            log.error("nexus %s: %s", row.name, exc)

    def refresh_state(self, uuid: str) -> str:
        """Derive the nexus state from its children and persist the transition."""
        with self.store.session() as s:
            row = s.get(Row, uuid)
            if row is None or row.state in ("shutting_down", "shutdown"):
                return row.state if row else "unknown"
            kids = list(s.scalars(select(ChildRow).where(ChildRow.nexus_uuid == uuid)))
            new = S.derive([(k.state, k.reason) for k in kids if k.position >= 0])
            row.state = S.transition(row.state, new)
            return row.state

    @staticmethod
    def in_table(kid: ChildRow) -> bool:
        """Does the child get its real device in the raid table? Healthy and resyncing children do;
        faulted and offline ones have their slot pointed at dm-error (stack.ensure_error_leg)."""
        return kid.position >= 0 and (
            kid.state == "online" or (kid.state == "degraded" and kid.reason == S.R_OUT_OF_SYNC)
        )

    @staticmethod
    def needs_copy(row: Row, kid: ChildRow) -> bool:
        """A child whose raid superblock is not of the nexus's current metadata epoch (a new child,
        or one left out when the raid was last rebuilt from zeroed metadata) rejoins only through a
        full rebuild by the copier; until then it has no slot in the raid (dm-raid refuses both an
        empty '- -' slot for a device it never had and a fresh device without 'rebuild')."""
        return kid.metadata_epoch != row.metadata_epoch

    def raid_members(self, row: Row, kids: list[ChildRow]) -> list[ChildRow]:
        """The children with a slot in the raid table, in slot order (slot = index here)."""
        return sorted((k for k in kids if k.position >= 0 and not self.needs_copy(row, k)), key=lambda k: k.position)

    # the kernel side ----------------------------------------------------------------------------
    @staticmethod
    def data_offset(row: Row) -> int:
        """Where nexus byte 0 lies on a child: 0, or after the inline metadata of an old nexus."""
        return 0 if row.meta_local else META_BYTES

    def open_leg(self, st: NexusStack, kid: ChildRow, row: Row) -> Leg:
        child = self.device_of(kid)
        resv = reservation.of_row(row)
        dev = child.open_fenced(resv) if fence.enabled(resv) else child.open()
        self._reserve(row, kid, dev)
        need = row.size + self.data_offset(row)
        have = block.size_bytes(dev)
        if have < need:
            inline = "" if row.meta_local else f" ({META_BYTES >> 20} MiB metadata + {row.size} data)"
            raise InvalidArgument(f"child {kid.uri} is too small: {have} bytes, the nexus needs {need}{inline}")
        return st.ensure_leg(kid.id, dev, local_meta=row.meta_local)

    def _raid_targets(
        self, row: Row, kids: list[ChildRow], fresh: Collection[int] = frozenset(), nosync: bool = False
    ) -> tuple[list, bool]:
        """The raid table the rows describe, and whether md must re-add a leg it had faulted."""
        st = self.stack(row.uuid)
        sectors = row.size // SECTOR
        legs: list[Leg] = []
        rebuild: list[int] = []
        revive = False
        live_legs = 0
        for kid in self.raid_members(row, kids):
            if not self.in_table(kid):
                legs.append(st.ensure_error_leg(kid.id, sectors))
                continue
            live_legs += 1
            was_error = st.leg_is_error(kid.id)
            leg = self.open_leg(st, kid, row)
            if was_error:
                revive = True  # md re-adds the leg only at a resume
            if kid.id in fresh or not st.leg_has_superblock(kid.id):
                st.wipe_leg_superblock(kid.id)
                if not nosync:
                    rebuild.append(len(legs))
            legs.append(leg)
        if not live_legs:
            raise FailedPrecondition(f"nexus {row.uuid} has no child that can be opened")
        if rebuild and len(rebuild) == live_legs:
            rebuild = []  # nothing to copy from: every leg is new
            nosync = True
        return st.raid_table(legs, sectors, row.region_sectors, rebuild, nosync=nosync), revive

    def apply(
        self,
        row: Row,
        kids: list[ChildRow],
        fresh: Collection[int] = frozenset(),
        nosync: bool = False,
        revive: bool = False,
    ) -> None:
        """Load the raid table the rows describe; ``fresh`` child ids get wiped metadata and
        ``rebuild`` (unless ``nosync``). ``revive`` cycles suspend/resume so md re-adds legs it
        had faulted and whose devices are readable again (partial resync from the bitmap)."""
        st = self.stack(row.uuid)
        sectors = row.size // SECTOR
        targets, again = self._raid_targets(row, kids, fresh, nosync)
        revive = revive or again
        live = st.live_raid_table()
        if live is not None and [t.line() for t in self.ctl.table(st.raid_name)] == [t.line() for t in targets]:
            if revive:
                self.ctl.suspend(st.raid_name)
                self.ctl.resume(st.raid_name)
        else:
            st.load_raid(targets)
        st.ensure_top(sectors)
        if st.top_path_failed():
            st.reinstate()

    def swap_in_copied_child(self, row: Row, kids: list[ChildRow], dst: ChildRow) -> None:
        """The last step of a full rebuild (I/O held at the top): rebuild the raid from zeroed
        superblocks with the in-sync children and the copied one, all declared in sync."""
        st = self.stack(row.uuid)
        members = [
            k
            for k in kids
            if k.position >= 0 and (k.id == dst.id or (k.state == "online" and not self.needs_copy(row, k)))
        ]
        epoch = row.metadata_epoch + 1
        with self.store.session() as s:
            r = s.get(Row, row.uuid)
            r.metadata_epoch = epoch
            for k in members:
                s.get(ChildRow, k.id).metadata_epoch = epoch
        row2, kids2 = self.load(row.uuid)
        try:
            targets, _ = self._raid_targets(row2, kids2, nosync=True)
            self.ctl.suspend(st.raid_name)  # md writes its last superblocks now, not after the wipe
            try:
                for k in members:
                    st.wipe_leg_superblock(k.id)
                self.ctl.load(st.raid_name, targets)
            finally:
                self.ctl.resume(st.raid_name)
        except BaseException:
            with self.store.session() as s:
                s.get(Row, row.uuid).metadata_epoch = row.metadata_epoch
                for k in members:
                    s.get(ChildRow, k.id).metadata_epoch = k.metadata_epoch
            raise

    # the nexus side of a full rebuild (rebuild/full.py) -------------------------------------------
    @property
    def loop_tag(self) -> str:
        return self.ctx.loop_tag

    def is_local(self, kid: ChildRow) -> bool:
        """A replica of this node's (bdev:///), read without the network."""
        return parse_uri(kid.uri).scheme == "bdev"

    def mapped_extents(self, kid: ChildRow) -> list[tuple[int, int]] | None:
        """The byte extents a local replica child's thin device maps; None for any other child."""
        p = parse_uri(kid.uri)
        if p.scheme != "bdev":
            return None
        replica = self.ctx.replicas.by_name(p.path)
        return self.ctx.replicas.mapped_extents(replica) if replica is not None else None

    def resyncing_besides(self, row: Row, kids: list[ChildRow], dst: ChildRow) -> bool:
        """Is md resyncing a child other than ``dst`` (a partial rebuild)?"""
        return any(
            k.id != dst.id
            and k.position >= 0
            and k.state == "degraded"
            and k.reason == S.R_OUT_OF_SYNC
            and not self.needs_copy(row, k)
            for k in kids
        )

    def mark_rebuilt(self, kid_id: int) -> None:
        """A full rebuild brought the child level: online and healthy again."""
        self.set_child(kid_id, "online", S.R_NONE, healthy=True)

    def rebuild_failed(self, uuid: str, uri: str) -> None:
        """A full rebuild ended in an error: its target is faulted (Mayastor: RebuildFailed)."""
        try:
            with self.lock(uuid):
                row, kids = self.load_any(uuid)
                kid = next((k for k in kids if k.uri == uri), None)
                if row is not None and kid is not None and kid.state != "faulted":
                    self.set_child(kid.id, "faulted", S.R_REBUILD_FAILED, healthy=False, fault=True)
                    self.refresh_state(uuid)
                    self.persist_info(uuid)
        except MayastorError as exc:
            log.warning("nexus %s: recording the failed rebuild of %s: %s", uuid, uri, exc)

    def fault_reason(self, kid: ChildRow) -> int:
        """Why a child's I/O failed: NO_SPACE for a local replica whose pool is full (the agent
        brings such children back Online once there is room), else IO_FAILURE."""
        p = parse_uri(kid.uri)
        if p.scheme == "bdev" and self.ctx.replicas.out_of_space(p.path):
            return S.R_NO_SPACE
        return S.R_IO_FAILURE

    def _reserve(self, row: Row, kid: ChildRow, dev: str, preempt: bool = True) -> None:
        """Take the nexus's NVMe reservation on a child once per open (again after a restart or
        a fault); FailedPrecondition keeps a child we could not reserve out of the nexus.
        ``preempt`` False: acquire only, whatever the nexus's preempt policy."""
        resv = reservation.of_row(row)
        token = (row.uuid, kid.id, resv.key)
        if not fence.enabled(resv) or token in self._reserved:
            return
        self.device_of(kid).fence(dev, resv if preempt else resv.acquire_only())
        self._reserved.add(token)

    def fenced(self, row: Row, kid: ChildRow) -> bool:
        """Whether a child whose I/O failed was taken by another nexus's reservation."""
        resv = reservation.of_row(row)
        if not fence.enabled(resv) or (row.uuid, kid.id, resv.key) not in self._reserved:
            return False
        return self.device_of(kid).fenced(resv)

    def replica_share_changed(self, name: str, shared: bool) -> None:
        """A local replica ``name`` was just shared (``shared``) or is about to be unshared: a
        fencing nexus that uses it moves its leg onto the share (another host may reach it now,
        and a reservation must hold this nexus off too) or back onto the replica's own device.
        Onto the share it only acquires, never preempts: a host that took the reservation first
        owns the volume, and this nexus stops."""
        with self.store.snapshot() as s:
            kids = [
                k
                for k in s.scalars(select(ChildRow).where(ChildRow.uri.like(f"bdev:///{name}%")))
                if parse_uri(k.uri).path == name
            ]
        ids = {k.id for k in kids}
        for uuid in sorted({k.nexus_uuid for k in kids}):
            with self.lock(uuid):
                row, rows = self.load_any(uuid)
                resv = reservation.of_row(row) if row is not None else None
                if row is None or row.state in ("shutting_down", "shutdown") or not fence.enabled(resv):
                    continue
                for kid in (k for k in rows if k.id in ids and self.in_table(k)):
                    try:
                        self._move_local_leg(row, kid, resv, shared)
                    except (MayastorError, KernelError, OSError) as exc:
                        if not shared:  # the leg stays on the share and faults when it goes
                            log.warning("nexus %s: child %s stays on its share: %s", row.name, kid.uri, exc)
                            continue
                        # a leg others can reach that this nexus's reservation does not cover
                        log.error("nexus %s: child %s: %s; shutting down", row.name, kid.uri, exc)
                        self.shutdown_in_background(uuid)
                        break

    def _move_local_leg(self, row: Row, kid: ChildRow, resv: Reservation, shared: bool) -> None:
        child = self.device_of(kid)
        dev = child.open_fenced(resv) if shared else child.open()
        st = self.stack(row.uuid)
        if st.leg_is_on(kid.id, dev):
            return
        self.forget_reservation(row.uuid, kid.id)
        self._reserve(row, kid, dev, preempt=False)  # FailedPrecondition: someone else holds it
        st.ensure_leg(kid.id, dev, local_meta=row.meta_local)
        if not shared:
            child.close()  # the loopback controller and this node's admission
        log.info("nexus %s: child %s now through %s", row.name, kid.uri, "its share" if shared else "its own device")

    def forget_reservation(self, uuid: str, kid_id: int) -> None:
        """The child's reservation is to be taken again at its next open (it faulted: its target
        may have restarted and forgotten every registration)."""
        self._reserved = {t for t in self._reserved if t[:2] != (uuid, kid_id)}

    def close_child(self, row_uuid: str, kid: ChildRow) -> None:
        self.forget_reservation(row_uuid, kid.id)
        self.stack(row_uuid).remove_leg(kid.id)
        try:
            self.device_of(kid).close()
        except (KernelError, OSError, MayastorError) as exc:
            log.warning("closing child %s: %s", kid.uri, exc)

    def load_any(self, uuid: str) -> tuple[Row, list[ChildRow]]:
        with self.store.snapshot() as s:
            row = s.get(Row, uuid)
            kids = list(s.scalars(select(ChildRow).where(ChildRow.nexus_uuid == uuid).order_by(ChildRow.position)))
        return row, kids

    def shutdown(self, uuid: str) -> NexusView:
        """Stop I/O (queued, not failed), mark a clean shutdown; afterwards only Destroy works."""
        uuid = validate.uuid(uuid, "nexus uuid")
        self.rebuilds.stop_nexus(uuid)
        with self.lock(uuid):
            row, kids = self.load(uuid)
            if row.state == "shutdown":
                return self.view(uuid)
            with self.store.session() as s:
                r = s.get(Row, uuid)
                r.state = S.transition(r.state, "shutting_down")
            st = self.stack(uuid)
            try:
                if st.exists():
                    self.ctl.suspend(st.top_name, noflush=True)
            except KernelError as exc:
                with self.store.session() as s:
                    r = s.get(Row, uuid)
                    r.state = S.transition(r.state, S.derive([(k.state, k.reason) for k in kids]))
                raise Internal(f"shutdown nexus {row.name}: {exc}") from None
            with self.store.session() as s:
                r = s.get(Row, uuid)
                r.state = S.transition(r.state, "shutdown")
                r.clean_shutdown = True
                for k in s.scalars(select(ChildRow).where(ChildRow.nexus_uuid == uuid)):
                    if k.state == "online":
                        k.state, k.reason = "degraded", S.R_CLOSED
            self._put_clean_shutdown(row, kids)
            return self.view(uuid)

    # views -----------------------------------------------------------------------------------
    def view(self, uuid: str) -> NexusView:
        row, kids = self.load_any(uuid)
        if row is None:
            raise NotFound(f"nexus {uuid} not found")
        with self.store.session() as s:
            jobs = list(
                s.scalars(
                    select(RebuildJob).where(RebuildJob.nexus_uuid == uuid, RebuildJob.state == RebuildState.RUNNING)
                )
            )
        progress: dict[str, int] = {}
        if jobs:
            try:
                st = self.stack(uuid).status()
            except (KernelError, OSError, ValueError) as exc:  # listed all the same, without md's progress
                log.warning("nexus %s: no raid status: %s", row.name, exc)
                st = None
            pct = int(st.progress * 100) if st is not None and st.sync_action in ("recover", "resync") else 0
            for j in jobs:
                progress[j.dst_uri] = j.blocks_recovered * 100 // max(j.blocks_total, 1) if j.phase else pct
        return NexusView(row, kids, self.device_uri(row), len(jobs), progress)

    def device_uri(self, row: Row) -> str:
        if not row.published:
            return ""
        if row.share == Share.NVMF:
            return f"nvmf://{host_port(self.target.address, self.replica_port)}/{nqn_for(row.name)}"
        if row.share == Share.NONE:
            st = self.stack(row.uuid)
            return f"file://{st.top_device()}" if st.exists() else ""
        return ""
