"""CreateNexusSnapshot: one point in time across the replicas of a published volume.

The nexus's I/O is held (its top device suspended *with* a flush, so every acknowledged write is
on every leg) while each chosen replica is snapshotted on its own node: a replica of this node
directly, a remote one (an ``nvmf://`` child) through that node's ``CreateReplicaSnapshot`` on
``<child host>:<our gRPC port>`` (io-engine sends an NVMe vendor command down the child's
connection instead; the kernel target has none). Each replica's outcome is an errno, 0 = done, as
io-engine reports it; a skipped one is listed as skipped.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .. import validate
from ..errors import FailedPrecondition, InvalidArgument, MayastorError
from ..netaddr import host_port
from .uri import parse as parse_uri

PEER_TIMEOUT = 30.0
ERRNO_OF_CODE = {
    "NOT_FOUND": errno.ENOENT,
    "ALREADY_EXISTS": errno.EEXIST,
    "RESOURCE_EXHAUSTED": errno.ENOSPC,
    "INVALID_ARGUMENT": errno.EINVAL,
    "FAILED_PRECONDITION": errno.EBUSY,
    "DEADLINE_EXCEEDED": errno.ETIMEDOUT,
    "UNAVAILABLE": errno.ENOTCONN,
}


@dataclass(frozen=True)
class Wanted:
    replica_uuid: str
    snapshot_uuid: str
    skip: bool = False


@dataclass
class Outcome:
    timestamp: datetime
    done: list[tuple[str, int]] = field(default_factory=list)  # (replica uuid, errno)
    skipped: list[str] = field(default_factory=list)


def create(
    svc, nexus_uuid: str, entity_id: str, txn_id: str, snapshot_name: str, wanted: list[Wanted], grpc_port: int
) -> Outcome:
    nexus_uuid = validate.uuid(nexus_uuid, "nexus uuid")
    validate.snapshot_name(snapshot_name)
    if not wanted:
        raise InvalidArgument("no replica to snapshot")
    for w in wanted:
        validate.uuid(w.replica_uuid, "replica uuid")
        if not w.skip:
            validate.uuid(w.snapshot_uuid, "snapshot uuid")
    if len({w.replica_uuid for w in wanted}) != len(wanted):
        raise InvalidArgument("a replica is listed twice")
    with svc.lock(nexus_uuid):
        _row, kids = svc.running(nexus_uuid)
        by_uuid = {k.device_uuid: k for k in kids if k.device_uuid}
        missing = [w.replica_uuid for w in wanted if w.replica_uuid not in by_uuid]
        if missing:
            raise InvalidArgument(f"not a child of nexus {nexus_uuid}: {', '.join(missing)}")
        st = svc.stack(nexus_uuid)
        if not st.exists() or st.top_path_failed():
            raise FailedPrecondition(f"nexus {nexus_uuid} has no healthy child: nothing to snapshot")
        svc.ctl.suspend(st.top_name)  # flush: what was acknowledged is on every leg
        try:
            out = Outcome(datetime.now(UTC))
            for w in wanted:
                if w.skip:
                    out.skipped.append(w.replica_uuid)
                    continue
                kid = by_uuid[w.replica_uuid]
                code = (
                    errno.ENODEV
                    if kid.state != "online"
                    else _one(svc, kid.uri, w, snapshot_name, entity_id, txn_id, grpc_port)
                )
                out.done.append((w.replica_uuid, code))
        finally:
            svc.ctl.resume(st.top_name)
    return out


def _one(svc, uri: str, w: Wanted, name: str, entity_id: str, txn_id: str, grpc_port: int) -> int:
    child = parse_uri(uri)
    if child.scheme == "bdev":
        try:
            svc.ctx.replicas.create_snapshot(w.replica_uuid, w.snapshot_uuid, name, entity_id, txn_id)
            return 0
        except MayastorError as exc:
            return ERRNO_OF_CODE.get(exc.code, errno.EIO)
    if child.scheme == "nvmf":
        return _remote(host_port(child.host, grpc_port), w, name, entity_id, txn_id)
    return errno.ENOTSUP  # a malloc, file or nbd child has no snapshots


def _remote(endpoint: str, w: Wanted, name: str, entity_id: str, txn_id: str) -> int:
    import grpc

    from ..grpc import protos as P

    with grpc.insecure_channel(endpoint) as ch:
        try:
            P.snapshot_grpc.SnapshotRpcStub(ch).CreateReplicaSnapshot(
                P.snapshot.CreateReplicaSnapshotRequest(
                    replica_uuid=w.replica_uuid,
                    snapshot_uuid=w.snapshot_uuid,
                    snapshot_name=name,
                    entity_id=entity_id,
                    txn_id=txn_id,
                ),
                timeout=PEER_TIMEOUT,
            )
            return 0
        except grpc.RpcError as exc:
            return ERRNO_OF_CODE.get(exc.code().name, errno.EIO)
