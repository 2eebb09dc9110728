"""Prometheus metrics (prometheus-client), gathered at scrape time from the same services the gRPC
API reads: pool capacity and use, replica and nexus I/O counters and latency from the kernel's
block statistics, nexus and child states, rebuild progress. Off unless --metrics-port is given."""

from __future__ import annotations

import logging

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import CollectorRegistry

from .kernel import block
from .kernel.dm import DmError
from .nexus import state as S

log = logging.getLogger(__name__)


class NodeCollector:
    def __init__(self, node):
        self.node = node

    def _io(self, fams: dict, kind: str, labels: list[str], dm_name: str) -> None:
        try:
            st = block.io_stats(self.node.ctl.info(dm_name).devnode)
        except (DmError, OSError):
            return
        for op, ios, sectors, ticks in (
            ("read", st.read_ios, st.read_sectors, st.read_ticks_ms),
            ("write", st.write_ios, st.write_sectors, st.write_ticks_ms),
            ("unmap", st.discard_ios, st.discard_sectors, st.discard_ticks_ms),
        ):
            fams[f"{kind}_ops"].add_metric(labels + [op], ios)
            fams[f"{kind}_bytes"].add_metric(labels + [op], sectors * block.SECTOR)
            fams[f"{kind}_latency"].add_metric(labels + [op], ticks / 1000.0)

    def collect(self):
        node = self.node
        nl = ["node"]
        cap = GaugeMetricFamily("mayastor_pool_capacity_bytes", "Pool data capacity", labels=nl + ["name", "uuid"])
        used = GaugeMetricFamily("mayastor_pool_used_bytes", "Pool data in use", labels=nl + ["name", "uuid"])
        fams = {}
        for kind, what in (("replica", ["name", "uuid"]), ("nexus", ["name", "uuid"])):
            labels = nl + what + ["op"]
            fams[f"{kind}_ops"] = CounterMetricFamily(
                f"mayastor_{kind}_io_ops", f"{kind} I/O operations (kernel block statistics)", labels=labels
            )
            fams[f"{kind}_bytes"] = CounterMetricFamily(
                f"mayastor_{kind}_io_bytes", f"{kind} bytes moved", labels=labels
            )
            fams[f"{kind}_latency"] = CounterMetricFamily(
                f"mayastor_{kind}_io_time_seconds", f"{kind} time spent on I/O", labels=labels
            )
        nexus_state = GaugeMetricFamily(
            "mayastor_nexus_state",
            "Nexus state (1 online, 2 degraded, 3 faulted, 4 shutting down, 5 shutdown)",
            labels=nl + ["name", "uuid"],
        )
        child_state = GaugeMetricFamily(
            "mayastor_nexus_child_state",
            "Child state (1 online, 2 degraded, 3 faulted)",
            labels=nl + ["nexus", "uri", "reason"],
        )
        progress = GaugeMetricFamily(
            "mayastor_nexus_child_rebuild_progress_percent", "Rebuild progress of a child", labels=nl + ["nexus", "uri"]
        )
        rebuilds = GaugeMetricFamily("mayastor_nexus_rebuilds", "Rebuilds running", labels=nl + ["name", "uuid"])
        try:
            for p in node.pools.list():
                cap.add_metric([node.name, p.name, p.uuid], p.capacity)
                used.add_metric([node.name, p.name, p.uuid], p.used())
            for v in node.replicas.list(kinds=("replica", "clone")):
                self._io(fams, "replica", [node.name, v.row.name, v.row.uuid], node.replicas.dm_name(v.row))
            for v in node.nexuses.list():
                r = v.row
                nexus_state.add_metric([node.name, r.name, r.uuid], S.NEXUS_WIRE.get(r.state, 0))
                rebuilds.add_metric([node.name, r.name, r.uuid], v.rebuilds)
                for k in v.children:
                    if k.position < 0:
                        continue
                    child_state.add_metric(
                        [node.name, r.uuid, k.uri, S.REASON_NAMES.get(k.reason, str(k.reason))],
                        S.CHILD_STATE_WIRE.get(k.state, 0),
                    )
                    progress.add_metric([node.name, r.uuid, k.uri], v.progress.get(k.uri, 0))
                self._io(fams, "nexus", [node.name, r.name, r.uuid], node.nexuses.stack(r.uuid).top_name)
        except Exception:
            log.exception("metrics scrape failed")
        yield from (cap, used, nexus_state, child_state, progress, rebuilds, *fams.values())


def serve(node, address: str, port: int):
    """Start the HTTP endpoint (/metrics) in a daemon thread; returns the server."""
    from prometheus_client import start_http_server

    registry = CollectorRegistry()
    registry.register(NodeCollector(node))
    server, _thread = start_http_server(port, addr=address, registry=registry)
    return server
