"""A stand-in of Mayastor's core agent, written from the control-plane contract, driving two
daemons in one VM with the agent's exact requests: registration and the node load, a volume of
two replicas on two nodes (replicas of exactly the volume size), publish with the agent's
reservation key and controller ids, nvme-cli + fio --verify, a child fault and its replacement
(rebuilt by the engine itself), NexusInfo in a real etcd at every step, a switchover to the
other node with the next controller id pair, resize, a snapshot through the nexus and one per replica, a clone."""

from __future__ import annotations

import glob
import os
import re
import subprocess
import time
import uuid

import grpc
import pytest
from google.protobuf import empty_pb2

from mayastor.grpc import protos as P
from mayastor.kernel import dm
from tests.etcd_server import EtcdServer

from .daemon import RESULTS, Daemon
from .test_registration import Agent
from .util import run, wait_for

MiB = 1 << 20
SIZE = 64 * MiB
NVMF, NONE = 1, 0
AGENT_PORT = 10151
FRONTEND = "nqn.2019-05.io.openebs:node-name:app-node"
FRONTEND_ID = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
KEY = "/openebs.io/mayastor/apis/v0/clusters/bdd/namespaces/default/volume/{v}/nexus/{n}/info"
# gRPC on the node's own address, as in a cluster (a nexus snapshot reaches a remote replica's node there)
NODES = (("cp-a", 10124, "127.0.0.2"), ("cp-b", 10124, "127.0.0.3"))


def U() -> str:
    return str(uuid.uuid4())


def resv_key(nexus_uuid: str) -> int:
    return uuid.UUID(nexus_uuid).int & ((1 << 64) - 1)  # the agent: the low 64 bits of the nexus uuid


@pytest.fixture
def cluster(tmp_path, request):
    agent = Agent()
    servers = [agent.serve()]  # the test may stop the agent and serve it again
    log = os.path.join(RESULTS, f"etcd-{request.node.name}.log")
    etcd = EtcdServer(str(tmp_path / "etcd"), log).start()
    daemons = {}
    try:
        for name, port, addr in NODES:
            dlog = os.path.join(RESULTS, f"daemon-{request.node.name}-{name}.log")
            if os.path.exists(dlog):
                os.unlink(dlog)
            d = Daemon(str(tmp_path / f"{name}.db"), dlog, node=name, port=port, target=addr, grpc_host=addr,
                       extra_args=("-R", f"https://127.0.0.1:{AGENT_PORT}", "-p", etcd.endpoint))
            d.start()
            daemons[name] = d
        yield agent, etcd, daemons, servers
    finally:
        run("nvme", "disconnect-all", check=False)
        for d in daemons.values():
            c = d.client
            for n in c.nexus.ListNexus(P.nexus.ListNexusOptions()).nexus_list:
                c.nexus.DestroyNexus(P.nexus.DestroyNexusRequest(uuid=n.uuid))
        for d in daemons.values():
            for p in d.client.pool.ListPools(P.pool.ListPoolOptions()).pools:
                d.client.pool.DestroyPool(P.pool.DestroyPoolRequest(name=p.name))
        rcs = [d.stop() for d in daemons.values()]
        etcd.stop()
        for server in servers:
            server.stop(grace=None)
        assert rcs == [0] * len(rcs)
        with dm.DeviceMapper() as ctl:
            assert [x.name for x in ctl.list_devices() if x.name.startswith("MAYASTOR-cp-")] == []
    assert sorted(agent.deregisters) == sorted(daemons)  # SIGTERM -> one Deregister each


def node_load(c):
    """What the agent lists at a node's first Register; every uuid it parses must parse."""
    c.pool.ListPools(P.pool.ListPoolOptions(), timeout=5)
    reps = c.replica.ListReplicas(P.replica.ListReplicaOptions(
        query=P.replica.ListReplicaOptions.Query(replica=True, snapshot=False, clone=True)), timeout=5).replicas
    for r in reps:
        uuid.UUID(r.uuid), uuid.UUID(r.pooluuid)
    c.nexus.ListNexus(P.nexus.ListNexusOptions(), timeout=5)
    snaps = c.snapshot.ListSnapshot(P.snapshot.ListSnapshotsRequest(
        query=P.snapshot.ListSnapshotsRequest.Query(discarded=False)), timeout=5).snapshots
    for s in snaps:
        for field, value in s.ListFields():
            if field.name.endswith("uuid") and isinstance(value, str) and value:
                uuid.UUID(value)
    hist = c.nexus.ListRebuildHistory(P.nexus.ListRebuildHistoryRequest(count=8), timeout=5).histories
    for key, h in hist.items():
        uuid.UUID(key)
        assert all(r.HasField("start_time") and r.HasField("end_time") for r in h.records)
    return reps, hist


def child_for(c_replica_node, replica, nexus_hostnqn: str | None) -> str:
    """The agent's step 4: a local replica is unshared (bdev:///), a remote one shared to the
    nexus node's registered host NQN."""
    if nexus_hostnqn is None:
        return c_replica_node.replica.UnshareReplica(P.replica.UnshareReplicaRequest(uuid=replica.uuid)).uri
    return c_replica_node.replica.ShareReplica(P.replica.ShareReplicaRequest(
        uuid=replica.uuid, share=NVMF, allowed_hosts=[nexus_hostnqn])).uri


def namespace_of(vol: str) -> str | None:
    for wwid in glob.glob("/sys/block/nvme*n*/wwid"):
        name = wwid.split("/")[3]
        if re.fullmatch(r"nvme\d+n\d+", name) and open(wwid).read().strip() == f"uuid.{vol}":
            return "/dev/" + name  # the multipath head, not a hidden per-path nvmeXcYnZ
    return None


def fio(dev: str, *extra: str) -> None:
    r = subprocess.run(["fio", "--name=cp", f"--filename={dev}", "--rw=write", "--bs=64k", "--size=16M",
                        "--direct=1", "--ioengine=psync", "--verify=crc32c", *extra],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.timeout(2400)
def test_a_volume_through_the_agents_requests(cluster, tmp_path):
    agent, etcd, daemons, servers = cluster
    a, b = daemons["cp-a"].client, daemons["cp-b"].client
    # registration: the node as the agent stores it, and the 1 s probe of GetMayastorInfo
    wait_for(lambda: {r.id for _, r in agent.registers} >= set(daemons), 120, "both nodes registered")
    reg = {}
    for name, d in daemons.items():
        last = [r for _, r in agent.registers if r.id == name][-1]
        reg[name] = last
        with grpc.insecure_channel(f"{d.grpc_host}:{d.port}") as ch:
            info = P.host_grpc.HostRpcStub(ch).GetMayastorInfo(empty_pb2.Empty(), timeout=1).registration_info
        assert info == last
        node_load(d.client)

    # pools (DiskPool CRs) and a volume: one replica per node of exactly the volume size
    for name, c in (("cp-a", a), ("cp-b", b)):
        c.pool.CreatePool(P.pool.CreatePoolRequest(name=f"{name}-pool", disks=[f"aio://{tmp_path}/{name}.img?size_mb=400"],
                                                   pooltype=0))
    vol = U()
    ra, rb = (c.replica.CreateReplica(P.replica.CreateReplicaRequest(
        name=u, uuid=u, pooluuid=f"{name}-pool", size=SIZE, thin=True, share=NONE, allowed_hosts=[],
        entity_id=vol)) for (name, c), u in ((("cp-a", a), U()), (("cp-b", b), U())))
    reps, _ = node_load(a)
    assert [(r.uuid, r.entity_id, r.size) for r in reps] == [(ra.uuid, vol, SIZE)]

    # publish on node A: children verbatim, the agent's key and controller ids
    nu = U()
    key = KEY.format(v=vol, n=nu)
    kids = [child_for(a, ra, None), child_for(b, rb, reg["cp-a"].hostnqn.value)]
    n = a.nexus.CreateNexus(P.nexus.CreateNexusRequest(
        name=vol, uuid=nu, size=SIZE, minCntlId=1, maxCntlId=2, resvKey=resv_key(nu), preemptKey=0,
        children=kids, nexusInfoKey=key, resvType=2, preemptPolicy=1), timeout=59).nexus
    assert [ch.uri for ch in n.children] == kids  # byte for byte
    assert etcd.get_json(key) == {"clean_shutdown": False, "children": [
        {"uuid": ra.uuid, "healthy": True}, {"uuid": rb.uuid, "healthy": True}]}
    uri = a.nexus.PublishNexus(P.nexus.PublishNexusRequest(uuid=nu, key="", share=NVMF,
                                                           allowed_hosts=[FRONTEND])).nexus.device_uri
    assert uri == f"nvmf://127.0.0.2:8420/nqn.2019-05.io.openebs:{vol}"
    sub = f"/sys/kernel/config/nvmet/subsystems/nqn.2019-05.io.openebs:{vol}"
    assert open(f"{sub}/attr_model").read().strip() == "Mayastor NVMe controller"
    assert open(f"{sub}/attr_cntlid_min").read().strip() == "1"
    assert open(f"{sub}/attr_cntlid_max").read().strip() == "2"
    run("nvme", "connect", "-t", "tcp", "-a", "127.0.0.2", "-s", "8420", "-n", f"nqn.2019-05.io.openebs:{vol}",
        "-q", FRONTEND, "-I", FRONTEND_ID)
    dev = wait_for(lambda: namespace_of(vol), 60, "the volume's namespace (ID_WWN uuid.<volume>)")
    assert open(f"/sys/block/{dev[5:]}/device/model").read().strip() == "Mayastor NVMe controller"
    fio(dev)

    # the remote child faults; the agent removes it, makes a new replica and adds it back
    a.nexus.FaultNexusChild(P.nexus.FaultNexusChildRequest(uuid=nu, uri=kids[1]))
    assert etcd.get_json(key)["children"][1] == {"uuid": rb.uuid, "healthy": False}
    a.nexus.RemoveChildNexus(P.nexus.RemoveChildNexusRequest(uuid=nu, uri=kids[1]))
    assert [c["uuid"] for c in etcd.get_json(key)["children"]] == [ra.uuid]
    b.replica.DestroyReplica(P.replica.DestroyReplicaRequest(uuid=rb.uuid, pool_name="cp-b-pool"))
    rb2_uuid = U()
    rb2 = b.replica.CreateReplica(P.replica.CreateReplicaRequest(
        name=rb2_uuid, uuid=rb2_uuid, pooluuid="cp-b-pool", size=SIZE, thin=True, entity_id=vol))
    new_kid = child_for(b, rb2, reg["cp-a"].hostnqn.value)
    a.nexus.AddChildNexus(P.nexus.AddChildNexusRequest(uuid=nu, uri=new_kid, norebuild=False))
    assert etcd.get_json(key)["children"][1] == {"uuid": rb2.uuid, "healthy": False}
    wait_for(lambda: etcd.get_json(key)["children"][1]["healthy"], 600, "the engine's rebuild done")
    _, hist = node_load(a)
    assert [r.child_uri for r in hist[nu].records] == [new_kid]
    fio(dev, "--verify_only")

    # switchover: the old target shuts down; node B gets a new nexus, a new key and the next ids
    run("nvme", "disconnect", "-n", f"nqn.2019-05.io.openebs:{vol}")
    a.nexus.ShutdownNexus(P.nexus.ShutdownNexusRequest(uuid=nu))
    assert etcd.get_json(key)["clean_shutdown"] is True
    n2 = U()
    key2 = KEY.format(v=vol, n=n2)
    kids2 = [child_for(b, rb2, None), child_for(a, ra, reg["cp-b"].hostnqn.value)]
    b.nexus.CreateNexus(P.nexus.CreateNexusRequest(
        name=vol, uuid=n2, size=SIZE, minCntlId=3, maxCntlId=4, resvKey=resv_key(n2), preemptKey=0,
        children=kids2, nexusInfoKey=key2, resvType=2, preemptPolicy=1), timeout=59)
    assert etcd.get_json(key2) == {"clean_shutdown": False, "children": [
        {"uuid": rb2.uuid, "healthy": True}, {"uuid": ra.uuid, "healthy": True}]}
    assert etcd.get_json(key)["clean_shutdown"] is True  # the old key stays for the agent to delete
    # both nodes share one nvmet here (one VM): the old target's subsystem goes before the new one
    # can take the volume's NQN; on two machines the agent destroys it after the publish
    a.nexus.DestroyNexus(P.nexus.DestroyNexusRequest(uuid=nu))
    b.nexus.PublishNexus(P.nexus.PublishNexusRequest(uuid=n2, share=NVMF, allowed_hosts=[FRONTEND]))
    sub_b = f"/sys/kernel/config/nvmet/subsystems/nqn.2019-05.io.openebs:{vol}"
    assert open(f"{sub_b}/attr_cntlid_min").read().strip() == "3"
    run("nvme", "connect", "-t", "tcp", "-a", "127.0.0.3", "-s", "8420", "-n", f"nqn.2019-05.io.openebs:{vol}",
        "-q", FRONTEND, "-I", FRONTEND_ID)
    dev = wait_for(lambda: namespace_of(vol), 60, "the volume's namespace on node B")
    fio(dev, "--verify_only")  # the same data through the other node
    # the agent away for 30 s: I/O and gRPC carry on, and the nodes register again when it is back
    servers.pop().stop(grace=None)
    away = agent.count()
    t_end = time.monotonic() + 30
    while time.monotonic() < t_end:
        fio(dev, "--verify_only")
        with grpc.insecure_channel(f"{daemons['cp-b'].grpc_host}:{daemons['cp-b'].port}") as ch:
            P.host_grpc.HostRpcStub(ch).GetMayastorInfo(empty_pb2.Empty(), timeout=30)  # answers (1 s: test_registration)
    assert agent.count() == away
    servers.append(agent.serve())
    wait_for(lambda: agent.count() >= away + 2, 120, "both nodes registering again")
    run("nvme", "disconnect", "-n", f"nqn.2019-05.io.openebs:{vol}")

    # resize: replicas first, then the nexus
    for c, r in ((b, rb2), (a, ra)):
        c.replica.ResizeReplica(P.replica.ResizeReplicaRequest(uuid=r.uuid, requested_size=2 * SIZE))
    assert b.nexus.ResizeNexus(P.nexus.ResizeNexusRequest(uuid=n2, requested_size=2 * SIZE)).nexus.size == 2 * SIZE

    # a snapshot through the published nexus (I/O held across both replicas, the remote one
    # taken on its own node), then the unpublished path: one per replica; a clone
    snap = U()
    sa, sb = U(), U()
    out = b.snapshot.CreateNexusSnapshot(P.snapshot.NexusCreateSnapshotRequest(
        nexus_uuid=n2, entity_id=vol, txn_id="1", snapshot_name=f"{snap}/1", replicas=[
            P.snapshot.NexusCreateSnapshotReplicaDescriptor(replica_uuid=rb2.uuid, snapshot_uuid=sb, skip=False),
            P.snapshot.NexusCreateSnapshotReplicaDescriptor(replica_uuid=ra.uuid, snapshot_uuid=sa, skip=False)]))
    assert not out.replicas_skipped
    assert sorted((r.replica_uuid, r.status_code) for r in out.replicas_done) == sorted([(ra.uuid, 0), (rb2.uuid, 0)])
    assert [s.snapshot_uuid for s in a.snapshot.ListSnapshot(P.snapshot.ListSnapshotsRequest()).snapshots] == [sa]
    assert [s.snapshot_uuid for s in b.snapshot.ListSnapshot(P.snapshot.ListSnapshotsRequest()).snapshots] == [sb]
    b.nexus.DestroyNexus(P.nexus.DestroyNexusRequest(uuid=n2))
    assert etcd.get_json(key2)["clean_shutdown"] is True
    snap2 = U()
    for c, r in ((a, ra), (b, rb2)):
        su = U()
        got = c.snapshot.CreateReplicaSnapshot(P.snapshot.CreateReplicaSnapshotRequest(
            replica_uuid=r.uuid, snapshot_uuid=su, snapshot_name=f"{snap2}/2", entity_id=vol, txn_id="2"))
        assert got.replica_uuid == r.uuid and got.snapshot.snapshot_uuid == su
    node_load(a), node_load(b)
    clone = U()
    cl = a.snapshot.CreateSnapshotClone(P.snapshot.CreateSnapshotCloneRequest(
        snapshot_uuid=sa, clone_name=clone, clone_uuid=clone))
    assert cl.uuid == clone and cl.size == 2 * SIZE
    reps, _ = node_load(a)
    assert clone in {r.uuid for r in reps}
