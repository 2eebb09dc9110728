"""Pools: create-or-import, import, export, destroy, grow, list.

Two backends (backend.PoolBackend): our own label + dm-thin pools (type Lvs, label_pool.py) and
LVM volume groups (type Lvm, lvm_pool.py). Every mutating call follows validate → record intent in
SQLite → apply to the kernel (idempotent) → record done. A pool that is up lives in
`PoolService.live`; replica calls on it hold its lock shared, pool-wide calls exclusively (locks.py).
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import select

from .. import crashpoint, validate
from ..errors import AlreadyExists, FailedPrecondition, Internal, InvalidArgument, NotFound
from ..kernel import loop
from ..kernel.dm import DeviceMapper
from ..kernel.errors import KernelError
from ..locks import KeyedLocks
from ..naming import Tags
from ..paths import PathPolicy
from ..store import Pool as PoolRow
from ..store import Replica as ReplicaRow
from ..store.db import Store, required
from . import catalog as cat
from . import lvm_pool, lvm_tools
from .backend import POOL_TYPE_LVM, POOL_TYPE_LVS
from .disk import DiskUri, OpenDisk, open_disk, parse
from .label import LabelError, PoolLabel, mappable_bytes, plan, read_label, wipe_label, write_label
from .label_pool import LabelPool
from .thinpool import ThinPool

log = logging.getLogger(__name__)
MIN_LVM_DISK = 8 << 20  # two 4 MiB extents: a thin pool's metadata and one data extent
LivePool = LabelPool | lvm_pool.LvmPool  # what the rest of the daemon holds: either backend


def _wrap_kernel(what: str, exc: Exception) -> Internal:
    return Internal(f"{what}: {exc}")


class PoolService:
    def __init__(self, store: Store, ctl: DeviceMapper, tags: Tags, locks: KeyedLocks, paths: PathPolicy):
        self.store, self.ctl, self.tags, self.locks, self.paths = store, ctl, tags, locks, paths
        self.live: dict[str, LivePool] = {}
        self.registry = threading.Lock()  # guards the set of pools (create/import/export/destroy)
        self.loop_tag = f"mayastor:{tags.node}"
        self.lvm_enabled = False  # --enable-lvm; recorded LVM pools come back without it all the same

    def lvm_usable(self) -> bool:
        """LVM pools can be made (io-engine's features.logicalVolumeManager)."""
        return self.lvm_enabled and lvm_tools.available()

    # lookup -------------------------------------------------------------------------------------
    def find(self, name_or_uuid: str) -> LivePool:
        for p in list(self.live.values()):
            if name_or_uuid in (p.uuid, p.name):
                return p
        raise NotFound(f"pool {name_or_uuid} not found")

    # create / import ----------------------------------------------------------------------------
    @staticmethod
    def _parse_disks(disks: list[str]) -> list[DiskUri]:
        if not disks:
            raise InvalidArgument("a pool needs at least one disk")
        parsed = [parse(d) for d in disks]
        if len({d.key for d in parsed}) != len(parsed):
            raise InvalidArgument("the same disk is listed twice")
        return parsed

    def _check_disks_free(self, parsed: list[DiskUri], except_uuid: str | None = None) -> None:
        for p in self.live.values():
            if p.uuid == except_uuid:
                continue
            used = {parse(u).key for u in p.disks}
            for d in parsed:
                if d.key in used:
                    raise InvalidArgument(f"disk {d.canonical} is already used by pool {p.name}")

    def create(
        self,
        name: str,
        disks: list[str],
        uuid: str | None = None,
        pooltype: int = POOL_TYPE_LVS,
        cluster_size: int | None = None,
        md_ratio: float | None = None,
    ) -> LivePool:
        validate.name(name, "pool name")
        if pooltype == POOL_TYPE_LVM:
            return self._open_lvm(name, disks, uuid, create=True)
        uuid = validate.optional_uuid(uuid, "pool uuid")
        if pooltype != POOL_TYPE_LVS:
            raise InvalidArgument(f"unknown pool type {pooltype} (Lvs = 0, Lvm = 1)")
        if md_ratio is not None and not 0 < md_ratio <= 100:
            raise InvalidArgument("md_resv_ratio must be positive")
        parsed = self._parse_disks(disks)
        with self.registry:
            existing = next((p for p in self.live.values() if p.name == name), None)
            if existing is not None:
                if sorted(parse(u).key for u in existing.disks) == sorted(d.key for d in parsed):
                    raise AlreadyExists(f"pool {name} already exists on {', '.join(existing.disks)}")
                raise InvalidArgument(f"pool {name} already exists on other disks ({', '.join(existing.disks)})")
            if uuid and uuid in self.live:
                raise InvalidArgument(f"pool uuid {uuid} is already used by pool {self.live[uuid].name}")
            self._check_disks_free(parsed)
            opened = self.open_all(parsed, create=True)
            try:
                labels = self._read_labels(opened)
                if any(labels):
                    found = next(lab for lab in labels if lab)
                    if found.name != name:
                        raise InvalidArgument(f"a pool currently exists on the device with name {found.name}")
                    if uuid and found.pool_uuid != uuid:
                        raise InvalidArgument(f"pool {name} on these disks has uuid {found.pool_uuid}, not {uuid}")
                    return self.import_locked(name, opened, labels)
                return self._create_locked(name, uuid, opened, cluster_size, md_ratio or 1.0)
            except BaseException:
                self.close_all(opened)
                for d in opened:
                    if d.created:
                        d.discard()
                raise

    def open_all(self, parsed: list[DiskUri], create: bool = False) -> list[OpenDisk]:
        opened: list[OpenDisk] = []
        try:
            for d in parsed:
                opened.append(
                    open_disk(
                        d, self.paths, self.tags.pool_prefix, create=create, loop_tag=self.loop_tag, node=self.tags.node
                    )
                )
        except KernelError as exc:
            self.close_all(opened)
            raise _wrap_kernel("open disk", exc) from None
        except BaseException:
            self.close_all(opened)
            raise
        return opened

    @staticmethod
    def close_all(opened: list[OpenDisk]) -> None:
        for d in opened:
            try:
                d.close()
            except OSError as exc:
                log.warning("detach %s: %s", d.device, exc)

    @staticmethod
    def _read_labels(opened: list[OpenDisk]) -> list[PoolLabel | None]:
        try:
            return [read_label(d.device, d.size) for d in opened]
        except LabelError as exc:
            raise FailedPrecondition(str(exc)) from None

    def _create_locked(
        self, name: str, uuid: str | None, opened: list[OpenDisk], cluster_size: int | None, md_ratio: float
    ) -> LivePool:
        try:
            label = plan(name, [d.size for d in opened], cluster_size, md_ratio, uuid)
        except LabelError as exc:
            raise InvalidArgument(str(exc)) from None
        with self.store.session() as s:
            s.add(
                PoolRow(
                    uuid=label.pool_uuid,
                    name=name,
                    disks=[d.uri.canonical for d in opened],
                    cluster_size=label.cluster_size,
                    lifecycle="creating",
                    transaction_id=0,
                )
            )
        pool = self._label_pool(name, label, opened)
        try:
            pool.thin.assemble(fresh=True)
            crashpoint.hit("pool.create.assembled")
            self.write_catalog(pool, [])
            for i, d in enumerate(opened):
                write_label(d.device, label, i, d.size)
            crashpoint.hit("pool.create.labelled")
            with self.store.session() as s:
                row = required(s, PoolRow, pool.uuid)
                row.lifecycle = "ready"
                row.transaction_id = pool.catalog.generation
        except BaseException as exc:
            self._undo_create(pool)
            if isinstance(exc, KernelError):
                raise _wrap_kernel(f"create pool {name}", exc) from None
            raise
        self.live[pool.uuid] = pool
        log.info("pool %s (%s) created on %s", name, pool.uuid, ", ".join(pool.disks))
        return pool

    def _label_pool(self, name: str, label: PoolLabel, disks: list[OpenDisk]) -> LabelPool:
        """A label pool over its opened disks, in the label's order (not yet assembled)."""
        thin = ThinPool(self.ctl, self.tags, label, [d.device for d in disks])
        return LabelPool(label.pool_uuid, name, [d.uri.canonical for d in disks], label, disks, thin)

    def _undo_create(self, pool: LabelPool) -> None:
        try:
            pool.thin.teardown()
            for d in pool.open_disks:
                wipe_label(d.device, d.size)
        except Exception as exc:  # noqa: BLE001 - keep the row: reconcile retries the rollback
            log.error("rolling back pool %s: %s", pool.name, exc)
            return
        with self.store.session() as s:
            row = s.get(PoolRow, pool.uuid)
            if row is not None:
                s.delete(row)

    def import_pool(
        self, name: str, disks: list[str], uuid: str | None = None, pooltype: int = POOL_TYPE_LVS
    ) -> LivePool:
        validate.name(name, "pool name")
        if pooltype == POOL_TYPE_LVM:
            return self._open_lvm(name, disks, uuid, create=False)
        uuid = validate.optional_uuid(uuid, "pool uuid")
        if pooltype != POOL_TYPE_LVS:
            raise InvalidArgument(f"unknown pool type {pooltype} (Lvs = 0, Lvm = 1)")
        parsed = self._parse_disks(disks)
        with self.registry:
            for p in self.live.values():
                if p.name == name or p.uuid == uuid:
                    raise AlreadyExists(f"pool {p.name} ({p.uuid}) is already imported")
            self._check_disks_free(parsed)
            opened = self.open_all(parsed)
            try:
                labels = self._read_labels(opened)
                if not any(labels):  # io-engine: the blobstore cannot be imported -> INVALID_ARGUMENT
                    raise InvalidArgument(f"no pool label on {', '.join(d.canonical for d in parsed)}")
                found = next(lab for lab in labels if lab)
                if found.name != name:
                    raise InvalidArgument(f"a pool currently exists on the device with name {found.name}")
                if uuid and found.pool_uuid != uuid:
                    raise InvalidArgument(f"pool {name} has uuid {found.pool_uuid}, not {uuid}")
                return self.import_locked(name, opened, labels)
            except BaseException:
                self.close_all(opened)
                raise

    def import_locked(self, name: str, opened: list[OpenDisk], labels: list[PoolLabel | None]) -> LivePool:
        found = [lab for lab in labels if lab is not None]
        if not found or len(found) != len(labels) or any(lab.pool_uuid != found[0].pool_uuid for lab in found):
            raise InvalidArgument("the disks given belong to different pools (or some carry no label)")
        first = found[0]
        by_uuid = {lab.disks[lab.this_disk].disk_uuid: d for lab, d in zip(found, opened)}
        wanted = [e.disk_uuid for e in first.disks]
        if set(by_uuid) != set(wanted):
            raise FailedPrecondition(f"pool {name} spans {len(wanted)} disks; {len(opened)} given do not match")
        ordered = [by_uuid[u] for u in wanted]
        label = found[opened.index(ordered[0])]
        label.this_disk = 0
        pool = self._label_pool(name, label, ordered)
        try:
            pool.thin.assemble()
            pool.catalog = cat.read(pool.catalog_device)
        except KernelError as exc:
            raise _wrap_kernel(f"import pool {name}", exc) from None
        self._record_imported(pool, pool.catalog.generation)
        self._fence(pool)
        self.live[pool.uuid] = pool
        log.info(
            "pool %s (%s) imported from %s with %d catalogued replicas",
            name,
            pool.uuid,
            ", ".join(pool.disks),
            len(pool.catalog.replicas),
        )
        return pool

    def _record_imported(self, pool: LivePool, transaction_id: int = 0) -> None:
        """The pool's row, and its replicas from the pool's own records when SQLite knew none of them."""
        with self.store.session() as s:
            row = s.get(PoolRow, pool.uuid)
            if row is None:
                s.add(
                    PoolRow(
                        uuid=pool.uuid,
                        name=pool.name,
                        disks=pool.disks,
                        cluster_size=pool.cluster_size,
                        pooltype=pool.pooltype,
                        lifecycle="ready",
                        transaction_id=transaction_id,
                    )
                )
                for rec in pool.catalogued():
                    s.add(ReplicaRow(pool_uuid=pool.uuid, lifecycle="ready", **_row_fields(rec)))
            else:
                row.disks, row.lifecycle = pool.disks, "ready"

    # LVM pools ----------------------------------------------------------------------------------
    def _open_lvm(self, name: str, disks: list[str], uuid: str | None, create: bool) -> LivePool:
        """Import the VG ``name`` (tagging it ours), or, for a create, make it on the disks."""
        if not self.lvm_enabled:
            raise FailedPrecondition("lvm support not enabled (start the daemon with --enable-lvm)")
        if not lvm_tools.available():
            raise FailedPrecondition("LVM pools need lvm2's tools, which are not installed")
        lvm_pool.check_vg_name(name)
        parsed = self._parse_disks(disks)
        if any(d.is_ram for d in parsed):
            raise InvalidArgument("an LVM pool is made of block devices, not RAM disks")
        devices = [d.path for d in parsed]
        with self.registry:
            existing = next((p for p in self.live.values() if p.name == name), None)
            if existing is not None:
                if existing.pooltype == POOL_TYPE_LVM and create:
                    raise AlreadyExists(f"pool {name} already exists on {', '.join(existing.disks)}")
                raise AlreadyExists(f"pool {existing.name} ({existing.uuid}) is already imported")
            self._check_disks_free(parsed)
            pool = lvm_pool.open_vg(name, devices, uuid, self.ctl)
            if pool is None:
                if not create:
                    raise NotFound(f"no volume group {name} to import")
                if uuid:
                    raise InvalidArgument(f"LVM pool {name}: a new VG gets its own uuid; do not give one")
                for dev in devices:
                    self._check_new_pv(dev)
                pool = lvm_pool.create_vg(name, devices, self.ctl)
            if pool.uuid in self.live:
                raise InvalidArgument(f"volume group {name} has the uuid of pool {self.live[pool.uuid].name}")
            self._record_imported(pool)
            self.live[pool.uuid] = pool
        log.info("LVM pool %s (%s) on %s is up", name, pool.uuid, ", ".join(pool.disks))
        return pool

    def _check_new_pv(self, dev: str) -> None:
        """A device becomes a PV only when it could become one of our own pool disks: a block
        device, not mounted, held or formatted, and not one of our pools."""
        target = self.paths.check(dev, "LVM pool disk", MIN_LVM_DISK, self.tags.prefix, pool_disk=True)
        if target.kind != "block":
            raise InvalidArgument(f"LVM pool disk {dev}: not a block device")
        found = self._read_labels_of(target.path)
        if found is not None:
            raise InvalidArgument(f"a pool currently exists on the device with name {found.name}")

    @staticmethod
    def _read_labels_of(device: str) -> PoolLabel | None:
        from ..kernel import block

        try:
            return read_label(device, block.size_bytes(device))
        except LabelError as exc:
            raise FailedPrecondition(str(exc)) from None

    def bring_back_lvm(self, row: PoolRow) -> LivePool:
        """Reconcile: the VG of a recorded LVM pool, live again with its thin pool active (the
        caller brings its volumes back, or finishes its destroy)."""
        vg = lvm_pool.find_vg(uuid=row.uuid)
        if vg is None:
            raise NotFound(f"volume group {row.name} ({row.uuid}) is not there")
        pool = lvm_pool.LvmPool.of(vg, self.ctl)
        pool.activate_thin_pool()
        with self.registry:
            self.live[pool.uuid] = pool
        return pool

    def _fence(self, pool: LabelPool) -> None:
        """The pool's transaction id follows the catalog generation; a crash between the two writes
        leaves the id one behind, which is repaired here."""
        tid = pool.thin.status().transaction_id
        gen = pool.catalog.generation
        if tid == gen - 1:
            pool.thin.set_transaction_id(tid, gen)
        elif tid != gen:
            log.warning("pool %s: transaction id %d does not match catalog generation %d", pool.name, tid, gen)

    # catalog ------------------------------------------------------------------------------------
    def write_catalog(self, pool: LivePool, rows: list[ReplicaRow] | None = None) -> None:
        """Keep the pool's ready replicas with the pool (its catalog; an LVM pool's tags). Writers
        of one pool take turns, each reading the rows inside its turn, so the last write has the
        newest rows."""
        with self.locks.hold(f"catalog:{pool.uuid}"):
            if rows is None:
                with self.store.session() as s:
                    rows = list(
                        s.scalars(
                            select(ReplicaRow).where(ReplicaRow.pool_uuid == pool.uuid, ReplicaRow.lifecycle == "ready")
                        )
                    )
            pool.write_catalog(sorted((_record(r) for r in rows), key=lambda r: r["thin_id"]))

    # export / destroy ---------------------------------------------------------------------------
    def export(self, name_or_uuid: str, replicas) -> None:
        with self.registry:
            pool = self.find(name_or_uuid)
            with self.locks.exclusive(pool.uuid):
                try:
                    replicas.unload_pool(pool)
                    if isinstance(pool, LabelPool):
                        pool.thin.teardown()
                    else:
                        lvm_pool.export_vg(pool)
                except KernelError as exc:
                    raise _wrap_kernel(f"export pool {pool.name}", exc) from None
                with self.store.session() as s:
                    for r in s.scalars(select(ReplicaRow).where(ReplicaRow.pool_uuid == pool.uuid)):
                        s.delete(r)
                    s.flush()
                    s.delete(s.get(PoolRow, pool.uuid))
                if isinstance(pool, LabelPool):
                    self.close_all(pool.open_disks)
                del self.live[pool.uuid]
        log.info("pool %s exported", pool.name)

    def destroy(self, name_or_uuid: str, replicas) -> None:
        with self.registry:
            pool = self.find(name_or_uuid)
            with self.locks.exclusive(pool.uuid):
                with self.store.session() as s:
                    required(s, PoolRow, pool.uuid).lifecycle = "destroying"
                self.finish_destroy(pool, replicas)
        log.info("pool %s destroyed", pool.name)

    def finish_destroy(self, pool: LivePool, replicas) -> None:
        if not isinstance(pool, LabelPool):
            try:
                replicas.unload_pool(pool)
            except KernelError as exc:
                raise _wrap_kernel(f"destroy pool {pool.name}", exc) from None
            lvm_pool.destroy_vg(pool)
            self._forget(pool)
            return
        try:
            replicas.unload_pool(pool)
            pool.thin.teardown()
        except KernelError as exc:
            raise _wrap_kernel(f"destroy pool {pool.name}", exc) from None
        for d in pool.open_disks:
            try:
                wipe_label(d.device, d.size)
            except OSError as exc:  # a disk that went away keeps its label; the pool goes all the same
                log.warning("destroy pool %s: cannot wipe the label of %s: %s", pool.name, d.uri.canonical, exc)
        self._forget(pool)
        for d in pool.open_disks:
            try:
                d.discard()  # RAM disks give their memory back
            except OSError as exc:
                log.warning("detach %s: %s", d.device, exc)

    def _forget(self, pool: LivePool) -> None:
        with self.store.session() as s:
            for r in s.scalars(select(ReplicaRow).where(ReplicaRow.pool_uuid == pool.uuid)):
                s.delete(r)
            s.flush()
            row = s.get(PoolRow, pool.uuid)
            if row is not None:
                s.delete(row)
        self.live.pop(pool.uuid, None)

    # grow ---------------------------------------------------------------------------------------
    def grow(self, name_or_uuid: str) -> tuple[dict, LivePool]:
        pool = self.find(name_or_uuid)
        with self.locks.exclusive(pool.uuid):
            before = self.snapshot_numbers(pool)
            if not isinstance(pool, LabelPool):
                lvm_pool.grow_vg(pool)
                return before, pool
            for d in pool.open_disks:
                if d.loop is not None:  # a file: the loop device learns the new size on request
                    loop.set_capacity(d.loop)
            label = pool.label
            sizes = [d.size for d in pool.open_disks]
            for i, (entry, size) in enumerate(zip(label.disks, sizes)):
                if size < entry.size:
                    raise FailedPrecondition(f"disk {pool.disks[i]} shrank from {entry.size} to {size} bytes")
                if size > entry.size and i != len(sizes) - 1:
                    raise FailedPrecondition(f"disk {pool.disks[i]} grew, but only the last disk of a pool can grow")
            last, size = label.disks[-1], sizes[-1]
            usable = size - last.start - 4096
            usable -= usable % (1 << 20)
            if usable <= last.length:
                return before, pool  # nothing to grow into
            old = (last.size, last.length)
            last.size, last.length = size, usable
            if label.data_len > mappable_bytes(label):
                last.size, last.length = old
                raise FailedPrecondition(
                    f"pool {pool.name}: its thin metadata ({label.metadata_len >> 20} MiB) maps at most "
                    f"{mappable_bytes(label)} bytes; create the pool with a larger md_resv_ratio to grow it further"
                )
            try:
                for i, d in enumerate(pool.open_disks):
                    write_label(d.device, label, i, d.size)
                pool.thin.assemble()
            except KernelError as exc:
                last.size, last.length = old
                raise _wrap_kernel(f"grow pool {pool.name}", exc) from None
            log.info("pool %s grew from %d to %d bytes", pool.name, before["capacity"], pool.capacity)
            return before, pool

    def snapshot_numbers(self, pool: LivePool) -> dict:
        return {"capacity": pool.capacity, "used": pool.used(), "disk_capacity": pool.disk_capacity}

    # last in the class: a method named list would shadow the builtin in the annotations above it
    def list(self, name: str | None = None, uuid: str | None = None) -> list[LivePool]:
        return [p for p in self.live.values() if (name is None or p.name == name) and (uuid is None or p.uuid == uuid)]


# catalog records <-> rows --------------------------------------------------------------------------
_FIELDS = (
    "uuid",
    "name",
    "thin_id",
    "size",
    "thin",
    "entity_id",
    "share",
    "allowed_hosts",
    "kind",
    "source_uuid",
    "discarded",
    "txn_id",
)


def _record(row: ReplicaRow) -> dict:
    rec = {f: getattr(row, f) for f in _FIELDS}
    rec["created_at"] = row.created_at.isoformat() if row.created_at else None
    return rec


def _row_fields(rec: dict) -> dict:
    from datetime import datetime

    out = {f: rec.get(f) for f in _FIELDS}
    out["allowed_hosts"] = out["allowed_hosts"] or []
    if rec.get("created_at"):
        out["created_at"] = datetime.fromisoformat(rec["created_at"])
    return out
