"""The core agent's special handling of status codes (contract §4), replayed against the daemon:
for each row the request that triggers it, and the agent's own reaction computed from our answer
(the same rules as its node wrapper), must give the outcome the agent needs."""

from __future__ import annotations

import uuid

import grpc
import pytest

from mayastor.grpc import protos as P

from .daemon import serve
from .util import wait_for

MiB = 1 << 20
C = grpc.StatusCode
NODE = "agentcodes"
# ResizeNexus answers the agent treats as "status unknown" and retries for ever
UNKNOWN_STATUS = {C.UNKNOWN, C.DEADLINE_EXCEEDED, C.INTERNAL, C.UNAVAILABLE}


def U() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def daemon(tmp_path, request):
    yield from serve(tmp_path, request, NODE)


def answer(method, request) -> tuple[C | None, dict]:
    """(code or None, trailing metadata)."""
    try:
        method(request, timeout=60)
        return None, {}
    except grpc.RpcError as exc:
        return exc.code(), dict(exc.trailing_metadata() or ())


def replicas(c) -> list:
    return list(c.replica.ListReplicas(P.replica.ListReplicaOptions()).replicas)


def children(c, nexus_uuid: str) -> dict[str, int]:
    n = [x for x in c.nexus.ListNexus(P.nexus.ListNexusOptions()).nexus_list if x.uuid == nexus_uuid]
    return {ch.uri: ch.state for ch in n[0].children} if n else {}


# the agent's reactions (node/wrapper.rs and the v1 client), as the contract gives them --------------

def agent_destroy_replica(c, replica_uuid: str, pool: str) -> str:
    code, md = answer(c.replica.DestroyReplica, P.replica.DestroyReplicaRequest(uuid=replica_uuid, pool_name=pool))
    if code is None:
        return "destroyed"
    if code == C.NOT_FOUND and md.get("gtm-602") == "0":
        return "gone"
    if code == C.NOT_FOUND:  # re-list: still there, or the pool absent -> PoolNotLoaded
        pools = {p.name for p in c.pool.ListPools(P.pool.ListPoolOptions()).pools}
        if pool not in pools or any(r.uuid == replica_uuid for r in replicas(c)):
            return "pool not loaded"
        return "gone"
    return f"error {code.name}"


def agent_create(code: C | None, listed: bool) -> str:
    """Any create: an error is followed by a re-list; listed with the same identity = success."""
    if code is None or listed:
        return "created"
    return "spec deleted" if code in (C.INVALID_ARGUMENT, C.NOT_FOUND) else "deleting (garbage collected)"


@pytest.mark.timeout(1200)
def test_the_agents_status_code_handling(daemon, tmp_path):
    c = daemon.client
    disk = f"aio://{tmp_path}/p1.img?size_mb=96"
    c.pool.CreatePool(P.pool.CreatePoolRequest(name="p1", disks=[disk]))
    c.pool.CreatePool(P.pool.CreatePoolRequest(name="p2", disks=[f"aio://{tmp_path}/p2.img?size_mb=64"]))
    vol = U()
    ru = U()
    rep = c.replica.CreateReplica(P.replica.CreateReplicaRequest(
        name=ru, uuid=ru, pooluuid="p1", size=16 * MiB, thin=True, share=0, entity_id=vol))

    # DestroyReplica ---------------------------------------------------------------------------------
    assert agent_destroy_replica(c, U(), "p1") == "gone"  # never existed: NOT_FOUND + gtm-602
    # the pool named is not here: never "gone" (the replica may live on that pool's disk)
    assert agent_destroy_replica(c, ru, "p-absent") != "gone"
    assert agent_destroy_replica(c, U(), "p-absent") != "gone"
    assert agent_destroy_replica(c, ru, "p2") != "gone"  # another pool: refused (ABORTED, as io-engine)
    assert answer(c.replica.DestroyReplica, P.replica.DestroyReplicaRequest(uuid=ru, pool_name="p2"))[0] == C.ABORTED
    assert [r.uuid for r in replicas(c)] == [ru]

    # creates retried after a lost answer: the agent re-lists and matches uuid/name + entity_id --------
    code, _ = answer(c.replica.CreateReplica, P.replica.CreateReplicaRequest(
        name=ru, uuid=ru, pooluuid="p1", size=16 * MiB, thin=True, share=0, entity_id=vol))
    assert agent_create(code, any(r.uuid == ru and r.entity_id == vol for r in replicas(c))) == "created"
    code, _ = answer(c.pool.CreatePool, P.pool.CreatePoolRequest(name="p1", disks=[disk]))
    assert code == C.ALREADY_EXISTS  # and it is listed: success for the agent
    assert "p1" in {p.name for p in c.pool.ListPools(P.pool.ListPoolOptions()).pools}
    # a disk that is not there: the spec is deleted, not left to the garbage collector
    code, _ = answer(c.pool.CreatePool, P.pool.CreatePoolRequest(name="p3", disks=["/dev/mayastor-no-such-disk"]))
    assert agent_create(code, False) == "spec deleted", code
    # a bad replica request: the spec is deleted too
    code, _ = answer(c.replica.CreateReplica, P.replica.CreateReplicaRequest(
        name="x", uuid=U(), pooluuid="p1", size=0, thin=True))
    assert agent_create(code, False) == "spec deleted", code

    # DestroyPool NOT_FOUND, then ImportPool INVALID_ARGUMENT: the pool is gone ------------------------
    assert answer(c.pool.DestroyPool, P.pool.DestroyPoolRequest(name="p-absent"))[0] == C.NOT_FOUND
    with open(tmp_path / "blank.img", "wb") as f:  # a disk with no pool on it
        f.truncate(32 * MiB)
    blank = f"aio://{tmp_path}/blank.img"
    assert answer(c.pool.ImportPool, P.pool.ImportPoolRequest(name="p-absent", disks=[blank]))[0] == \
        C.INVALID_ARGUMENT

    # nexus ------------------------------------------------------------------------------------------
    nu = U()
    a, b = "malloc:///codes-a?size_mb=16", "malloc:///codes-b?size_mb=16"
    req = P.nexus.CreateNexusRequest(name=vol, uuid=nu, size=16 * MiB, minCntlId=1, maxCntlId=2,
                                     resvKey=uuid.UUID(nu).int & ((1 << 64) - 1), children=[a], resvType=2,
                                     preemptPolicy=1)
    c.nexus.CreateNexus(req)
    code, _ = answer(c.nexus.CreateNexus, req)  # retried: uuid and name both listed -> success
    listed = c.nexus.ListNexus(P.nexus.ListNexusOptions()).nexus_list
    assert agent_create(code, any(n.uuid == nu and n.name == vol for n in listed)) == "created"
    other = P.nexus.CreateNexusRequest()
    other.CopyFrom(req)
    other.uuid = U()
    assert answer(c.nexus.CreateNexus, other)[0] == C.ALREADY_EXISTS  # the same name with another uuid

    c.nexus.AddChildNexus(P.nexus.AddChildNexusRequest(uuid=nu, uri=b, norebuild=False))
    wait_for(lambda: children(c, nu).get(b) == 1, 600, "the new child to be rebuilt")
    code, _ = answer(c.nexus.AddChildNexus, P.nexus.AddChildNexusRequest(uuid=nu, uri=b, norebuild=False))
    assert code in (None, C.ALREADY_EXISTS) and b in children(c, nu)  # present: success

    # FaultNexusChild: success once the child is listed FAULTED, whatever the answer
    answer(c.nexus.FaultNexusChild, P.nexus.FaultNexusChildRequest(uuid=nu, uri=b))
    assert children(c, nu)[b] == 3
    c.nexus.RemoveChildNexus(P.nexus.RemoveChildNexusRequest(uuid=nu, uri=b))
    code, _ = answer(c.nexus.RemoveChildNexus, P.nexus.RemoveChildNexusRequest(uuid=nu, uri=b))
    assert b not in children(c, nu)  # error or not, absent: success

    # ResizeNexus refusals are definite answers, never "status unknown" (which the agent retries)
    for size in (8 * MiB, 1 << 40, (1 << 64) - 512):
        code, _ = answer(c.nexus.ResizeNexus, P.nexus.ResizeNexusRequest(uuid=nu, requested_size=size))
        assert code is not None and code not in UNKNOWN_STATUS, (size, code)

    # SetReplicaEntityId: applied (DATA_LOSS would be an error, UNIMPLEMENTED ignored)
    e2 = U()
    assert answer(c.replica.SetReplicaEntityId, P.replica.SetReplicaEntityIdRequest(uuid=rep.uuid, entity_id=e2))[0] \
        is None
    assert [r.entity_id for r in replicas(c)] == [e2]

    # ListSnapshot / ListRebuildHistory: valid lists the agent parses (never one bad entry)
    for s in c.snapshot.ListSnapshot(P.snapshot.ListSnapshotsRequest(
            query=P.snapshot.ListSnapshotsRequest.Query(discarded=False))).snapshots:
        uuid.UUID(s.snapshot_uuid), uuid.UUID(s.replica_uuid)
    hist = c.nexus.ListRebuildHistory(P.nexus.ListRebuildHistoryRequest(count=8)).histories
    assert [r.child_uri for r in hist[nu].records] == [b]
    assert all(r.HasField("start_time") and r.HasField("end_time") for r in hist[nu].records)

    # missing objects: NOT_FOUND, read as "gone" / NexusNotFound
    assert answer(c.nexus.DestroyNexus, P.nexus.DestroyNexusRequest(uuid=U()))[0] == C.NOT_FOUND
    assert answer(c.nexus.ShutdownNexus, P.nexus.ShutdownNexusRequest(uuid=U()))[0] == C.NOT_FOUND
    assert answer(c.snapshot.DestroySnapshot, P.snapshot.DestroySnapshotRequest(snapshot_uuid=U()))[0] == C.NOT_FOUND
    c.nexus.DestroyNexus(P.nexus.DestroyNexusRequest(uuid=nu))
    assert answer(c.nexus.DestroyNexus, P.nexus.DestroyNexusRequest(uuid=nu))[0] == C.NOT_FOUND
    assert agent_destroy_replica(c, ru, "p1") == "destroyed"
    assert agent_destroy_replica(c, ru, "p1") == "gone"
