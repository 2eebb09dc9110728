"""What a live pool offers the rest of the daemon, whatever holds it: our own label + dm-thin
pools (service.LivePool) or LVM volume groups (lvm_pool.LvmPool).

A pool holds volumes — replicas, snapshots and clones — each a thin device addressed by its row
(uuid, thin_id, size, kind; store.Replica). The replica service decides what to make and when;
a backend only makes, activates and removes its devices, idempotently, so reconcile can replay
any step. Pool-wide operations (create, import, export, destroy, grow) live in PoolService,
which picks the backend by pool type.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from ..kernel.dm_targets import ThinPoolStatus

POOL_TYPE_LVS, POOL_TYPE_LVM = 0, 1  # PoolType wire values
POOL_ONLINE, POOL_DEGRADED, POOL_FAULTED = 1, 2, 3  # PoolState


@dataclass(frozen=True)
class PoolCondition:
    state: int  # PoolState wire value
    status: ThinPoolStatus | None  # None when the device cannot be read (or an LVM pool has no thin pool yet)
    reason: str  # why it is not online


@dataclass(frozen=True)
class PoolArgs:
    """CreatePool's and ImportPool's arguments (io-engine's PoolArgs): what the gRPC message and
    the pool yaml at start say."""

    name: str
    disks: tuple[str, ...]
    uuid: str | None = None
    pooltype: int = POOL_TYPE_LVS
    cluster_size: int | None = None
    md_resv_ratio: float | None = None


class PoolBackend(ABC):
    """A live pool. ``uuid``, ``name`` and ``disks`` (canonical URIs) are set by the subclass."""

    uuid: str
    name: str
    disks: list[str]
    pooltype: int

    # numbers ------------------------------------------------------------------------------------
    @property
    @abstractmethod
    def capacity(self) -> int: ...

    @property
    @abstractmethod
    def cluster_size(self) -> int:
        """The allocation unit: replica sizes are rounded up to it."""

    @property
    @abstractmethod
    def disk_capacity(self) -> int: ...

    @abstractmethod
    def used(self) -> int:
        """Bytes allocated (thick replicas' promises are added by the replica service)."""

    @abstractmethod
    def condition(self) -> PoolCondition:
        """What the kernel says of the pool now; never raises for a missing or failed device."""

    @abstractmethod
    def out_of_space(self) -> bool:
        """A write to an unallocated block would fail with ENOSPC now."""

    @abstractmethod
    def reported_disks(self) -> list[str]: ...

    @abstractmethod
    def disk_devices(self) -> list[str]:
        """Block devices (and the files behind loop devices) the pool holds."""

    @abstractmethod
    def stats_device(self) -> str:
        """The dm name whose I/O counters are the pool's."""

    # volumes ------------------------------------------------------------------------------------
    @abstractmethod
    def volume_dm_name(self, vol) -> str:
        """The dm name of a volume's active device."""

    @abstractmethod
    def make_volume(self, vol, origin=None) -> bool:
        """Make the thin device of ``vol`` (a snapshot of ``origin`` when given); True when made or
        already ours, False when ``vol.thin_id`` is taken by something else (try another id)."""

    @abstractmethod
    def activate(self, vol) -> None:
        """Make the volume's device exist with the row's size (read-only for a snapshot)."""

    @abstractmethod
    def resize_volume(self, vol) -> None:
        """Grow the volume to ``vol.size`` (its device active)."""

    @abstractmethod
    def deactivate(self, vol) -> None: ...

    @abstractmethod
    def delete_volume(self, vol) -> None:
        """Delete the (inactive) volume and its data; nothing when it is gone already."""

    @abstractmethod
    def mapped_bytes(self, vol) -> int:
        """Bytes the volume's thin device maps (0 when it is not active)."""

    @abstractmethod
    def mapped_extents(self, vol, size: int) -> list[tuple[int, int]]:
        """Byte extents of the volume that hold data, cut at ``size``."""

    def prepare_volumes(self) -> None:  # noqa: B027 - an optional hook, a no-op by default
        """Make what volumes need before the first is made (an LVM pool's thin pool); called
        before space is checked, so the check sees the pool as volumes will."""

    @abstractmethod
    def write_catalog(self, records: list[dict]) -> None:
        """Keep the ready volumes' records (service._record) with the pool itself, so that an
        import brings them back."""

    @abstractmethod
    def catalogued(self) -> list[dict]:
        """The volume records the pool itself keeps (as written by write_catalog)."""

    def owns_thin_pool(self, devnum: str) -> bool:
        """Whether ``devnum`` is a thin-pool device whose ids this daemon hands out (reconcile
        deletes thin ids no row claims only there)."""
        return False

    def delete_orphan_thin(self, thin_id: int) -> None:  # noqa: B027 - an optional hook
        """Delete a thin id no row claims (only where owns_thin_pool said so)."""
