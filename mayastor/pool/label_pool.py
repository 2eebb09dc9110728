"""Our own pools: a label on each disk (label.py), a dm-thin pool over them (thinpool.py) and a
replica catalog in the label area (catalog.py). Volumes are thin devices named MAYASTOR-<node>-thin-<uuid>."""

from __future__ import annotations

import errno
from dataclasses import dataclass, field

from ..kernel.block import SECTOR
from ..kernel.dm import DmError, remove
from ..kernel.errors import KernelError
from . import allocation
from . import catalog as cat
from .backend import POOL_DEGRADED, POOL_FAULTED, POOL_ONLINE, POOL_TYPE_LVS, PoolBackend, PoolCondition
from .disk import OpenDisk
from .label import PoolLabel
from .thinpool import ThinPool


@dataclass
class LabelPool(PoolBackend):
    uuid: str
    name: str
    disks: list[str]  # canonical URIs, in label order
    label: PoolLabel
    open_disks: list[OpenDisk]
    thin: ThinPool
    catalog: cat.Catalog = field(default_factory=cat.Catalog)
    pooltype: int = POOL_TYPE_LVS

    @property
    def catalog_device(self) -> str:
        return self.open_disks[0].device

    @property
    def capacity(self) -> int:
        return self.label.data_len

    @property
    def cluster_size(self) -> int:
        return self.label.cluster_size

    @property
    def disk_capacity(self) -> int:
        try:
            return sum(d.size for d in self.open_disks)
        except OSError:  # a disk that vanished: its labelled size
            return sum(d.size for d in self.label.disks)

    def used(self) -> int:
        return self.thin.status().used_data_blocks * self.cluster_size

    def condition(self) -> PoolCondition:
        try:
            st = self.thin.status()
        except (KernelError, OSError) as exc:
            return PoolCondition(POOL_FAULTED, None, f"thin-pool device {self.thin.name}: {exc}")
        if st.failed:
            return PoolCondition(POOL_FAULTED, None, f"thin-pool {self.thin.name} has failed")
        if st.needs_check or st.mode != "rw":
            return PoolCondition(
                POOL_DEGRADED,
                st,
                f"thin-pool {self.thin.name} is {st.mode}" + (" and needs a check" if st.needs_check else ""),
            )
        return PoolCondition(POOL_ONLINE, st, "")

    def out_of_space(self) -> bool:
        try:
            st = self.thin.status()
        except KernelError:
            return False
        return st.mode == "out_of_data_space" or st.used_data_blocks >= st.total_data_blocks

    def reported_disks(self) -> list[str]:
        return [f"{u}{'&' if '?' in u else '?'}uuid={d.disk_uuid}" for u, d in zip(self.disks, self.label.disks)]

    def disk_devices(self) -> list[str]:
        return [p for d in self.open_disks for p in (d.device, d.uri.path)]

    def stats_device(self) -> str:
        return self.thin.data_name

    # volumes ------------------------------------------------------------------------------------
    def volume_dm_name(self, vol) -> str:
        return self.thin.tags.thin(vol.uuid)

    def make_volume(self, vol, origin=None) -> bool:
        if origin is not None:
            return self.thin.create_snap(vol.thin_id, origin.thin_id, self.volume_dm_name(origin))
        return self.thin.create_thin(vol.thin_id)

    def activate(self, vol) -> None:
        self.thin.activate(self.volume_dm_name(vol), vol.thin_id, vol.size, readonly=vol.kind == "snapshot")

    def resize_volume(self, vol) -> None:
        self.activate(vol)  # a thin device grows by a table with the new length

    def deactivate(self, vol) -> None:
        remove(self.thin.ctl, self.volume_dm_name(vol))

    def delete_volume(self, vol) -> None:
        self.thin.delete_thin(vol.thin_id)

    def mapped_bytes(self, vol) -> int:
        st = self.thin.thin_status(self.volume_dm_name(vol))
        return st.mapped_sectors * SECTOR if st else 0

    def mapped_extents(self, vol, size: int) -> list[tuple[int, int]]:
        ctl = self.thin.ctl
        meta = ctl.info(self.thin.meta_name).devnode
        return allocation.mapped_extents(ctl, self.thin.name, meta, vol.thin_id, size)

    def write_catalog(self, records: list[dict]) -> None:
        """Write the records into the older catalog slot, then advance the thin-pool's transaction
        id to the new generation (a compare-and-swap: a second writer of the pool fails here)."""
        new = cat.Catalog(self.catalog.generation, records)
        cat.write(self.catalog_device, new)
        self.thin.set_transaction_id(self.thin.status().transaction_id, new.generation)
        self.catalog = new

    def catalogued(self) -> list[dict]:
        return self.catalog.replicas

    def delete_orphan_thin(self, thin_id: int) -> None:
        self.thin.delete_thin(thin_id)

    def owns_thin_pool(self, devnum: str) -> bool:
        """Whether ``devnum`` is this pool's thin-pool device (reconcile's orphan sweep)."""
        try:
            return self.thin.devnum() == devnum
        except DmError as exc:
            if exc.errno == errno.ENXIO:
                return False
            raise
