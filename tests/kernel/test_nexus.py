"""Nexus on one node: dm-raid raid1 over a local replica, a malloc child and a file child,
published over nvmet with ANA; child offline/online with a partial resync; faults seen by the
event watcher; nothing left in the kernel afterwards."""

from __future__ import annotations

import hashlib
import os
import uuid

import grpc
import pytest

from mayastor.grpc import protos as P
from mayastor.kernel import dm, loop
from mayastor.kernel.dm_targets import RaidStatus

from .daemon import ours as ours_of
from .daemon import serve
from .util import code_of, pattern, read_direct, run, wait_for, write_direct

MiB = 1 << 20
NODE = "nx1"
HOST_A = "nqn.2014-08.org.nvmexpress:uuid:aaaaaaaa-0000-4000-8000-000000000001"
HOST_B = "nqn.2014-08.org.nvmexpress:uuid:bbbbbbbb-0000-4000-8000-000000000002"
ONLINE, DEGRADED, FAULTED = 1, 2, 3
R_NONE, R_IO_FAILURE, R_BY_CLIENT, R_OUT_OF_SYNC = 0, 6, 7, 8


def U() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def daemon(tmp_path, request):
    yield from serve(tmp_path, request, NODE)


def ours() -> list[str]:
    return ours_of(NODE)


def raid_status(nexus_uuid: str) -> RaidStatus:
    with dm.DeviceMapper() as ctl:
        return RaidStatus.parse(ctl.status(f"MAYASTOR-{NODE}-nexus-{nexus_uuid}-raid")[0].params)


def top_device(nexus_uuid: str) -> str:
    with dm.DeviceMapper() as ctl:
        return ctl.info(f"MAYASTOR-{NODE}-nexus-{nexus_uuid}").devnode


def data_legs(nexus_uuid: str) -> list[str]:
    with dm.DeviceMapper() as ctl:
        prefix = f"MAYASTOR-{NODE}-nexus-{nexus_uuid}-"
        return [ctl.info(d.name).devnode for d in sorted(ctl.list_devices(), key=lambda d: d.name)
                if d.name.startswith(prefix) and d.name.endswith("-data")]


def leg_digest(dev: str, size: int) -> str:
    h = hashlib.sha256()
    with open(dev, "rb", buffering=0) as f:
        left = size
        while left:
            chunk = f.read(min(left, 4 * MiB))
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


def child(nexus, uri):
    return next(c for c in nexus.children if c.uri == uri)


def get(c, nexus_uuid):
    return c.nexus.ListNexus(P.nexus.ListNexusOptions(uuid={"value": nexus_uuid})).nexus_list[0]


def make_replicas(c, tmp_path, n: int, size: int) -> list:
    c.pool.CreatePool(P.pool.CreatePoolRequest(name="nxpool",
                                               disks=[f"aio://{tmp_path}/pool.img?size_mb=512"]))
    return [c.replica.CreateReplica(P.replica.CreateReplicaRequest(
        name=f"nxr{i}", uuid=U(), pooluuid="nxpool", size=size, thin=True)) for i in range(n)]


@pytest.mark.timeout(600)
def test_nexus_create_publish_offline_online_destroy(daemon, tmp_path):
    c = daemon.client
    size = 64 * MiB
    (r0,) = make_replicas(c, tmp_path, 1, size + 4 * MiB)
    img = tmp_path / "child.img"
    img.write_bytes(b"")
    os.truncate(img, size + 4 * MiB)
    children = [f"bdev:///{r0.name}?uuid={r0.uuid}", f"malloc:///m0?size_mb={(size >> 20) + 4}", f"aio://{img}"]
    nu = U()
    req = P.nexus.CreateNexusRequest(name="vol1", uuid=nu, size=size, children=children)
    n = c.nexus.CreateNexus(req).nexus
    assert n.state == ONLINE and [ch.state for ch in n.children] == [ONLINE] * 3
    st = raid_status(nu)
    assert st.health == "AAA" and st.sync_action == "idle"
    # idempotent; same children elsewhere, too big, bad URIs: refused, nothing changes
    assert c.nexus.CreateNexus(req).nexus.uuid == nu
    other = P.nexus.CreateNexusRequest(name="vol2", uuid=U(), size=size, children=children)
    assert code_of(c.nexus.CreateNexus, other) == grpc.StatusCode.INVALID_ARGUMENT
    big = P.nexus.CreateNexusRequest(name="vol3", uuid=U(), size=size * 2, children=["malloc:///m9?size_mb=16"])
    assert code_of(c.nexus.CreateNexus, big) == grpc.StatusCode.INVALID_ARGUMENT
    for bad in ("foo:///x", "malloc:///m1?size_mb=8&bogus=1", "bdev:///../x", "nvmf://h:1/notanqn?uuid=" + U()):
        r = P.nexus.CreateNexusRequest(name="vol4", uuid=U(), size=MiB, children=[bad])
        assert code_of(c.nexus.CreateNexus, r) == grpc.StatusCode.INVALID_ARGUMENT, bad
    assert len(c.nexus.ListNexus(P.nexus.ListNexusOptions()).nexus_list) == 1

    # publish: NQN per contract, allowed host only, ANA group optimized
    pub = c.nexus.PublishNexus(P.nexus.PublishNexusRequest(uuid=nu, share=1, allowed_hosts=[HOST_A])).nexus
    assert pub.device_uri == "nvmf://127.0.0.1:8420/nqn.2019-05.io.openebs:vol1"
    assert c.nexus.GetNvmeAnaState(P.nexus.GetNvmeAnaStateRequest(uuid=nu)).ana_state == 1
    nqn = "nqn.2019-05.io.openebs:vol1"
    refused = run("nvme", "connect", "-t", "tcp", "-a", "127.0.0.1", "-s", "4421", "-n", nqn, "-q", HOST_B,
                  check=False)
    assert refused.returncode != 0
    run("nvme", "connect", "-t", "tcp", "-a", "127.0.0.1", "-s", "4421", "-n", nqn, "-q", HOST_A,
        "-I", "aaaaaaaa-0000-4000-8000-000000000001")
    try:
        dev = wait_for(lambda: _ns_by_uuid(nu), 15, "nexus namespace on the host")
        write_direct(dev, 0, pattern(1, 1 * MiB))
        assert read_direct(dev, 0, 1 * MiB) == pattern(1, 1 * MiB)
        ana = c.nexus.SetNvmeAnaState(P.nexus.SetNvmeAnaStateRequest(uuid=nu, ana_state=2)).nexus
        assert ana.ana_state == 2
        assert c.nexus.GetNvmeAnaState(P.nexus.GetNvmeAnaStateRequest(uuid=nu)).ana_state == 2
        # republish with the other protocol is refused
        assert code_of(c.nexus.PublishNexus, P.nexus.PublishNexusRequest(uuid=nu, share=0)) == \
            grpc.StatusCode.INVALID_ARGUMENT
        # identity per contract; same-protocol republish only updates the allowed hosts
        sub = f"/sys/kernel/config/nvmet/subsystems/{nqn}"
        assert open(f"{sub}/attr_model").read().strip() == "Mayastor NVMe controller"
        serial = open(f"{sub}/attr_serial").read().strip()
        assert serial == "DCS" + hashlib.sha256(nu.encode()).hexdigest()[:17].upper()
        again = c.nexus.PublishNexus(P.nexus.PublishNexusRequest(uuid=nu, share=1, allowed_hosts=[HOST_A, HOST_B]))
        assert list(again.nexus.allowed_hosts) == [HOST_A, HOST_B]
        assert sorted(os.listdir(f"{sub}/allowed_hosts")) == sorted([HOST_A, HOST_B])
        c.nexus.PublishNexus(P.nexus.PublishNexusRequest(uuid=nu, share=1, allowed_hosts=[HOST_A]))
        assert os.listdir(f"{sub}/allowed_hosts") == [HOST_A]
        dev = wait_for(lambda: _ns_by_uuid(nu), 30, "nexus namespace after the port link cycled")

        # offline the malloc child: DEGRADED/BY_CLIENT, slot '-' ; writes continue
        malloc = children[1]
        n = c.nexus.ChildOperation(P.nexus.ChildOperationRequest(nexus_uuid=nu, uri=malloc, action=0)).nexus
        assert (child(n, malloc).state, child(n, malloc).state_reason) == (DEGRADED, R_BY_CLIENT)
        assert n.state == DEGRADED
        write_direct(dev, 8 * MiB, pattern(2, 2 * MiB))  # dirties 2-3 of 64 regions
        assert raid_status(nu).health[1] == "D"  # the slot points at dm-error: md faulted it
        info = nexus_info(c, nu)
        assert not info["clean_shutdown"]
        assert [ch["healthy"] for ch in info["children"] if ch["uri"] == malloc] == [False]
        # the last healthy children cannot all be taken out
        c.nexus.ChildOperation(P.nexus.ChildOperationRequest(nexus_uuid=nu, uri=children[2], action=0))
        write_direct(dev, 20 * MiB, pattern(3, 1 * MiB))
        assert code_of(c.nexus.ChildOperation, P.nexus.ChildOperationRequest(
            nexus_uuid=nu, uri=children[0], action=0)) == grpc.StatusCode.FAILED_PRECONDITION
        assert code_of(c.nexus.RemoveChildNexus, P.nexus.RemoveChildNexusRequest(uuid=nu, uri=children[0])) == \
            grpc.StatusCode.FAILED_PRECONDITION
        # online both: partial resync from the bitmap
        for uri in (malloc, children[2]):
            c.nexus.ChildOperation(P.nexus.ChildOperationRequest(nexus_uuid=nu, uri=uri, action=1))
        n = wait_for(lambda: (lambda x: x if x.state == ONLINE else None)(get(c, nu)), 60, "children back in sync")
        assert [ch.state for ch in n.children] == [ONLINE] * 3
        hist = c.nexus.GetRebuildHistory(P.nexus.RebuildHistoryRequest(uuid=nu)).records
        assert len(hist) == 2 and all(h.is_partial and h.state == 5 for h in hist)
        legs = data_legs(nu)
        digests = [leg_digest(x, size) for x in legs]
        print("resync", [(h.child_uri, h.blocks_transferred) for h in hist], digests)
        assert len(set(digests)) == 1, digests
        for h in hist:
            transferred = h.blocks_transferred * h.block_size
            assert 0 < transferred < size // 2, (h.child_uri, transferred)
        assert read_direct(dev, 8 * MiB, 2 * MiB) == pattern(2, 2 * MiB)
        assert read_direct(dev, 20 * MiB, 1 * MiB) == pattern(3, 1 * MiB)
    finally:
        run("nvme", "disconnect", "-n", nqn, check=False)

    # unpublish; a child faulted by the client (FaultNexusChild) is out for good
    assert c.nexus.UnpublishNexus(P.nexus.UnpublishNexusRequest(uuid=nu)).nexus.device_uri == ""
    assert not os.path.exists("/sys/kernel/config/nvmet/subsystems/" + nqn)
    n = c.nexus.FaultNexusChild(P.nexus.FaultNexusChildRequest(uuid=nu, uri=children[2])).nexus
    assert (child(n, children[2]).state, child(n, children[2]).state_reason) == (FAULTED, R_BY_CLIENT)
    assert code_of(c.nexus.ChildOperation, P.nexus.ChildOperationRequest(
        nexus_uuid=nu, uri=children[2], action=1)) == grpc.StatusCode.FAILED_PRECONDITION
    n = c.nexus.RemoveChildNexus(P.nexus.RemoveChildNexusRequest(uuid=nu, uri=children[2])).nexus
    assert len(n.children) == 2 and n.state == ONLINE

    # resize: grow the replica and the other children first
    assert code_of(c.nexus.ResizeNexus, P.nexus.ResizeNexusRequest(uuid=nu, requested_size=size * 2)) == \
        grpc.StatusCode.FAILED_PRECONDITION
    assert get(c, nu).size == size

    # add a child (md copies it in full), remove it again; grow the nexus after its replicas grew
    r1, r2 = (c.replica.CreateReplica(P.replica.CreateReplicaRequest(
        name=f"nxg{i}", uuid=U(), pooluuid="nxpool", size=36 * MiB, thin=True)) for i in range(2))
    g = U()
    gkids = [f"bdev:///{r.name}?uuid={r.uuid}" for r in (r1, r2)]
    c.nexus.CreateNexus(P.nexus.CreateNexusRequest(name="grow", uuid=g, size=32 * MiB, children=gkids))
    write_direct(top_device(g), 0, pattern(5, 1 * MiB))
    added = "malloc:///m5?size_mb=40"
    n = c.nexus.AddChildNexus(P.nexus.AddChildNexusRequest(uuid=g, uri=added)).nexus
    assert len(n.children) == 3
    assert code_of(c.nexus.AddChildNexus, P.nexus.AddChildNexusRequest(uuid=g, uri=added)) == \
        grpc.StatusCode.ALREADY_EXISTS
    wait_for(lambda: get(c, g).state == ONLINE, 60, "added child in sync")
    rec = c.nexus.GetRebuildHistory(P.nexus.RebuildHistoryRequest(uuid=g)).records
    assert [(h.child_uri, h.is_partial, h.state) for h in rec] == [(added, False, 5)]
    assert len({leg_digest(x, 32 * MiB) for x in data_legs(g)}) == 1
    n = c.nexus.RemoveChildNexus(P.nexus.RemoveChildNexusRequest(uuid=g, uri=added)).nexus
    assert [ch.uri for ch in n.children] == gkids and raid_status(g).health == "AA"
    for r in (r1, r2):
        c.replica.ResizeReplica(P.replica.ResizeReplicaRequest(uuid=r.uuid, requested_size=68 * MiB))
    n = c.nexus.ResizeNexus(P.nexus.ResizeNexusRequest(uuid=g, requested_size=64 * MiB)).nexus
    assert n.size == 64 * MiB
    assert int(open(f"/sys/block/{os.path.basename(top_device(g))}/size").read()) * 512 == 64 * MiB
    assert read_direct(top_device(g), 0, 1 * MiB) == pattern(5, 1 * MiB)
    c.nexus.DestroyNexus(P.nexus.DestroyNexusRequest(uuid=g))

    # shutdown: then every call but destroy is refused
    assert all(ch["healthy"] for ch in nexus_info(c, nu)["children"])
    assert c.nexus.ShutdownNexus(P.nexus.ShutdownNexusRequest(uuid=nu)).nexus.state == 5
    assert nexus_info(c, nu)["clean_shutdown"]
    assert code_of(c.nexus.PublishNexus, P.nexus.PublishNexusRequest(uuid=nu, share=1)) == \
        grpc.StatusCode.FAILED_PRECONDITION
    c.nexus.DestroyNexus(P.nexus.DestroyNexusRequest(uuid=nu))
    assert code_of(c.nexus.DestroyNexus, P.nexus.DestroyNexusRequest(uuid=nu)) == grpc.StatusCode.NOT_FOUND
    assert [d for d in ours() if "-nexus-" in d] == []
    assert not os.path.exists("/sys/kernel/config/nvmet/subsystems/" + nqn)
    assert not [d for d in loop.list_attached() if d.backing_file and "malloc" in d.backing_file]


def nexus_info(c, nexus_uuid: str) -> dict:
    import json
    req = P.json.JsonRpcRequest(method="nexus_info", params=json.dumps({"key": nexus_uuid}))
    return json.loads(c.json.JsonRpcCall(req).result)


def _ns_by_uuid(u: str) -> str | None:
    from mayastor.kernel import nvme_fabrics
    ns = nvme_fabrics.find_namespace(u)
    return ns.path if ns and os.path.exists(ns.path) else None
