"""mayastor.v1.PoolRpc."""

from __future__ import annotations

import logging

from google.protobuf import empty_pb2

from ..errors import NotFound
from ..kernel.errors import KernelError
from ..pool.backend import POOL_FAULTED, PoolArgs
from ..pool.service import LivePool
from . import protos as P
from .status import opt, rpc

log = logging.getLogger(__name__)


def pool_message(node, pool: LivePool) -> P.pool.Pool:
    """A pool as listed; one whose kernel device is missing or failed is listed FAULTED (the
    reason goes to the log) instead of failing the whole list."""
    cond = pool.condition()
    if cond.reason:
        log.warning("pool %s is %s: %s", pool.name, "faulted" if cond.status is None else "degraded", cond.reason)
    st = cond.status
    md = P.pool.PoolMetadataInfo(
        md_page_size=4096,
        md_pages=st.total_metadata_blocks if st else 0,
        md_used_pages=st.used_metadata_blocks if st else 0,
    )
    # used: what is allocated plus what thick replicas are promised, as io-engine reports it
    try:
        allocated = pool.used() if cond.state != POOL_FAULTED else 0
    except (KernelError, OSError, NotFound) as exc:
        log.warning("pool %s: used unknown: %s", pool.name, exc)
        allocated = 0
    capacity = pool.capacity
    used = min(allocated + node.replicas.reserved_thick(pool), capacity)
    return P.pool.Pool(
        uuid=pool.uuid,
        name=pool.name,
        disks=pool.reported_disks(),
        state=cond.state,
        capacity=capacity,
        used=used,
        pooltype=pool.pooltype,
        committed=node.replicas.committed(pool),
        cluster_size=pool.cluster_size,
        page_size=4096,
        disk_capacity=pool.disk_capacity,
        md_info=md,
    )


class PoolRpc(P.pool_grpc.PoolRpcServicer):
    def __init__(self, node):
        self.node = node

    @rpc
    def CreatePool(self, request, context):
        md_ratio = (
            request.md_args.md_resv_ratio
            if request.HasField("md_args") and request.md_args.HasField("md_resv_ratio")
            else None
        )
        args = PoolArgs(
            request.name,
            tuple(request.disks),
            opt(request, "uuid"),
            request.pooltype,
            opt(request, "cluster_size"),
            md_ratio,
        )
        return pool_message(self.node, self.node.create_pool(args))

    @rpc
    def ImportPool(self, request, context):
        args = PoolArgs(request.name, tuple(request.disks), opt(request, "uuid"), request.pooltype)
        return pool_message(self.node, self.node.import_pool(args))

    def _find(self, request) -> LivePool:
        uuid = opt(request, "uuid")
        pool = self.node.pools.find(request.name or uuid or "")
        if uuid and pool.uuid != uuid:
            raise NotFound(f"pool {request.name} with uuid {uuid} not found")
        return pool

    @rpc
    def DestroyPool(self, request, context):
        pool = self._find(request)
        self.node.pools.destroy(pool.uuid, self.node.replicas)
        return empty_pb2.Empty()

    @rpc
    def ExportPool(self, request, context):
        pool = self._find(request)
        self.node.pools.export(pool.uuid, self.node.replicas)
        return empty_pb2.Empty()

    @rpc
    def GrowPool(self, request, context):
        pool = self._find(request)
        before = pool_message(self.node, pool)
        _, pool = self.node.pools.grow(pool.uuid)
        return P.pool.GrowPoolResponse(previous_pool=before, current_pool=pool_message(self.node, pool))

    @rpc
    def ListPools(self, request, context):
        pools = self.node.pools.list(opt(request, "name"), opt(request, "uuid"))
        if request.HasField("pooltype"):
            pools = [p for p in pools if p.pooltype == request.pooltype.value]
        return P.pool.ListPoolsResponse(pools=[pool_message(self.node, p) for p in pools])
