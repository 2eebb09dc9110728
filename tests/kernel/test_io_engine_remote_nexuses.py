"""Mayastor's v1 nexus scenarios with remote children only (test_null_nexus, test_multi_nexus,
test_remote_only): a device node shares null and malloc bdevs and replicas; a nexus node makes
many nexuses over them, each with io-engine's controller id range (50..59) and reservation key
(0xABCDEF0012345678), publishes them and runs fio on all at once; the device node restarts and
every nexus stays online. Two daemons in one VM (127.0.0.2 and 127.0.0.3, gRPC on 10124 of each), as test_control_plane."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

import configfs
from mayastor.grpc import protos as P
from mayastor.kernel import dm, nvme_fabrics

from .daemon import Daemon
from .util import run, wait_for

MiB = 1 << 20
RESULTS = os.path.join(os.path.dirname(__file__), "..", "..", "test-results")
HOST = "nqn.2014-08.org.nvmexpress:uuid:dddddddd-0000-4000-8000-000000000004"
HOST_ID = "dddddddd-0000-4000-8000-000000000004"
COUNT = 4
MIN_CNTLID, RESV_KEY = 50, 0xABCDEF0012345678  # io-engine's suites use these for every nexus
ONLINE = 1
B = P.bdev
OWN_BDEVS = ("Malloc disk", "Null disk")


def U() -> str:
    return str(uuid.uuid4())


def own_bdevs(c) -> list:
    """CreateBdev's devices (a pool's RAM disk is listed as a malloc bdev too, claimed by the pool)."""
    return [b for b in c.bdev.List(B.ListBdevOptions()).bdevs if b.product_name in OWN_BDEVS and not b.claimed]


@pytest.fixture
def nodes(tmp_path, request):
    made = []
    # as deployed: every node serves gRPC on 10124 of its own address (a nexus snapshot reaches a
    # remote replica's node at <child host>:<its own gRPC port>)
    for name, port, addr in (("rn2", 10124, "127.0.0.3"), ("rn1", 10124, "127.0.0.2")):
        log = os.path.join(RESULTS, f"daemon-{request.node.name}-{name}.log")
        if os.path.exists(log):
            os.unlink(log)
        d = Daemon(str(tmp_path / f"{name}.db"), log, node=name, port=port, target=addr, grpc_host=addr)
        d.start()
        made.append(d)
    devices, nexus_node = made
    yield nexus_node, devices
    try:
        run("nvme", "disconnect-all", check=False)
        for d in (nexus_node, devices):
            if d.proc is None:
                d.start()
            c = d.client
            for n in c.nexus.ListNexus(P.nexus.ListNexusOptions()).nexus_list:
                c.nexus.DestroyNexus(P.nexus.DestroyNexusRequest(uuid=n.uuid))
        for d in (nexus_node, devices):
            c = d.client
            for b in own_bdevs(c):
                c.bdev.Destroy(B.DestroyBdevRequest(uri=b.name))
            for p in c.pool.ListPools(P.pool.ListPoolOptions()).pools:
                c.pool.DestroyPool(P.pool.DestroyPoolRequest(name=p.name))
            assert d.stop() == 0
        with dm.DeviceMapper() as ctl:
            assert [x.name for x in ctl.list_devices() if x.name.startswith("MAYASTOR-rn")] == []
    except BaseException:
        for d in (nexus_node, devices):
            d.kill9()
        from .util import force_cleanup
        force_cleanup()
        raise


def writes_done(dev: str) -> int:
    with open(f"/sys/block/{os.path.basename(dev)}/stat") as f:
        return int(f.read().split()[4])  # writes completed


def states(c) -> dict[str, tuple[int, list[int]]]:
    return {n.uuid: (n.state, [ch.state for ch in n.children])
            for n in c.nexus.ListNexus(P.nexus.ListNexusOptions()).nexus_list}


@pytest.mark.timeout(1800)
def test_many_remote_only_nexuses_over_null_malloc_and_replica_children(nodes, tmp_path):
    n1, n2 = nodes
    c2 = n2.client
    c2.pool.CreatePool(P.pool.CreatePoolRequest(name="rn2-pool", disks=[f"aio://{tmp_path}/rn2.img?size_mb=512"]))
    children = []
    for i in range(COUNT):
        null = c2.bdev.Create(B.CreateBdevRequest(uri=f"null:///null{i:02d}?blk_size=512&size_mb=100")).bdev
        ram = c2.bdev.Create(B.CreateBdevRequest(uri=f"malloc:///m{i:02d}?size_mb=64")).bdev
        kids = [c2.bdev.Share(B.BdevShareRequest(name=b.name, protocol=1)).bdev.share_uri for b in (null, ram)]
        r = U()
        kids.append(c2.replica.CreateReplica(P.replica.CreateReplicaRequest(
            name=r, uuid=r, pooluuid="rn2-pool", size=64 * MiB, thin=True, share=1)).uri)
        assert all(k.startswith("nvmf://127.0.0.3:8420/") for k in kids)
        children.append(kids)

    c1 = n1.client
    made = {}
    for kids in children:
        nu = U()
        nx = c1.nexus.CreateNexus(P.nexus.CreateNexusRequest(
            name=nu, uuid=nu, size=60 * MiB, minCntlId=MIN_CNTLID, maxCntlId=MIN_CNTLID + 9, resvKey=RESV_KEY,
            children=kids)).nexus
        assert nx.state == ONLINE and [ch.state for ch in nx.children] == [ONLINE] * 3, nx
        made[nu] = c1.nexus.PublishNexus(P.nexus.PublishNexusRequest(uuid=nu, share=1)).nexus.device_uri
    for nu in made:
        sub = configfs.Subsystem(f"nqn.2019-05.io.openebs:{nu}", "lookup")
        assert (sub.cntlid_min, sub.cntlid_max) == (MIN_CNTLID, MIN_CNTLID + 9)

    # a host connects to every nexus and writes to all of them at once
    devs = []
    for nu in made:
        run("nvme", "connect", "-t", "tcp", "-a", "127.0.0.2", "-s", "4421", "-n", f"nqn.2019-05.io.openebs:{nu}",
            "-q", HOST, "-I", HOST_ID)
        devs.append(wait_for(lambda: (lambda ns: ns.path if ns and os.path.exists(ns.path) else None)(
            nvme_fabrics.find_namespace(nu)), 60, f"namespace of nexus {nu}"))
    jobs = [subprocess.Popen(["fio", f"--name=rn{i}", f"--filename={d}", "--rw=randwrite", "--bs=4k", "--direct=1",
                              "--ioengine=psync", "--size=2M"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True) for i, d in enumerate(devs)]
    for j in jobs:
        out, _ = j.communicate(timeout=900)
        assert j.returncode == 0, out
    assert states(c1) == {nu: (ONLINE, [ONLINE] * 3) for nu in made}

    # the device node restarts: its bdevs, replicas and shares come back, no nexus notices
    before = {b.name: b.share_uri for b in own_bdevs(c2)}
    n2.stop()
    n2.start()
    c2 = n2.client
    assert {b.name: b.share_uri for b in own_bdevs(c2)} == before
    assert len(c2.replica.ListReplicas(P.replica.ListReplicaOptions()).replicas) == COUNT
    run("fio", "--name=after", f"--filename={devs[0]}", "--rw=randwrite", "--bs=4k", "--direct=1",
        "--ioengine=psync", "--size=2M", timeout=600)
    assert states(c1) == {nu: (ONLINE, [ONLINE] * 3) for nu in made}

    # unpublished and destroyed one by one: the device node's shares stay for the others
    for nu in made:
        run("nvme", "disconnect", "-n", f"nqn.2019-05.io.openebs:{nu}")
        c1.nexus.UnpublishNexus(P.nexus.UnpublishNexusRequest(uuid=nu))
        c1.nexus.DestroyNexus(P.nexus.DestroyNexusRequest(uuid=nu))
    assert c1.nexus.ListNexus(P.nexus.ListNexusOptions()).nexus_list == []
    assert {b.name: b.share_uri for b in own_bdevs(c2)} == before


@pytest.mark.timeout(1200)
def test_remote_only_nexus_cycles_leave_no_bdev_behind(nodes):
    """v1/nexus test_remote_only: a malloc bdev shared by one node, a nexus over it on the other,
    published and destroyed, the bdev unshared and destroyed by its URI; again and again, and each
    time neither node lists a bdev afterwards (the nexus was one while it lived)."""
    n1, n2 = nodes
    c1, c2 = n1.client, n2.client
    def listed(c) -> list:
        return list(c.bdev.List(B.ListBdevOptions()).bdevs)

    for cycle in range(3):
        assert listed(c1) == [] and listed(c2) == []
        c2.bdev.Create(B.CreateBdevRequest(uri="malloc:///malloc0?size_mb=50"))
        uri = c2.bdev.Share(B.BdevShareRequest(name="malloc0", protocol=1)).bdev.share_uri
        nu = U()
        c1.nexus.CreateNexus(P.nexus.CreateNexusRequest(name=U(), uuid=nu, size=20 * MiB, minCntlId=MIN_CNTLID,
                                                        maxCntlId=MIN_CNTLID + 9, resvKey=RESV_KEY, children=[uri]))
        c1.nexus.PublishNexus(P.nexus.PublishNexusRequest(uuid=nu, share=1))
        assert [b.uuid for b in listed(c1)] == [nu], cycle
        c1.nexus.DestroyNexus(P.nexus.DestroyNexusRequest(uuid=nu))
        c2.bdev.Unshare(B.BdevUnshareRequest(name="malloc0"))
        c2.bdev.Destroy(B.DestroyBdevRequest(uri="malloc:///malloc0?size_mb=50"))
    assert listed(c1) == [] and listed(c2) == []
    with dm.DeviceMapper() as ctl:
        assert [x.name for x in ctl.list_devices() if x.name.startswith("MAYASTOR-rn")] == []
