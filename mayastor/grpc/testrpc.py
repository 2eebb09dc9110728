"""mayastor.v1.TestRpc: features, WipeReplica (streamed), fault injection (not built here)."""

from __future__ import annotations

import logging

from google.protobuf.duration_pb2 import Duration

from ..errors import DataLoss, InvalidArgument, Unimplemented
from ..health import wipe
from . import protos as P
from .status import rpc, rpc_stream

log = logging.getLogger("mayastor.grpc")


def _response(p: wipe.WipeProgress) -> P.test.WipeReplicaResponse:
    r = P.test.WipeReplicaResponse(
        uuid=p.uuid,
        total_bytes=p.total_bytes,
        chunk_size=p.chunk_size,
        last_chunk_size=p.last_chunk_size,
        total_chunks=p.total_chunks,
        wiped_bytes=p.wiped_bytes,
        wiped_chunks=p.wiped_chunks,
        remaining_bytes=p.remaining_bytes,
    )
    if p.since is not None:
        d = Duration()
        d.FromNanoseconds(int(p.since * 1e9))
        r.since.CopyFrom(d)
    if p.crc32 is not None:
        r.crc32 = p.crc32
    return r


class TestRpc(P.test_grpc.TestRpcServicer):
    __test__ = False  # not a pytest class

    def __init__(self, node):
        self.node = node

    @rpc
    def GetFeatures(self, request, context):
        return P.test.TestFeatures(wipe_methods=list(wipe.SUPPORTED), cksum_algs=[wipe.CRC32C])

    @rpc_stream
    def WipeReplica(self, request, context):
        if not request.HasField("wipe_options"):
            raise InvalidArgument("Missing StreamWipeOptions")
        if not request.wipe_options.HasField("options"):
            raise InvalidArgument("Missing WipeOptions")
        o = request.wipe_options.options
        method = wipe.check_method(o.wipe_method, o.cksum_alg)
        which = request.WhichOneof("pool")
        replicas = self.node.replicas
        with replicas.hold_for_io(
            request.uuid,
            pool_name=request.pool_name if which == "pool_name" else None,
            pool_uuid=request.pool_uuid if which == "pool_uuid" else None,
        ) as (row, device):
            p = wipe.plan_device(row.uuid, device, request.wipe_options.chunk_size)
            try:
                for progress in wipe.run(device, method, p, lambda: not context.is_active()):
                    yield _response(progress)
            except OSError as exc:
                raise DataLoss(f"Error while wiping the replica {row.uuid} (IO Error): {exc}") from None
            if not context.is_active():
                log.warning("wipe of %s aborted: client disconnected", row.uuid)

    @rpc
    def AddFaultInjection(self, request, context):
        raise Unimplemented("Fault injection feature is disabled")

    @rpc
    def RemoveFaultInjection(self, request, context):
        raise Unimplemented("Fault injection feature is disabled")

    @rpc
    def ListFaultInjections(self, request, context):
        raise Unimplemented("Fault injection feature is disabled")
