"""One node's services wired together: the state store, the kernel handles and the domain services."""

from __future__ import annotations

import logging

from . import validate
from .bdevs import BdevService
from .exports import NvmfTarget
from .health.service import HealthService
from .kernel.dm import DeviceMapper
from .locks import KeyedLocks
from .naming import Tags
from .nexus.service import NexusService
from .nexus.watcher import NexusWatcher
from .paths import PathPolicy
from .pool.backend import PoolArgs
from .pool.service import LivePool, PoolService
from .replica.service import ReplicaService
from .store.db import Store

log = logging.getLogger(__name__)


class Node:
    def __init__(
        self,
        name: str,
        store: Store,
        target_address: str,
        nvmf_port: int = 8420,
        nexus_port: int = 4421,
        paths: PathPolicy | None = None,
        pstore=None,
        meta_dir: str | None = None,
    ):
        self.name = validate.node_name(name)
        self.store = store
        self.ctl = DeviceMapper()
        self.tags = Tags(self.name)
        self.locks = KeyedLocks()
        self.paths = paths or PathPolicy()
        self.pools = PoolService(store, self.ctl, self.tags, self.locks, self.paths)
        self.target = NvmfTarget(target_address, nvmf_port)
        self.replicas = ReplicaService(store, self.pools, self.target, self.locks)
        self.nexuses = NexusService(
            self.name,
            store,
            self.ctl,
            self.tags,
            self.locks,
            self.replicas,
            self.target,
            (nexus_port, nvmf_port),
            self.pools.loop_tag,
            self.paths,
            pstore,
            meta_dir,
        )
        self.replicas.share_listeners.append(self.nexuses.replica_share_changed)
        self.bdevs = BdevService(store, self.ctl, self.tags, self.target, self.nexuses.ctx)
        self.nexuses.ctx.bdevs = self.bdevs  # bdev:/// children that are CreateBdev's devices
        self.watcher = NexusWatcher(self.nexuses)
        self.health = HealthService(self.replicas, self.nexuses)  # grpc_port set once the server is bound

    # pools with their replicas (create-or-import: an imported pool brings its replicas back) ----
    def create_pool(self, args: PoolArgs) -> LivePool:
        pool = self.pools.create(
            args.name, list(args.disks), args.uuid, args.pooltype, args.cluster_size, args.md_resv_ratio
        )
        self.replicas.bring_up(pool)
        return pool

    def import_pool(self, args: PoolArgs) -> LivePool:
        pool = self.pools.import_pool(args.name, list(args.disks), args.uuid, args.pooltype)
        self.replicas.bring_up(pool)
        return pool

    def reconcile(self) -> None:
        from .reconcile import reconcile

        reconcile(self)

    def healthy(self) -> bool:
        """For the systemd watchdog: the state store answers and the fault watcher runs."""
        try:
            self.store.ping()
        except Exception:  # noqa: BLE001
            return False
        return self.watcher.alive()

    def start_watching(self) -> None:
        self.watcher.start()
        self.nexuses.rebuilds.resume_persisted()  # full rebuilds carry on from their checkpoints

    def close(self) -> None:
        self.nexuses.rebuilds.halt_all()  # they stay recorded as running and resume at the next start
        self.watcher.stop()
        self.ctl.close()
        self.store.close()
