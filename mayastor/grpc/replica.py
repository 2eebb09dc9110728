"""mayastor.v1.ReplicaRpc."""

from __future__ import annotations

from google.protobuf import empty_pb2

from ..replica.service import ReplicaArgs, ReplicaView
from . import protos as P
from .status import opt, rpc


def replica_message(v: ReplicaView) -> P.replica.Replica:
    r, u = v.row, v.usage
    msg = P.replica.Replica(
        name=r.name,
        uuid=r.uuid,
        pooluuid=v.pool.uuid,
        size=r.size,
        thin=r.thin,
        share=r.share,
        uri=v.uri,
        poolname=v.pool.name,
        allowed_hosts=r.allowed_hosts or [],
        is_snapshot=r.kind == "snapshot",
        is_clone=r.kind == "clone",
        pooltype=v.pool.pooltype,
        usage=P.replica.ReplicaSpaceUsage(
            capacity_bytes=u.capacity_bytes,
            allocated_bytes=u.allocated_bytes,
            cluster_size=u.cluster_size,
            num_clusters=u.num_clusters,
            num_allocated_clusters=u.num_allocated_clusters,
            allocated_bytes_snapshots=u.allocated_bytes_snapshots,
            num_allocated_clusters_snapshots=u.num_allocated_clusters_snapshots,
        ),
    )
    if r.kind == "clone" and r.source_uuid:
        msg.snapshot_uuid = r.source_uuid
    if r.entity_id is not None:
        msg.entity_id = r.entity_id
    return msg


class ReplicaRpc(P.replica_grpc.ReplicaRpcServicer):
    def __init__(self, node):
        self.svc = node.replicas

    @rpc
    def CreateReplica(self, request, context):
        args = ReplicaArgs(
            request.name,
            request.uuid,
            request.pooluuid,
            request.size,
            request.thin,
            request.share,
            tuple(request.allowed_hosts),
            opt(request, "entity_id"),
        )
        return replica_message(self.svc.create(args))

    @rpc
    def DestroyReplica(self, request, context):
        which = request.WhichOneof("pool")
        self.svc.destroy(
            request.uuid,
            request.pool_name if which == "pool_name" else None,
            request.pool_uuid if which == "pool_uuid" else None,
        )
        return empty_pb2.Empty()

    @rpc
    def ListReplicas(self, request, context):
        kinds = ("replica", "clone")
        if request.HasField("query"):
            q = request.query
            kinds = tuple(k for k, on in (("replica", q.replica), ("snapshot", q.snapshot), ("clone", q.clone)) if on)
        views = self.svc.list(
            opt(request, "name"), opt(request, "uuid"), opt(request, "poolname"), opt(request, "pooluuid"), kinds
        )
        if request.pooltypes:
            views = [v for v in views if v.pool.pooltype in request.pooltypes]
        return P.replica.ListReplicasResponse(replicas=[replica_message(v) for v in views])

    @rpc
    def ShareReplica(self, request, context):
        return replica_message(self.svc.share(request.uuid, request.share, list(request.allowed_hosts)))

    @rpc
    def UnshareReplica(self, request, context):
        return replica_message(self.svc.unshare(request.uuid))

    @rpc
    def ResizeReplica(self, request, context):
        return replica_message(self.svc.resize(request.uuid, request.requested_size))

    @rpc
    def SetReplicaEntityId(self, request, context):
        return replica_message(self.svc.set_entity_id(request.uuid, request.entity_id))
