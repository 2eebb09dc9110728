"""Make the kernel match SQLite at start (after a clean stop, kill -9 or a reboot).

1. Every pool row: re-open its disks and re-assemble it from its label; finish what a crash
   interrupted (roll back unfinished creates, finish destroys).
2. Every replica row of a live pool: the same, then activate and re-share (replica/service.py).
3. Remove tagged orphans: our dm devices, nvmet subsystems over our dm devices, our empty ports,
   unlinked hosts and our loop devices nobody holds.
"""

from __future__ import annotations

import errno
import logging

from sqlalchemy import select

from .errors import MayastorError
from .kernel import block, loop
from .kernel.dm import DmError, remove
from .kernel.errors import KernelError
from .pool.backend import POOL_TYPE_LVM
from .pool.disk import parse
from .pool.label import LabelError, read_label, wipe_label
from .pool.lvm_tools import LvmError
from .store import Nexus as NexusRow
from .store import Pool as PoolRow
from .store import Replica as ReplicaRow

log = logging.getLogger(__name__)


def reconcile(node) -> None:
    with node.store.session() as s:
        rows = list(s.scalars(select(PoolRow)))
    for row in rows:
        try:
            _pool(node, row)
        except (MayastorError, KernelError, LabelError, LvmError) as exc:
            log.error("pool %s (%s) could not be brought back: %s", row.name, row.uuid, exc)
    node.bdevs.bring_up()  # before the nexuses: bdev:/// children may be bdevs
    from .nexus.recover import reconcile_nexuses

    reconcile_nexuses(node)
    remove_orphans(node)


def _pool(node, row: PoolRow) -> None:
    pools = node.pools
    if row.uuid in pools.live:
        return
    if row.pooltype == POOL_TYPE_LVM:
        pool = pools.bring_back_lvm(row)
        if row.lifecycle == "destroying":
            pools.finish_destroy(pool, node.replicas)
        else:
            node.replicas.bring_up(pool)
        return
    opened = pools.open_all([parse(u) for u in row.disks])
    try:
        labels = [read_label(d.device, d.size) for d in opened]
        if row.lifecycle == "creating":
            log.info("rolling back unfinished create of pool %s", row.name)
            for name in node.tags.pool_devices(row.uuid):
                remove(node.ctl, name)
            for d, lab in zip(opened, labels):
                if lab is not None and lab.pool_uuid == row.uuid:
                    wipe_label(d.device, d.size)
            with node.store.session() as s:
                s.delete(s.get(PoolRow, row.uuid))
            pools.close_all(opened)
            return
        with pools.registry:
            pool = pools.import_locked(row.name, opened, labels)
    except BaseException:
        pools.close_all(opened)
        raise
    if row.lifecycle == "destroying":
        pools.finish_destroy(pool, node.replicas)
        return
    node.replicas.bring_up(pool)


def remove_orphans(node) -> None:
    ctl, tags = node.ctl, node.tags
    # everything SQLite knows stays, also of a pool that could not be brought back this time (a
    # disk late or refused): its devices and shares may still serve, and a later import adopts them
    with node.store.session() as s:
        known_thin = {tags.thin(u) for u in s.scalars(select(ReplicaRow.uuid))}
        pool_uuids = list(s.scalars(select(PoolRow.uuid)))
    known_pool = {name for u in pool_uuids for name in tags.pool_devices(u)}
    with node.store.session() as s:
        known_nexus = set(s.scalars(select(NexusRow.uuid)))
    known_top = {tags.nexus(u) for u in known_nexus}
    ours = [d for d in ctl.list_devices() if tags.parse(d.name)]
    # subsystems first: they hold the devices open
    our_minors = {d.minor: d.name for d in ours}

    def orphan(devices: list[str]) -> bool:  # it exports our dm devices, none of them known
        mine = [p for p in devices if p.startswith("/dev/dm-") and int(p[8:]) in our_minors]
        return bool(mine) and not any(our_minors[int(p[8:])] in known_thin | known_top for p in mine)

    for nqn in node.target.remove_subsystems_if(orphan):
        log.info("removed orphan share %s", nqn)

    def order(d) -> int:  # nexus top, era, raid, legs; thin devices, thin-pools, the linear areas under them
        kind, _, part = tags.parse(d.name)
        if kind == "nexus":
            return {"": 0, "era": 1, "raid": 2}.get(part, 3)
        return 4 if kind == "thin" else 5 if part == "tpool" else 6

    for d in sorted(ours, key=order):
        if d.name in known_thin or d.name in known_pool:
            continue
        kind, uuid, _ = tags.parse(d.name)
        if kind == "nexus":
            if uuid in known_nexus:
                continue
            log.info("removing orphan nexus device %s", d.name)
            try:
                remove(ctl, d.name)
            except DmError as exc:
                log.error("orphan %s: %s", d.name, exc)
            continue
        kind, uuid, _ = tags.parse(d.name)
        log.info("removing orphan dm device %s", d.name)
        where = None
        if kind == "thin":
            try:
                pool_dev, thin_id = ctl.table(d.name)[0].params.split()[:2]
                where = (pool_dev, int(thin_id))
            except (DmError, IndexError, ValueError):
                pass
        try:
            remove(ctl, d.name)
        except DmError as exc:
            log.error("orphan %s: %s", d.name, exc)
            continue
        if where is not None:
            _delete_orphan_thin(node, *where)
    node.target.gc_ports()
    node.target.gc_hosts()
    kept = node.bdevs.loop_files()  # a bdev's loop has no holder, nvmet opens it directly
    for dev in loop.list_attached():
        try:
            tagged = loop.status(dev)["file_name"] == node.pools.loop_tag
        except OSError:
            continue
        if tagged and not block.holders(dev.path) and dev.backing_file not in kept:
            log.info("detaching orphan loop device %s (%s)", dev.path, dev.backing_file)
            try:
                loop.detach(dev)
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    log.error("orphan %s: %s", dev.path, exc)


def _delete_orphan_thin(node, pool_dev: str, thin_id: int) -> None:
    """A thin id no row claims, in a live pool: delete it so it does not hold space."""
    with node.store.session() as s:
        for pool in node.pools.live.values():
            if not pool.owns_thin_pool(pool_dev):
                continue
            claimed = s.scalar(
                select(ReplicaRow.uuid).where(ReplicaRow.pool_uuid == pool.uuid, ReplicaRow.thin_id == thin_id)
            )
            if claimed is None:
                try:
                    pool.delete_orphan_thin(thin_id)
                except DmError:
                    pass
