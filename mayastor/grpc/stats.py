"""mayastor.v1.StatsRpc: pool and replica I/O counters from the kernel's block statistics.

A pool's counters are those of its dm-linear data device (every thin device maps its I/O there);
a replica's are those of its thin device; a nexus's those of its published top device. The kernel
cannot reset its counters, so ResetIoStats records a baseline that later reads subtract. Latency
ticks are milliseconds (tick_rate 1000).
"""

from __future__ import annotations

import threading

from google.protobuf import empty_pb2

from ..kernel import block
from ..kernel.dm import DmError
from . import protos as P
from .status import opt, rpc

FIELDS = (
    "read_ios",
    "read_sectors",
    "write_ios",
    "write_sectors",
    "discard_ios",
    "discard_sectors",
    "read_ticks_ms",
    "write_ticks_ms",
    "discard_ticks_ms",
)


class StatsRpc(P.stats_grpc.StatsRpcServicer):
    def __init__(self, node):
        self.node = node
        self._baseline: dict[str, dict[str, int]] = {}
        self._lock = threading.Lock()

    def _counters(self, dm_name: str) -> dict[str, int] | None:
        try:
            dev = self.node.ctl.info(dm_name).devnode
        except DmError:
            return None
        st = block.io_stats(dev)
        return {f: getattr(st, f) for f in FIELDS}

    def _io_stats(self, key: str, name: str, uuid: str, dm_name: str):
        now = self._counters(dm_name)
        if now is None:
            return None
        with self._lock:
            base = self._baseline.get(key, {})
        c = {f: max(now[f] - base.get(f, 0), 0) for f in FIELDS}
        return P.stats.IoStats(
            name=name,
            uuid=uuid,
            num_read_ops=c["read_ios"],
            bytes_read=c["read_sectors"] * block.SECTOR,
            num_write_ops=c["write_ios"],
            bytes_written=c["write_sectors"] * block.SECTOR,
            num_unmap_ops=c["discard_ios"],
            bytes_unmapped=c["discard_sectors"] * block.SECTOR,
            read_latency_ticks=c["read_ticks_ms"],
            write_latency_ticks=c["write_ticks_ms"],
            unmap_latency_ticks=c["discard_ticks_ms"],
            tick_rate=1000,
        )

    @rpc
    def GetPoolIoStats(self, request, context):
        name = opt(request, "name")
        out = []
        for p in self.node.pools.list(name=name):
            s = self._io_stats(f"pool:{p.uuid}", p.name, p.uuid, p.stats_device())
            if s is not None:
                out.append(s)
        return P.stats.PoolIoStatsResponse(stats=out)

    @rpc
    def GetReplicaIoStats(self, request, context):
        name = opt(request, "name")
        out = []
        for v in self.node.replicas.list(name=name, kinds=("replica", "clone")):
            s = self._io_stats(f"replica:{v.row.uuid}", v.row.name, v.row.uuid, self.node.replicas.dm_name(v.row))
            if s is not None:
                msg = P.stats.ReplicaIoStats(stats=s)
                if v.row.entity_id is not None:
                    msg.entity_id = v.row.entity_id
                out.append(msg)
        return P.stats.ReplicaIoStatsResponse(stats=out)

    @rpc
    def GetNexusIoStats(self, request, context):
        """A nexus's counters are those of its published top device (what its users see)."""
        name = opt(request, "name")
        out = []
        for v in self.node.nexuses.list(name=name):
            top = self.node.nexuses.stack(v.row.uuid).top_name
            s = self._io_stats(f"nexus:{v.row.uuid}", v.row.name, v.row.uuid, top)
            if s is not None:
                out.append(s)
        return P.stats.NexusIoStatsResponse(stats=out)

    @rpc
    def ResetIoStats(self, request, context):
        fresh = {}
        for p in self.node.pools.list():
            fresh[f"pool:{p.uuid}"] = self._counters(p.stats_device())
        for v in self.node.replicas.list():
            fresh[f"replica:{v.row.uuid}"] = self._counters(self.node.replicas.dm_name(v.row))
        for v in self.node.nexuses.list():
            fresh[f"nexus:{v.row.uuid}"] = self._counters(self.node.nexuses.stack(v.row.uuid).top_name)
        with self._lock:
            self._baseline = {k: c for k, c in fresh.items() if c is not None}
        return empty_pb2.Empty()
