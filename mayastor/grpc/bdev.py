"""mayastor.v1.BdevRpc: block devices made by URI, shared over NVMe-oF (mayastor/bdevs.py)."""

from __future__ import annotations

from google.protobuf import empty_pb2

from ..bdevs import BdevView, listing
from . import protos as P
from .status import opt, rpc


def bdev_message(b: BdevView) -> P.bdev.Bdev:
    return P.bdev.Bdev(
        name=b.name,
        uuid=b.uuid,
        num_blocks=b.num_blocks,
        blk_size=b.blk_size,
        claimed=bool(b.claimed_by),
        claimed_by=b.claimed_by or "Orphaned",
        aliases=b.aliases,
        uri=b.uri,
        product_name=b.product_name,
        share_uri=b.share_uri,
    )


class BdevRpc(P.bdev_grpc.BdevRpcServicer):
    def __init__(self, node):
        self.node = node
        self.svc = node.bdevs

    @rpc
    def Create(self, request, context):
        return P.bdev.CreateBdevResponse(bdev=bdev_message(self.svc.create(request.uri)))

    @rpc
    def Destroy(self, request, context):
        self.svc.destroy(request.uri)
        return empty_pb2.Empty()

    @rpc
    def List(self, request, context):
        return P.bdev.ListBdevResponse(bdevs=[bdev_message(b) for b in listing(self.node, opt(request, "name"))])

    @rpc
    def Share(self, request, context):
        v = self.svc.share(request.name, request.protocol, list(request.allowed_hosts))
        return P.bdev.BdevShareResponse(bdev=bdev_message(v))

    @rpc
    def Unshare(self, request, context):
        self.svc.unshare(request.name)
        return empty_pb2.Empty()
