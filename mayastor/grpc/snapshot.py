"""mayastor.v1.SnapshotRpc: replica snapshots and clones, and nexus snapshots (nexus/snapshot.py)."""

from __future__ import annotations

from google.protobuf import empty_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from ..nexus import snapshot as nexus_snapshot
from ..replica.service import ReplicaView
from . import protos as P
from .nexus import nexus_message
from .replica import replica_message
from .status import opt, rpc


def snapshot_info(svc, v: ReplicaView) -> P.snapshot.SnapshotInfo:
    r = v.row
    ts = Timestamp()
    if r.created_at is not None:
        ts.FromDatetime(r.created_at)
    src = svc.row_any(r.source_uuid) if r.source_uuid else None
    return P.snapshot.SnapshotInfo(
        snapshot_uuid=r.uuid,
        snapshot_name=r.name,
        snapshot_size=r.size,
        num_clones=v.num_clones,
        timestamp=ts,
        source_uuid=r.source_uuid or "",
        source_size=src.size if src else r.size,
        pool_uuid=v.pool.uuid,
        pool_name=v.pool.name,
        entity_id=r.entity_id or "",
        txn_id=r.txn_id or "",
        valid_snapshot=True,
        ready_as_source=True,
        referenced_bytes=v.referenced_bytes,
        discarded_snapshot=r.discarded,
    )


class SnapshotRpc(P.snapshot_grpc.SnapshotRpcServicer):
    def __init__(self, node):
        self.node, self.svc = node, node.replicas

    @rpc
    def CreateReplicaSnapshot(self, request, context):
        v = self.svc.create_snapshot(
            request.replica_uuid, request.snapshot_uuid, request.snapshot_name, request.entity_id, request.txn_id
        )
        return P.snapshot.CreateReplicaSnapshotResponse(
            replica_uuid=request.replica_uuid, snapshot=snapshot_info(self.svc, v)
        )

    @rpc
    def CreateNexusSnapshot(self, request, context):
        wanted = [
            nexus_snapshot.Wanted(d.replica_uuid, d.snapshot_uuid if d.HasField("snapshot_uuid") else "", d.skip)
            for d in request.replicas
        ]
        out = nexus_snapshot.create(
            self.node.nexuses,
            request.nexus_uuid,
            request.entity_id,
            request.txn_id,
            request.snapshot_name,
            wanted,
            self.node.health.grpc_port,
        )
        ts = Timestamp()
        ts.FromDatetime(out.timestamp)
        return P.snapshot.NexusCreateSnapshotResponse(
            nexus=nexus_message(self.node.nexuses.view(request.nexus_uuid)),
            snapshot_timestamp=ts,
            replicas_done=[
                P.snapshot.NexusCreateSnapshotReplicaStatus(replica_uuid=u, status_code=c) for u, c in out.done
            ],
            replicas_skipped=out.skipped,
        )

    @rpc
    def ListSnapshot(self, request, context):
        q = request.query if request.HasField("query") else None
        views = self.svc.list_snapshots(
            opt(request, "source_uuid"),
            opt(request, "snapshot_uuid"),
            opt(q, "discarded") if q else None,
            opt(q, "invalid") if q else None,
        )
        return P.snapshot.ListSnapshotsResponse(snapshots=[snapshot_info(self.svc, v) for v in views])

    @rpc
    def DestroySnapshot(self, request, context):
        which = request.WhichOneof("pool")
        self.svc.destroy_snapshot(
            request.snapshot_uuid,
            request.pool_name if which == "pool_name" else None,
            request.pool_uuid if which == "pool_uuid" else None,
        )
        return empty_pb2.Empty()

    @rpc
    def CreateSnapshotClone(self, request, context):
        return replica_message(self.svc.create_clone(request.snapshot_uuid, request.clone_name, request.clone_uuid))

    @rpc
    def ListSnapshotClone(self, request, context):
        views = self.svc.list_clones(opt(request, "snapshot_uuid"))
        return P.snapshot.ListSnapshotCloneResponse(replicas=[replica_message(v) for v in views])
