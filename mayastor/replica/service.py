"""Replicas, snapshots and clones: thin devices of a pool, optionally shared over NVMe-oF.

A replica is a dm-thin volume named after its uuid; snapshots are read-only thin snapshots
(``create_snap`` with the origin suspended), clones are writable snapshots of a snapshot. All three
are rows of one table, told apart by ``kind``.

Locks, always taken in this order: the pool's shared lock (pool-wide calls — destroy, export,
grow — take it exclusively), the lock of each replica a call changes, then, only around
allocation (name and space checks, the intent row, the thin id and its thin-pool message), the
pool's allocation lock. Creating devices, sharing them and writing the catalog happen outside the
allocation lock, so concurrent creates on one pool wait for each other only while allocating.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from .. import crashpoint, validate
from ..errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    ReplicaNotFound,
    ResourceExhausted,
)
from ..exports import Export, NvmfTarget, Share
from ..kernel import block
from ..kernel.errors import KernelError
from ..locks import KeyedLocks
from ..pool.service import LivePool, PoolService
from ..store import Nexus as NexusRow
from ..store import Replica as Row
from ..store.db import Store, required

log = logging.getLogger(__name__)

MAX_THIN_ID = (1 << 24) - 1


@dataclass
class Usage:
    capacity_bytes: int
    allocated_bytes: int
    cluster_size: int
    num_clusters: int
    num_allocated_clusters: int
    allocated_bytes_snapshots: int
    num_allocated_clusters_snapshots: int


@dataclass
class ReplicaView:
    row: Row
    pool: LivePool
    uri: str
    usage: Usage
    num_clones: int = 0
    referenced_bytes: int = 0


def _kernel(what: str, exc: KernelError) -> Internal:
    return Internal(f"{what}: {exc}")


def _check_share(share: int) -> int:
    if share == Share.ISCSI:
        raise InvalidArgument("iSCSI shares are not supported (NVMf only)")
    if share not in (Share.NONE, Share.NVMF):
        raise InvalidArgument(f"unknown share protocol {share}")
    return share


@dataclass(frozen=True)
class ReplicaArgs:
    """CreateReplica's arguments; ``pool`` is the pool's name or uuid."""

    name: str
    uuid: str
    pool: str
    size: int
    thin: bool
    share: int = Share.NONE
    allowed_hosts: Sequence[str] = ()
    entity_id: str | None = None


class ReplicaService:
    def __init__(self, store: Store, pools: PoolService, target: NvmfTarget, locks: KeyedLocks):
        self.store, self.pools, self.target, self.locks = store, pools, target, locks
        # called with (replica name, shared) after a share and before an unshare (node.py wires
        # the nexus service here: a fencing nexus moves a local leg onto or off the share)
        self.share_listeners: list[Callable[[str, bool], None]] = []

    # helpers ------------------------------------------------------------------------------------
    def _row(self, uuid: str, kinds: tuple[str, ...] = ("replica", "clone")) -> Row:
        with self.store.session() as s:
            row = s.get(Row, uuid)
        if row is None or row.lifecycle != "ready" or row.kind not in kinds:
            raise NotFound(f"{'/'.join(kinds)} {uuid} not found")
        return row

    def _update(self, uuid: str, **values) -> Row:
        with self.store.session() as s:
            row = required(s, Row, uuid)
            for k, v in values.items():
                setattr(row, k, v)
        return row

    def dm_name(self, row: Row) -> str:
        return self.pools.live[row.pool_uuid].volume_dm_name(row)

    def by_name(self, name: str) -> Row | None:
        """A ready replica or clone of a live pool by name (nexus children address replicas so)."""
        with self.store.session() as s:
            row = s.scalar(select(Row).where(Row.name == name))
        if row is None or row.lifecycle != "ready" or row.kind == "snapshot" or row.pool_uuid not in self.pools.live:
            return None
        return row

    def out_of_space(self, name: str) -> bool:
        """Whether the pool of the replica ``name`` is out of data space (a write to an unallocated
        block fails with ENOSPC there: dm-thin runs with error_if_no_space)."""
        row = self.by_name(name)
        pool = self.pools.live.get(row.pool_uuid) if row is not None else None
        return pool is not None and pool.out_of_space()

    def device(self, row: Row) -> str:
        return self.pools.ctl.info(self.dm_name(row)).devnode

    def _device_or_none(self, row: Row) -> str | None:
        try:
            return self.device(row)
        except KernelError:
            return None

    def _expose(self, row: Row, hosts: list[str]) -> None:
        """Share over NVMe-oF; ALREADY_EXISTS when another object owns the NQN."""
        self.target.expose(Export(row.name, row.uuid, self.device(row), tuple(hosts), reservations=True))

    def _withdraw(self, row: Row) -> None:
        self.target.withdraw(row.name, row.uuid, self._device_or_none(row))

    @contextmanager
    def hold_for_io(self, uuid: str, pool_name: str | None = None, pool_uuid: str | None = None):
        """(row, device node) of a replica or clone, its pool locked meanwhile so that it is not
        destroyed or resized under a wipe or a scan."""
        uuid = validate.uuid(uuid, "replica uuid")
        row = self._row(uuid)
        pool = self.pools.live.get(row.pool_uuid)
        if pool is None:
            raise NotFound(f"replica {uuid} not found (its pool is not imported)")
        if pool_name is not None and pool_name != pool.name:
            self.pools.find(pool_name)  # NOT_FOUND when there is no such pool
            raise InvalidArgument(f"replica {uuid} is not in pool {pool_name}")
        if pool_uuid is not None and pool_uuid != pool.uuid:
            self.pools.find(pool_uuid)
            raise InvalidArgument(f"replica {uuid} is not in pool {pool_uuid}")
        with self.locks.shared(pool.uuid), self._one(uuid):
            row = self._row(uuid)  # it may have gone while we waited
            yield row, self.device(row)

    def _one(self, uuid: str):
        """The lock of one replica, snapshot or clone."""
        return self.locks.hold(f"replica:{uuid}")

    def _allocating(self, pool: LivePool):
        """The pool's allocation lock: held only while names, space and thin ids are handed out."""
        return self.locks.hold(f"alloc:{pool.uuid}")

    def mapped_extents(self, row: Row) -> list[tuple[int, int]]:
        """Byte extents of the replica that hold data (from its pool's thin metadata)."""
        pool = self.pools.live[row.pool_uuid]
        return pool.mapped_extents(row, block.size_bytes(self.device(row)))

    def _next_thin_id(self, pool: LivePool) -> int:
        with self.store.session() as s:
            top = s.scalar(select(func.max(Row.thin_id)).where(Row.pool_uuid == pool.uuid)) or 0
        catalogued = max((r["thin_id"] for r in pool.catalogued()), default=0)
        nxt = max(top, catalogued) + 1
        if nxt > MAX_THIN_ID:
            raise ResourceExhausted(f"pool {pool.name} has no free thin device ids")
        return nxt

    def _round(self, pool: LivePool, size: int) -> int:
        c = pool.cluster_size
        return -(-size // c) * c

    def reserved_thick(self, pool: LivePool, exclude: str | None = None) -> int:
        """Bytes promised to thick replicas beyond what they have allocated already (io-engine
        counts a thick replica's whole size as used from its creation)."""
        total = 0
        with self.store.session() as s:
            rows = list(
                s.scalars(select(Row).where(Row.pool_uuid == pool.uuid, Row.thin.is_(False), Row.kind != "snapshot"))
            )
        for r in rows:
            if r.uuid == exclude:
                continue
            total += max(r.size - self._mapped_bytes(pool, r), 0)
        return total

    def _check_space(self, pool: LivePool, size: int, thin: bool, exclude: str | None = None, already: int = 0) -> None:
        if size > pool.capacity:
            raise ResourceExhausted(f"{size} bytes do not fit pool {pool.name} of {pool.capacity} bytes")
        if not thin:
            free = pool.capacity - pool.used() - self.reserved_thick(pool, exclude)
            if size - already > free:
                raise ResourceExhausted(f"thick replica of {size} bytes: pool {pool.name} has {free} bytes free")

    # views --------------------------------------------------------------------------------------
    def view(self, row: Row, family: list[Row] | None = None) -> ReplicaView:
        """Row + live numbers. ``family``: rows that may be its snapshots/clones, when the caller
        has them already (listing N replicas then costs one query, not N)."""
        pool = self.pools.live[row.pool_uuid]
        c = pool.cluster_size
        mapped = self._mapped_bytes(pool, row)
        if family is None:
            with self.store.session() as s:
                family = list(s.scalars(select(Row).where(Row.source_uuid == row.uuid, Row.lifecycle == "ready")))
        snaps = [r for r in family if r.source_uuid == row.uuid and r.kind == "snapshot"]
        clones = sum(1 for r in family if r.source_uuid == row.uuid and r.kind == "clone")
        snap_bytes = 0
        for sr in snaps:
            snap_bytes += self._mapped_bytes(pool, sr)
        allocated = row.size if not row.thin and row.kind != "snapshot" else mapped
        usage = Usage(row.size, allocated, c, row.size // c, -(-allocated // c), snap_bytes, -(-snap_bytes // c))
        if row.share == Share.NVMF:
            uri = self.target.uri(row.name, row.uuid)
        else:
            uri = f"bdev:///{row.name}?uuid={row.uuid}"
        return ReplicaView(row, pool, uri, usage, clones, mapped)

    def _mapped_bytes(self, pool: LivePool, row: Row) -> int:
        """Bytes the thin device maps; 0 (and a log line) when its pool cannot say, so that one
        broken pool never fails a whole list."""
        try:
            return pool.mapped_bytes(row)
        except (KernelError, ValueError, IndexError) as exc:
            log.warning("replica %s: no usage from pool %s: %s", row.name, pool.name, exc)
            return 0

    def committed(self, pool: LivePool) -> int:
        """Σ sizes of the pool's replicas and clones (Mayastor's ``committed``)."""
        with self.store.session() as s:
            total = s.scalar(
                select(func.coalesce(func.sum(Row.size), 0)).where(
                    Row.pool_uuid == pool.uuid, Row.lifecycle == "ready", Row.kind.in_(("replica", "clone"))
                )
            )
        return int(total or 0)

    # create -------------------------------------------------------------------------------------
    def create(self, args: ReplicaArgs) -> ReplicaView:
        name, uuid, pool_id, size, thin = args.name, args.uuid, args.pool, args.size, args.thin
        share, allowed_hosts, entity_id = args.share, args.allowed_hosts, args.entity_id
        validate.name(name, "replica name")
        uuid = validate.uuid(uuid, "replica uuid")
        if size <= 0:
            raise InvalidArgument("replica size must be greater than 0")
        _check_share(share)
        hosts = validate.host_nqns(allowed_hosts)
        if entity_id is not None:
            validate.entity_id(entity_id)
        if not pool_id:
            raise InvalidArgument("pool name or uuid is required")
        pool = self.pools.find(pool_id)
        with self.locks.shared(pool.uuid), self._one(uuid):
            with self._allocating(pool):
                self._refuse_taken(name, uuid)
                size = self._round(pool, size)
                pool.prepare_volumes()
                self._check_space(pool, size, thin)
                row = self._allocate(pool, name, uuid, size, thin, share, hosts, entity_id, "replica", None)
            return self._finish_create(pool, row, hosts)

    def _allocate(
        self,
        pool: LivePool,
        name: str,
        uuid: str,
        size: int,
        thin: bool,
        share: int,
        hosts: list[str],
        entity_id: str | None,
        kind: str,
        origin: Row | None,
        txn_id: str | None = None,
    ) -> Row:
        """Record the intent and make the thin device in the pool (allocation lock held); the
        device is not active yet."""
        thin_id = self._next_thin_id(pool)
        try:
            with self.store.session() as s:  # intent first: reconcile rolls back what never finished
                s.add(
                    Row(
                        uuid=uuid,
                        name=name,
                        pool_uuid=pool.uuid,
                        thin_id=thin_id,
                        size=size,
                        thin=thin,
                        entity_id=entity_id,
                        share=share,
                        allowed_hosts=hosts,
                        lifecycle="creating",
                        kind=kind,
                        source_uuid=origin.uuid if origin else None,
                        txn_id=txn_id,
                    )
                )
        except IntegrityError:
            raise AlreadyExists(f"replica {name} ({uuid}) already exists") from None
        with self.store.session() as s:
            row = required(s, Row, uuid)
        crashpoint.hit(f"{kind}.create.intent")
        with self._undone_on_failure(pool, row):
            while not pool.make_volume(row, origin):
                row = self._update(uuid, thin_id=row.thin_id + 1)  # id taken by something unknown
        return row

    def _finish_create(self, pool: LivePool, row: Row, hosts: list[str]) -> ReplicaView:
        """Activate, share when asked, mark ready, write the catalog (the replica's lock held)."""
        kind, name, uuid, share = row.kind, row.name, row.uuid, row.share
        with self._undone_on_failure(pool, row):
            self._activate(pool, row)
            crashpoint.hit(f"{kind}.create.device")
            if share == Share.NVMF:
                self._expose(row, hosts)
                crashpoint.hit(f"{kind}.create.shared")
            row = self._update(uuid, lifecycle="ready")
            crashpoint.hit(f"{kind}.create.ready")
            self.pools.write_catalog(pool)
        log.info("%s %s (%s) created in pool %s, %d bytes", kind, name, uuid, pool.name, row.size)
        return self.view(row)

    @contextmanager
    def _undone_on_failure(self, pool: LivePool, row: Row):
        """A create step that fails takes the half-made device and its intent row with it (the row
        as it stands then: its thin id may have moved on)."""
        try:
            yield
        except BaseException as exc:
            self._rollback_create(pool, self.row_any(row.uuid) or row)
            if isinstance(exc, KernelError):
                raise _kernel(f"create {row.kind} {row.name}", exc) from None
            raise

    def _refuse_taken(self, name: str, uuid: str) -> None:
        """ALREADY_EXISTS when a replica has this uuid or name, or a nexus this name: replicas and
        nexuses are exported as nqn.2019-05.io.openebs:<name>, one NQN space."""
        with self.store.session() as s:
            clash = s.scalars(select(Row).where((Row.uuid == uuid) | (Row.name == name))).first()
            nexus = s.scalar(select(NexusRow.uuid).where(NexusRow.name == name))
        if clash is not None:
            raise AlreadyExists(f"replica {clash.name} ({clash.uuid}) already exists")
        if nexus is not None:
            raise AlreadyExists(f"the name {name} belongs to nexus {nexus} (its NQN would be shared)")

    def row_any(self, uuid: str) -> Row | None:
        with self.store.session() as s:
            return s.get(Row, uuid)

    def _activate(self, pool: LivePool, row: Row) -> None:
        pool.activate(row)

    def _teardown_kernel(self, pool: LivePool, row: Row) -> None:
        """Unshare, deactivate and delete the thin device of a row; idempotent."""
        self._withdraw(row)
        crashpoint.hit(f"{row.kind}.teardown.unshared")
        pool.deactivate(row)
        crashpoint.hit(f"{row.kind}.teardown.removed")
        pool.delete_volume(row)

    def _rollback_create(self, pool: LivePool, row: Row) -> None:
        try:
            self._teardown_kernel(pool, row)
        except Exception as exc:  # noqa: BLE001 - the row stays 'creating'; reconcile finishes the rollback
            log.error("rolling back %s: %s", row.name, exc)
            return
        with self.store.session() as s:
            r = s.get(Row, row.uuid)
            if r is not None:
                s.delete(r)

    # destroy ------------------------------------------------------------------------------------
    def _named_pool(self, pool_name: str | None, pool_uuid: str | None) -> LivePool | None:
        """The pool a destroy request names (None when it names none)."""
        if not pool_name and not pool_uuid:
            return None
        for p in list(self.pools.live.values()):
            if (pool_name and p.name == pool_name) or (pool_uuid and p.uuid == pool_uuid):
                return p
        raise FailedPrecondition(f"pool {pool_name or pool_uuid} not found")

    def destroy(self, uuid: str, pool_name: str | None = None, pool_uuid: str | None = None) -> None:
        """io-engine's order: a pool named but not loaded is FAILED_PRECONDITION, then a missing
        replica NOT_FOUND with gtm-602 (the agent reads it as "already gone"), then a replica of
        another pool ABORTED."""
        uuid = validate.uuid(uuid, "replica uuid")
        named = self._named_pool(pool_name, pool_uuid)
        row = self.row_any(uuid)
        if row is None or row.kind == "snapshot":
            raise ReplicaNotFound(uuid)
        pool = self.pools.live.get(row.pool_uuid)
        if pool is None:  # recorded on a pool that is not loaded: not "gone", its disk may hold it
            raise NotFound(f"replica {uuid} is on pool {row.pool_uuid}, which is not loaded")
        if named is not None and named is not pool:
            raise Aborted(f"replica {uuid} is in pool {pool.name}, not in {named.name}")
        with self.locks.shared(pool.uuid), self._one(uuid):
            self._destroy_locked(pool, uuid)

    def _destroy_locked(self, pool: LivePool, uuid: str) -> None:
        row = self.row_any(uuid)
        if row is None:
            raise ReplicaNotFound(uuid)
        row = self._update(uuid, lifecycle="destroying")
        crashpoint.hit(f"{row.kind}.destroy.intent")
        self.finish_destroy(pool, row)
        log.info("%s %s (%s) destroyed", row.kind, row.name, uuid)

    def finish_destroy(self, pool: LivePool, row: Row) -> None:
        try:
            self._teardown_kernel(pool, row)
        except KernelError as exc:
            raise _kernel(f"destroy {row.kind} {row.name}", exc) from None
        with self.store.session() as s:
            s.delete(s.get(Row, row.uuid))
        # a discarded snapshot goes with its last clone
        if row.kind == "clone" and row.source_uuid:
            snap = self.row_any(row.source_uuid)
            if snap is not None and snap.discarded and not self._clones_of(snap.uuid):
                with self._one(snap.uuid):
                    self._update(snap.uuid, lifecycle="destroying")
                    self.finish_destroy(pool, snap)
                return
        self.pools.write_catalog(pool)

    def _clones_of(self, snap_uuid: str) -> list[Row]:
        with self.store.session() as s:
            return list(s.scalars(select(Row).where(Row.source_uuid == snap_uuid, Row.kind == "clone")))

    # share --------------------------------------------------------------------------------------
    def share(self, uuid: str, share: int, allowed_hosts: list[str]) -> ReplicaView:
        uuid = validate.uuid(uuid, "replica uuid")
        _check_share(share)
        hosts = validate.host_nqns(allowed_hosts)
        if share == Share.NONE:
            return self.unshare(uuid)
        row = self._row(uuid)
        pool = self.pools.live[row.pool_uuid]
        with self.locks.shared(pool.uuid), self._one(uuid):
            row = self._row(uuid)
            try:
                if row.share == Share.NVMF and self.target.is_shared(row.name):
                    self.target.owner_check(row.name, row.uuid, self.device(row))
                    self.target.set_allowed_hosts(row.name, hosts)  # same protocol: only the hosts change
                else:
                    self._expose(row, hosts)
            except KernelError as exc:
                raise _kernel(f"share replica {row.name}", exc) from None
            crashpoint.hit("replica.share.kernel")
            row = self._update(uuid, share=Share.NVMF, allowed_hosts=hosts)
            self.pools.write_catalog(pool)
            view = self.view(row)
        self._share_changed(row.name, True)  # outside the replica's locks: nexus locks come first
        return view

    def unshare(self, uuid: str) -> ReplicaView:
        uuid = validate.uuid(uuid, "replica uuid")
        row = self._row(uuid)
        pool = self.pools.live[row.pool_uuid]
        self._share_changed(row.name, False)
        with self.locks.shared(pool.uuid), self._one(uuid):
            return self._unshare_locked(pool, self._row(uuid))

    def _share_changed(self, name: str, shared: bool) -> None:
        """Tell who uses the replica locally (a fencing nexus) that it is shared now or is about
        to be unshared."""
        for listener in self.share_listeners:
            listener(name, shared)

    def _unshare_locked(self, pool: LivePool, row: Row) -> ReplicaView:
        try:
            self._withdraw(row)
        except KernelError as exc:
            raise _kernel(f"unshare replica {row.name}", exc) from None
        row = self._update(row.uuid, share=Share.NONE, allowed_hosts=[])
        self.pools.write_catalog(pool)
        return self.view(row)

    # resize / entity id -------------------------------------------------------------------------
    def resize(self, uuid: str, requested_size: int) -> ReplicaView:
        uuid = validate.uuid(uuid, "replica uuid")
        row = self._row(uuid)
        pool = self.pools.live[row.pool_uuid]
        with self.locks.shared(pool.uuid), self._one(uuid):
            row = self._row(uuid)
            size = self._round(pool, requested_size)
            if requested_size <= 0 or requested_size < row.size:
                raise InvalidArgument(f"replica {row.name} is {row.size} bytes; it can only grow")
            if size == row.size:
                return self.view(row)
            with self._allocating(pool):
                self._check_space(pool, size, row.thin, exclude=row.uuid, already=0)
                row = self._update(uuid, size=size)
            try:
                pool.resize_volume(row)
                if row.share == Share.NVMF:
                    self.target.revalidate(row.name)
            except KernelError as exc:
                raise _kernel(f"resize replica {row.name}", exc) from None
            self.pools.write_catalog(pool)
            return self.view(row)

    def set_entity_id(self, uuid: str, entity_id: str) -> ReplicaView:
        uuid = validate.uuid(uuid, "replica uuid")
        validate.entity_id(entity_id)
        row = self._row(uuid)
        pool = self.pools.live[row.pool_uuid]
        with self.locks.shared(pool.uuid), self._one(uuid):
            row = self._update(uuid, entity_id=entity_id)
            self.pools.write_catalog(pool)
            return self.view(row)

    # snapshots and clones -----------------------------------------------------------------------
    def create_snapshot(
        self, replica_uuid: str, snapshot_uuid: str, snapshot_name: str, entity_id: str, txn_id: str
    ) -> ReplicaView:
        replica_uuid = validate.uuid(replica_uuid, "replica uuid")
        snapshot_uuid = validate.uuid(snapshot_uuid, "snapshot uuid")
        validate.snapshot_name(snapshot_name)
        if entity_id:
            validate.entity_id(entity_id)
        if txn_id:
            validate.entity_id(txn_id)
        src = self._row(replica_uuid)
        pool = self.pools.live[src.pool_uuid]
        with self.locks.shared(pool.uuid), self._one(replica_uuid), self._one(snapshot_uuid):
            src = self._row(replica_uuid)
            with self._allocating(pool):
                existing = self.row_any(snapshot_uuid)
                if existing is not None:
                    raise AlreadyExists(f"snapshot {snapshot_uuid} already exists")
                row = self._allocate(
                    pool,
                    snapshot_name,
                    snapshot_uuid,
                    src.size,
                    True,
                    Share.NONE,
                    [],
                    entity_id or src.entity_id,
                    "snapshot",
                    src,
                    txn_id or None,
                )
            return self._finish_create(pool, row, [])

    def list_snapshots(
        self,
        source_uuid: str | None = None,
        snapshot_uuid: str | None = None,
        discarded: bool | None = None,
        invalid: bool | None = None,
    ) -> list[ReplicaView]:
        if invalid:
            return []  # every snapshot here is valid: dm-thin snapshots are taken atomically
        views = self.list(uuid=snapshot_uuid, kinds=("snapshot",))
        return [
            v
            for v in views
            if (source_uuid is None or v.row.source_uuid == source_uuid)
            and (discarded is None or v.row.discarded == discarded)
        ]

    def destroy_snapshot(self, uuid: str, pool_name: str | None = None, pool_uuid: str | None = None) -> None:
        uuid = validate.uuid(uuid, "snapshot uuid")
        row = self.row_any(uuid)
        if row is None or row.kind != "snapshot":
            raise NotFound(f"snapshot {uuid} not found")
        named = self._named_pool(pool_name, pool_uuid)
        pool = self.pools.live.get(row.pool_uuid)
        if pool is None:
            raise NotFound(f"snapshot {uuid} is on pool {row.pool_uuid}, which is not loaded")
        if named is not None and named is not pool:
            raise Aborted(f"snapshot {uuid} is in pool {pool.name}, not in {named.name}")
        with self.locks.shared(pool.uuid), self._one(uuid):
            if self._clones_of(uuid):  # clones read through it: only mark it, it goes with its last clone
                self._update(uuid, discarded=True)
                self.pools.write_catalog(pool)
                return
            self._destroy_locked(pool, uuid)

    def create_clone(self, snapshot_uuid: str, clone_name: str, clone_uuid: str) -> ReplicaView:
        snapshot_uuid = validate.uuid(snapshot_uuid, "snapshot uuid")
        clone_uuid = validate.uuid(clone_uuid, "clone uuid")
        validate.name(clone_name, "clone name")
        snap = self._row(snapshot_uuid, kinds=("snapshot",))
        pool = self.pools.live[snap.pool_uuid]
        with self.locks.shared(pool.uuid), self._one(clone_uuid), self._one(snapshot_uuid):
            snap = self._row(snapshot_uuid, kinds=("snapshot",))
            if snap.discarded:
                raise FailedPrecondition(f"snapshot {snapshot_uuid} is discarded")
            with self._allocating(pool):
                self._refuse_taken(clone_name, clone_uuid)
                row = self._allocate(
                    pool, clone_name, clone_uuid, snap.size, True, Share.NONE, [], snap.entity_id, "clone", snap
                )
            return self._finish_create(pool, row, [])

    def list_clones(self, snapshot_uuid: str | None = None) -> list[ReplicaView]:
        return [v for v in self.list(kinds=("clone",)) if snapshot_uuid is None or v.row.source_uuid == snapshot_uuid]

    # whole pools --------------------------------------------------------------------------------
    def rows_of(self, pool: LivePool) -> list[Row]:
        with self.store.session() as s:
            return list(s.scalars(select(Row).where(Row.pool_uuid == pool.uuid).order_by(Row.thin_id)))

    def unload_pool(self, pool: LivePool) -> None:
        """Unshare and deactivate every thin device of a pool (their data stays in the pool)."""
        for row in self.rows_of(pool):
            self._withdraw(row)
            pool.deactivate(row)

    def bring_up(self, pool: LivePool) -> None:
        """Make the kernel match SQLite for a pool's devices: roll back unfinished creates, finish
        unfinished destroys, activate and re-share the rest (no replica call meanwhile)."""
        with self.locks.exclusive(pool.uuid):
            self._bring_up(pool)

    def _bring_up(self, pool: LivePool) -> None:
        for row in self.rows_of(pool):
            if row.lifecycle == "creating":
                log.info("rolling back unfinished create of %s %s", row.kind, row.name)
                self._rollback_create(pool, row)
            elif row.lifecycle == "destroying":
                log.info("finishing destroy of %s %s", row.kind, row.name)
                self.finish_destroy(pool, row)
        for row in self.rows_of(pool):
            self._activate(pool, row)
            if row.share == Share.NVMF:
                try:
                    self._expose(row, row.allowed_hosts or [])
                except AlreadyExists as exc:
                    log.error("replica %s cannot be shared again: %s", row.name, exc)
            elif self.target.is_shared(row.name):
                self._withdraw(row)
        self.pools.write_catalog(pool)

    # last in the class: a method named list would shadow the builtin in the annotations above it
    def list(
        self,
        name: str | None = None,
        uuid: str | None = None,
        poolname: str | None = None,
        pooluuid: str | None = None,
        kinds: tuple[str, ...] = ("replica", "clone"),
    ) -> list[ReplicaView]:
        q = select(Row).where(Row.lifecycle == "ready", Row.kind.in_(kinds))
        if name is not None:
            q = q.where(Row.name == name)
        if uuid is not None:
            q = q.where(Row.uuid == uuid)
        with self.store.session() as s:
            rows = list(s.scalars(q.order_by(Row.name)))
            family = list(s.scalars(select(Row).where(Row.lifecycle == "ready", Row.source_uuid.is_not(None))))
        out = []
        for r in rows:
            pool = self.pools.live.get(r.pool_uuid)
            if (
                pool is None
                or (poolname is not None and pool.name != poolname)
                or (pooluuid is not None and pool.uuid != pooluuid)
            ):
                continue
            out.append(self.view(r, family))
        return out
