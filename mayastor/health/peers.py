"""Asking another node for a replica's digests (its JsonRpc ``replica_digests``)."""

from __future__ import annotations

import json

import grpc

from ..grpc import protos as P

TIMEOUT = 600  # seconds for one window of digests: a slow disk must not look like a dead peer


class PeerError(Exception):
    """The peer did not answer for this replica (unreachable, unknown replica, refused)."""


class Peer:
    """Another node's JsonRpc, over one channel for the whole verify."""

    def __init__(self, endpoint: str):
        self.endpoint = endpoint
        self._channel = grpc.insecure_channel(endpoint)
        self._stub = P.json_grpc.JsonRpcStub(self._channel)

    def digests(self, ident: dict, offset: int, length: int, segment: int, algorithm: str) -> list[int]:
        params = {**ident, "offset": offset, "length": length, "segment": segment, "algorithm": algorithm}
        try:
            reply = self._stub.JsonRpcCall(
                P.json.JsonRpcRequest(method="replica_digests", params=json.dumps(params)), timeout=TIMEOUT
            )
        except grpc.RpcError as exc:
            raise PeerError(f"{exc.code().name}: {exc.details()}") from None
        got = [int(d, 16) for d in json.loads(reply.result)["digests"]]
        if len(got) != -(-length // segment):
            raise PeerError(
                f"{self.endpoint} returned {len(got)} digests for {length} bytes in {segment}-byte segments"
            )
        return got

    def close(self) -> None:
        self._channel.close()
