"""The kernel side of a pool: dm-linear metadata and data areas over the disks, a dm-thin pool on
them, and thin devices in it. Every operation is idempotent so reconcile can replay it.

Device names carry the ownership tag (``MAYASTOR-<node>-``), used as dm name and dm uuid alike, so
reconcile can tell our devices from anyone else's. Tables refer to devices by major:minor.
"""

from __future__ import annotations

import errno
import os

from ..kernel import dm
from ..kernel.block import SECTOR
from ..kernel.dm_targets import ThinPoolStatus, ThinStatus, linear_params, thin_params, thin_pool_params
from ..naming import Tags
from .label import PoolLabel, linear_segments

# Thin I/O past the end of the data space errors at once instead of queueing for 60 s.
POOL_FEATURES = ("error_if_no_space",)


class ThinPool:
    def __init__(self, ctl: dm.DeviceMapper, tags: Tags, label: PoolLabel, devices: list[str]):
        self.ctl, self.tags, self.label, self.devices = ctl, tags, label, devices
        self.name, self.data_name, self.meta_name = tags.pool_devices(label.pool_uuid)

    @property
    def block_sectors(self) -> int:
        return self.label.cluster_size // SECTOR

    def _linear(self, start: int, length: int) -> list[dm.Target]:
        devnums = [f"{os.major(os.stat(d).st_rdev)}:{os.minor(os.stat(d).st_rdev)}" for d in self.devices]
        return [
            dm.Target(s, n, "linear", linear_params(dev, off))
            for s, n, dev, off in linear_segments(self.label, devnums, start, length)
        ]

    def _pool_table(self, meta: dm.DeviceInfo, data: dm.DeviceInfo) -> list[dm.Target]:
        params = thin_pool_params(meta.devnum, data.devnum, self.block_sectors, 0, POOL_FEATURES)
        return [dm.Target(0, self.label.data_len // SECTOR, "thin-pool", params)]

    def assemble(self, fresh: bool = False) -> dm.DeviceInfo:
        """Bring the pool up. ``fresh``: a new pool, so its metadata header is zeroed first."""
        lab = self.label
        meta = dm.ensure(self.ctl, self.meta_name, self._linear(0, lab.metadata_len))
        if fresh and not self.ctl.exists(self.name):
            fd = os.open(meta.devnode, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.pwrite(fd, bytes(4096), 0)
                os.fsync(fd)
            finally:
                os.close(fd)
        data = dm.ensure(self.ctl, self.data_name, self._linear(lab.metadata_len, lab.data_len))
        return dm.ensure(self.ctl, self.name, self._pool_table(meta, data))

    def is_up(self) -> bool:
        return self.ctl.exists(self.name)

    def teardown(self) -> None:
        for name in (self.name, self.data_name, self.meta_name):
            dm.remove(self.ctl, name)

    def status(self) -> ThinPoolStatus:
        return ThinPoolStatus.parse(self.ctl.status(self.name)[0].params)

    def devnum(self) -> str:
        return self.ctl.info(self.name).devnum

    # thin devices -------------------------------------------------------------------------------
    def create_thin(self, thin_id: int) -> bool:
        """True if created, False if the id already existed."""
        try:
            self.ctl.message(self.name, f"create_thin {thin_id}")
            return True
        except dm.DmError as exc:
            if exc.errno == errno.EEXIST:
                return False
            raise

    def create_snap(self, thin_id: int, origin_id: int, origin_name: str | None) -> bool:
        """Snapshot ``origin_id``; its active device (if any) is suspended around it, as dm-thin needs."""
        suspended = None
        if origin_name and self.ctl.exists(origin_name):
            self.ctl.suspend(origin_name)
            suspended = origin_name
        try:
            self.ctl.message(self.name, f"create_snap {thin_id} {origin_id}")
            return True
        except dm.DmError as exc:
            if exc.errno == errno.EEXIST:
                return False
            raise
        finally:
            if suspended:
                self.ctl.resume(suspended)

    def delete_thin(self, thin_id: int) -> None:
        try:
            self.ctl.message(self.name, f"delete {thin_id}")
        except dm.DmError as exc:
            if exc.errno != errno.ENODATA:  # already deleted
                raise

    def set_transaction_id(self, old: int, new: int) -> None:
        self.ctl.message(self.name, f"set_transaction_id {old} {new}")

    def activate(self, name: str, thin_id: int, size: int, readonly: bool = False) -> dm.DeviceInfo:
        table = [dm.Target(0, size // SECTOR, "thin", thin_params(self.devnum(), thin_id))]
        return dm.ensure(self.ctl, name, table, readonly=readonly)

    def thin_status(self, name: str) -> ThinStatus | None:
        try:
            return ThinStatus.parse(self.ctl.status(name)[0].params)
        except dm.DmError as exc:
            if exc.errno == errno.ENXIO:
                return None
            raise
