"""One gRPC server for every v1 service, as io-engine runs on [::]:10124."""

from __future__ import annotations

import logging
from concurrent import futures

import grpc

from . import protos as P
from .bdev import BdevRpc
from .host import HostRpc
from .json_rpc import JsonRpc
from .nexus import NexusRpc
from .pool import PoolRpc
from .replica import ReplicaRpc
from .snapshot import SnapshotRpc
from .stats import StatsRpc
from .testrpc import TestRpc

log = logging.getLogger("mayastor.grpc")


def build_server(node, address: str, registration, workers: int = 32) -> tuple[grpc.Server, int]:
    """Bind the v1 services; returns the server (not started) and the port bound.
    ``registration``: the RegisterRequest GetMayastorInfo answers."""
    # no SO_REUSEPORT (grpc's default): a second daemon must fail to bind, not share the port
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grpc"), options=[("grpc.so_reuseport", 0)]
    )
    P.pool_grpc.add_PoolRpcServicer_to_server(PoolRpc(node), server)
    P.replica_grpc.add_ReplicaRpcServicer_to_server(ReplicaRpc(node), server)
    P.snapshot_grpc.add_SnapshotRpcServicer_to_server(SnapshotRpc(node), server)
    P.nexus_grpc.add_NexusRpcServicer_to_server(NexusRpc(node), server)
    P.json_grpc.add_JsonRpcServicer_to_server(JsonRpc(node), server)
    P.host_grpc.add_HostRpcServicer_to_server(HostRpc(node, registration), server)
    P.stats_grpc.add_StatsRpcServicer_to_server(StatsRpc(node), server)
    P.test_grpc.add_TestRpcServicer_to_server(TestRpc(node), server)
    P.bdev_grpc.add_BdevRpcServicer_to_server(BdevRpc(node), server)
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot bind gRPC to {address}")
    return server, port
