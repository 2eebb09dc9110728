"""mayastor.v1.JsonRpc. Upstream proxies SPDK json-rpc; there is no SPDK here, so it serves our
own methods instead:

    nexus_info {"key": <nexus uuid or nexusInfoKey>}
        -> {"clean_shutdown": bool, "children": [{"uuid", "uri", "healthy"}]}
        (what Mayastor keeps in etcd as NexusInfo, kept here in SQLite)
    nexus_set_rebuild_rate {"uuid": <nexus uuid>, "bytes_per_sec": <int, 0 = unlimited>}
        -> {"uuid", "bytes_per_sec"}   (the full rebuild's copy rate limit, our extension)
"""

from __future__ import annotations

import json

from ..errors import InvalidArgument
from . import protos as P
from .status import rpc

METHODS = ("nexus_info", "nexus_set_rebuild_rate")


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
        raise InvalidArgument(f"unknown method {request.method[:80]!r}; served here: {', '.join(METHODS)}")
