"""A client's view of one node: a stub per v1 service over one channel."""

from __future__ import annotations

import grpc

from . import protos as P


class Stubs:
    def __init__(self, channel: grpc.Channel):
        self.channel = channel
        self.pool = P.pool_grpc.PoolRpcStub(channel)
        self.replica = P.replica_grpc.ReplicaRpcStub(channel)
        self.snapshot = P.snapshot_grpc.SnapshotRpcStub(channel)
        self.nexus = P.nexus_grpc.NexusRpcStub(channel)
        self.host = P.host_grpc.HostRpcStub(channel)
        self.stats = P.stats_grpc.StatsRpcStub(channel)
        self.json = P.json_grpc.JsonRpcStub(channel)
        self.test = P.test_grpc.TestRpcStub(channel)
        self.bdev = P.bdev_grpc.BdevRpcStub(channel)
