"""Mayastor's v1 nexus scenarios that our other tests do not already walk: a node with many nexuses
killed and restarted (everything back and answering within the control plane's request timeout),
nexuses with io-engine's controller id ranges and reservation keys."""

from __future__ import annotations

import uuid

import pytest

import configfs
from mayastor.grpc import protos as P

from .daemon import serve
from .util import pattern, read_direct, write_direct

MiB = 1 << 20
NODE = "ioscen"
COUNT = 8
REQUEST_TIMEOUT = 5  # the control plane's request timeout (contract §2)
ONLINE = 1


@pytest.fixture
def daemon(tmp_path, request):
    yield from serve(tmp_path, request, NODE)


def U() -> str:
    return str(uuid.uuid4())


@pytest.mark.timeout(1800)
def test_a_restart_with_many_nexuses_brings_them_all_back_within_the_agents_timeouts(daemon, tmp_path):
    c = daemon.client
    c.pool.CreatePool(P.pool.CreatePoolRequest(name="p0", disks=[f"aio://{tmp_path}/p0.img?size_mb=512"]))
    made = {}
    for i in range(COUNT):
        a, b = U(), U()
        kids = []
        for r in (a, b):
            kids.append(c.replica.CreateReplica(P.replica.CreateReplicaRequest(
                name=r, uuid=r, pooluuid="p0", size=16 * MiB, thin=True)).uri)
        nu = U()
        lo = 50 + 10 * i  # io-engine's suites: min_cntlid .. min_cntlid + 9
        key = (0xABCDEF0012345678 + i * 0x1111111111111111) & ((1 << 64) - 1)
        c.nexus.CreateNexus(P.nexus.CreateNexusRequest(
            name=nu, uuid=nu, size=16 * MiB, minCntlId=lo, maxCntlId=lo + 9, resvKey=key, children=kids))
        share = 1 if i % 2 else 0
        pub = c.nexus.PublishNexus(P.nexus.PublishNexusRequest(uuid=nu, share=share)).nexus
        made[nu] = (pub.device_uri, (lo, lo + 9), kids)
        if share == 0:
            write_direct(pub.device_uri[len("file://"):], i * MiB, pattern(i, 64 * 1024))

    daemon.kill9()  # the kernel keeps every device and export
    daemon.start()
    c = daemon.client
    # the agent's node load on a fresh channel, each call within its request timeout
    c.pool.ListPools(P.pool.ListPoolOptions(), timeout=REQUEST_TIMEOUT)
    reps = c.replica.ListReplicas(P.replica.ListReplicaOptions(), timeout=REQUEST_TIMEOUT).replicas
    listed = {n.uuid: n for n in c.nexus.ListNexus(P.nexus.ListNexusOptions(), timeout=REQUEST_TIMEOUT).nexus_list}
    assert len(reps) == 2 * COUNT and set(listed) == set(made)
    for i, (nu, (uri, cntlid, kids)) in enumerate(made.items()):
        n = listed[nu]
        assert n.state == ONLINE and n.device_uri == uri, (nu, n)
        assert [ch.uri for ch in n.children] == kids and [ch.state for ch in n.children] == [ONLINE, ONLINE]
        if uri.startswith("nvmf://"):
            sub = configfs.Subsystem(f"nqn.2019-05.io.openebs:{nu}", "lookup")
            assert (sub.cntlid_min, sub.cntlid_max) == cntlid
    for i, (nu, (uri, _, _)) in enumerate(made.items()):
        if uri.startswith("file://"):
            assert read_direct(uri[len("file://"):], i * MiB, 64 * 1024) == pattern(i, 64 * 1024)
    # and the node still takes changes at once
    for nu in list(made)[:2]:
        c.nexus.DestroyNexus(P.nexus.DestroyNexusRequest(uuid=nu), timeout=30)
    assert len(c.nexus.ListNexus(P.nexus.ListNexusOptions(), timeout=REQUEST_TIMEOUT).nexus_list) == COUNT - 2


def _child(c, nu: str, uri: str):
    n = [x for x in c.nexus.ListNexus(P.nexus.ListNexusOptions()).nexus_list if x.uuid == nu][0]
    return next(ch for ch in n.children if ch.uri == uri)


@pytest.mark.timeout(1200)
def test_a_full_pool_faults_its_child_with_no_space_and_online_brings_it_back(daemon, tmp_path):
    """ENOSPC on a thin replica seen through the nexus: the child is faulted with state_reason
    NO_SPACE (the agent brings such children back Online once there is room), the nexus carries on
    on the other child, and after space is freed Online rebuilds it."""
    c = daemon.client
    c.pool.CreatePool(P.pool.CreatePoolRequest(name="full", disks=[f"aio://{tmp_path}/full.img?size_mb=64"]))
    c.pool.CreatePool(P.pool.CreatePoolRequest(name="room", disks=[f"aio://{tmp_path}/room.img?size_mb=64"]))
    filler, r1, r2 = U(), U(), U()
    c.replica.CreateReplica(P.replica.CreateReplicaRequest(name=filler, uuid=filler, pooluuid="full",
                                                           size=48 * MiB, thin=True))
    k1 = c.replica.CreateReplica(P.replica.CreateReplicaRequest(name=r1, uuid=r1, pooluuid="full", size=32 * MiB,
                                                                thin=True)).uri
    k2 = c.replica.CreateReplica(P.replica.CreateReplicaRequest(name=r2, uuid=r2, pooluuid="room", size=32 * MiB,
                                                                thin=True)).uri
    from .util import replica_dev
    fdev = replica_dev(NODE, filler)
    for off in range(0, 48 * MiB, MiB):  # the pool (60 MiB) now has 12 MiB left
        write_direct(fdev, off, pattern(off, MiB))
    nu = U()
    c.nexus.CreateNexus(P.nexus.CreateNexusRequest(name=nu, uuid=nu, size=32 * MiB, children=[k1, k2]))
    dev = c.nexus.PublishNexus(P.nexus.PublishNexusRequest(uuid=nu, share=0)).nexus.device_uri[len("file://"):]
    for off in range(0, 32 * MiB, MiB):  # r1 runs out of room half way: the nexus carries on on r2
        write_direct(dev, off, pattern(7 + off, MiB))
    from .util import wait_for
    wait_for(lambda: _child(c, nu, k1).state == 3, 120, "the child on the full pool to be faulted")
    assert _child(c, nu, k1).state_reason == 9  # NO_SPACE
    assert _child(c, nu, k2).state == ONLINE
    assert read_direct(dev, 20 * MiB, MiB) == pattern(7 + 20 * MiB, MiB)

    # room again: Online (what the agent sends for NO_SPACE children) rebuilds it
    c.replica.DestroyReplica(P.replica.DestroyReplicaRequest(uuid=filler))
    c.nexus.ChildOperation(P.nexus.ChildOperationRequest(nexus_uuid=nu, uri=k1, action=1))
    wait_for(lambda: _child(c, nu, k1).state == ONLINE, 600, "the child to be rebuilt")
    r1dev = replica_dev(NODE, r1)
    for off in (0, 20 * MiB, 31 * MiB):
        assert read_direct(r1dev, off, MiB) == pattern(7 + off, MiB)
