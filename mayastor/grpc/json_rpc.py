"""mayastor.v1.JsonRpc. Upstream proxies SPDK json-rpc; there is no SPDK here, so it serves our
own methods instead:

    nexus_info {"key": <nexus uuid or nexusInfoKey>}
        -> {"clean_shutdown": bool, "children": [{"uuid", "uri", "healthy"}]}
        (what Mayastor keeps in etcd as NexusInfo, kept here in SQLite)
    nexus_set_rebuild_rate {"uuid": <nexus uuid>, "bytes_per_sec": <int, 0 = unlimited>}
        -> {"uuid", "bytes_per_sec"}   (the full rebuild's copy rate limit, our extension)
    replica_digests {"uuid" or "name", "offset", "length", "segment"?, "algorithm"?: "xxh3"|"crc32c"}
        -> {"uuid", "offset", "length", "segment", "algorithm", "digests": [hex, ...]}
        (a replica's per-segment digests, computed on its own node for a remote nexus verify)
    nexus_verify {"uuid", "segment"?, "algorithm"?, "repair"?: bool, "prefer"?: <child uri>,
                  "peers"?: {<child host>: <grpc endpoint>}}
        -> the report of mayastor/health/verify.py (mismatching segments by offset, repairs)
    nexus_check {"uuid", "start"?: bool}
        -> {"uuid", "sync_action", "mismatch_cnt", "progress", "health"}: md's own cross-check of
        the legs (dm-raid "check"), started when asked, its counters always
"""

from __future__ import annotations

import json

from ..errors import InvalidArgument
from . import protos as P
from .status import rpc

METHODS = ("nexus_info", "nexus_set_rebuild_rate", "replica_digests", "nexus_verify", "nexus_check")


class JsonRpc(P.json_grpc.JsonRpcServicer):
    def __init__(self, node):
        self.node = node

    @rpc
    def JsonRpcCall(self, request, context):
        try:
            params = json.loads(request.params) if request.params else {}
        except ValueError:
            raise InvalidArgument("params must be a JSON object") from None
        if request.method == "nexus_info":
            key = params.get("key") if isinstance(params, dict) else None
            if not isinstance(key, str) or not key:
                raise InvalidArgument('nexus_info needs {"key": "<nexus uuid or info key>"}')
            return P.json.JsonRpcResponse(result=json.dumps(self.node.nexuses.info(key)))
        if request.method == "nexus_set_rebuild_rate":
            uuid = params.get("uuid") if isinstance(params, dict) else None
            rate = params.get("bytes_per_sec") if isinstance(params, dict) else None
            if not isinstance(uuid, str) or not isinstance(rate, int) or isinstance(rate, bool):
                raise InvalidArgument('nexus_set_rebuild_rate needs {"uuid": "<nexus uuid>", "bytes_per_sec": <int>}')
            v = self.node.nexuses.set_rebuild_rate(uuid, rate)
            return P.json.JsonRpcResponse(result=json.dumps({"uuid": v.row.uuid, "bytes_per_sec": v.row.rebuild_rate}))
        if request.method in ("replica_digests", "nexus_verify", "nexus_check"):
            if not isinstance(params, dict):
                raise InvalidArgument(f"{request.method} needs a JSON object of parameters")
            handler = getattr(self.node.health, request.method)
            return P.json.JsonRpcResponse(result=json.dumps(handler(params)))
        raise InvalidArgument(f"unknown method {request.method[:80]!r}; served here: {', '.join(METHODS)}")
