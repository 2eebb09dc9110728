"""The health requests a node serves (JsonRpc): replica digests, nexus verify, md's check."""

from __future__ import annotations

from .. import validate
from ..errors import FailedPrecondition, InvalidArgument, NotFound
from ..kernel import block
from . import digests as D
from .verify import Verifier


def _str(params: dict, key: str) -> str:
    v = params.get(key)
    if not isinstance(v, str) or not v:
        raise InvalidArgument(f"{key} must be a non-empty string")
    return v


def _opt_str(params: dict, key: str) -> str | None:
    return None if params.get(key) is None else _str(params, key)


class HealthService:
    def __init__(self, replicas, nexuses, grpc_port: int = 10124):
        self.replicas, self.nexuses = replicas, nexuses
        self.grpc_port = grpc_port

    def replica_digests(self, params: dict) -> dict:
        offset, length, segment, algorithm = D.parse_request(params)
        uuid = _opt_str(params, "uuid")
        if uuid is None:
            name = validate.name(_str(params, "name"), "replica name")
            row = self.replicas.by_name(name)
            if row is None:
                raise NotFound(f"replica {name} not found")
            uuid = row.uuid
        with self.replicas.hold_for_io(uuid) as (row, device):
            D.check_range(offset, length, segment, block.size_bytes(device), algorithm)
            out = D.scan(device, offset, length, segment, algorithm)
        return {
            "uuid": row.uuid,
            "offset": offset,
            "length": length,
            "segment": segment,
            "algorithm": algorithm,
            "digests": [f"{d:016x}" for d in out],
        }

    def nexus_verify(self, params: dict) -> dict:
        uuid = validate.uuid(_str(params, "uuid"), "nexus uuid")
        segment, algorithm = D.parse_segment(params)
        repair = params.get("repair", False)
        if not isinstance(repair, bool):
            raise InvalidArgument("repair must be true or false")
        prefer = _opt_str(params, "prefer")
        peers = params.get("peers", {})
        if not isinstance(peers, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in peers.items()):
            raise InvalidArgument('peers must map child hosts to gRPC endpoints: {"10.0.0.2": "10.0.0.2:10124"}')
        for endpoint in peers.values():
            validate.endpoint(endpoint)
        return Verifier(self.nexuses, self.grpc_port).verify(uuid, segment, algorithm, repair, prefer, peers)

    def nexus_check(self, params: dict) -> dict:
        uuid = validate.uuid(_str(params, "uuid"), "nexus uuid")
        start = params.get("start", False)
        if not isinstance(start, bool):
            raise InvalidArgument("start must be true or false")
        with self.nexuses.lock(uuid):
            self.nexuses.running(uuid)
            st = self.nexuses.stack(uuid)
            status = st.status()
            if status is None:
                raise FailedPrecondition(f"nexus {uuid} has no raid device")
            if start:
                if not status.in_sync:
                    raise FailedPrecondition(f"nexus {uuid}: md is busy ({status.sync_action}) or a leg is not in sync")
                self.nexuses.ctl.message(st.raid_name, "check")
                status = st.status()
        return {
            "uuid": uuid,
            "sync_action": status.sync_action,
            "mismatch_cnt": status.mismatch_cnt,
            "progress": round(status.progress, 4),
            "health": status.health,
        }
