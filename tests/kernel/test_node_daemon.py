"""The node daemon driven over gRPC: pools, replicas, shares, snapshots, clones."""

from __future__ import annotations

import os
import sys
import uuid

import grpc
import pytest

from mayastor.grpc import protos as P
from mayastor.kernel import dm, loop

from .daemon import Daemon
from .util import code_of, pattern, read_direct, run, write_direct

MiB = 1 << 20


RESULTS = os.path.join(os.path.dirname(__file__), "..", "..", "test-results")


@pytest.fixture
def daemon(tmp_path, request):
    log = os.path.join(RESULTS, f"daemon-{request.node.name}.log")
    if os.path.exists(log):
        os.unlink(log)
    d = Daemon(str(tmp_path / "state.db"), log)
    d.start()
    yield d
    try:
        if d.proc is None:
            d.start()
        c = d.client
        for p in c.pool.ListPools(P.pool.ListPoolOptions()).pools:
            c.pool.DestroyPool(P.pool.DestroyPoolRequest(name=p.name))
    finally:
        rc = d.stop()
    assert rc == 0


def our_dm_devices() -> list[str]:
    with dm.DeviceMapper() as ctl:
        return [d.name for d in ctl.list_devices() if d.name.startswith("MAYASTOR-testnode-")]


def test_daemon_serves_host_info(daemon):
    info = daemon.client.host.GetMayastorInfo(P.host.google_dot_protobuf_dot_empty__pb2.Empty())
    assert info.registration_info.id == "testnode"


def U() -> str:
    return str(uuid.uuid4())


def nvme_connect(nqn: str, hostnqn: str) -> str:
    """nvme-cli connect to our share; returns the /dev/nvmeXnY of the namespace."""
    run("nvme", "connect", "-t", "tcp", "-a", "127.0.0.1", "-s", "8420", "-n", nqn, "-q", hostnqn)
    return nqn


def nvme_disconnect(nqn: str) -> None:
    run("nvme", "disconnect", "-n", nqn)


def test_pools_replicas_shares_snapshots_clones(make_loop, daemon, tmp_path):
    from mayastor.kernel import nvme_fabrics

    c = daemon.client
    pool_file = tmp_path / "pool-a.img"
    a = c.pool.CreatePool(P.pool.CreatePoolRequest(name="pool-a", disks=[f"aio://{pool_file}?size_mb=256"]))
    assert a.name == "pool-a" and a.state == 1 and a.disks[0].startswith(f"aio://{pool_file}?uuid=")
    assert 200 * MiB < a.capacity < 256 * MiB and a.used == 0 and a.cluster_size == 4 * MiB
    lo = make_loop(256)
    b = c.pool.CreatePool(P.pool.CreatePoolRequest(name="pool-b", disks=[lo.path], cluster_size=1 * MiB))
    assert b.cluster_size == 1 * MiB and b.disks[0].startswith(f"aio://{lo.path}?uuid=")
    # create-or-import: same name and disk -> ALREADY_EXISTS; same name, other disk -> INVALID_ARGUMENT
    assert code_of(c.pool.CreatePool, P.pool.CreatePoolRequest(name="pool-b", disks=[lo.path])) == \
        grpc.StatusCode.ALREADY_EXISTS
    assert code_of(c.pool.CreatePool, P.pool.CreatePoolRequest(name="pool-b", disks=[f"{tmp_path}/x.img"])) == \
        grpc.StatusCode.INVALID_ARGUMENT

    r1, r2, r3 = U(), U(), U()
    thin = c.replica.CreateReplica(P.replica.CreateReplicaRequest(name="r1", uuid=r1, pooluuid="pool-a",
                                                                  size=32 * MiB, thin=True, entity_id="vol-1"))
    assert thin.thin and thin.size == 32 * MiB and thin.uri == f"bdev:///r1?uuid={r1}" and thin.entity_id == "vol-1"
    assert thin.usage.allocated_bytes == 0
    thick = c.replica.CreateReplica(P.replica.CreateReplicaRequest(name="r2", uuid=r2, pooluuid=a.uuid,
                                                                   size=30 * MiB, thin=False))
    assert not thick.thin and thick.size == 32 * MiB  # rounded up to whole clusters
    hostnqn = "nqn.2014-08.org.nvmexpress:uuid:" + U()
    shared = c.replica.CreateReplica(P.replica.CreateReplicaRequest(
        name="r3", uuid=r3, pooluuid="pool-b", size=16 * MiB, thin=True, share=1, allowed_hosts=[hostnqn]))
    assert shared.uri == f"nvmf://127.0.0.1:8420/nqn.2019-05.io.openebs:r3?uuid={r3}"
    assert list(shared.allowed_hosts) == [hostnqn]
    # the same replica again -> ALREADY_EXISTS; more than the pool -> RESOURCE_EXHAUSTED
    assert code_of(c.replica.CreateReplica, P.replica.CreateReplicaRequest(
        name="r1", uuid=r1, pooluuid="pool-a", size=32 * MiB, thin=True)) == grpc.StatusCode.ALREADY_EXISTS
    assert code_of(c.replica.CreateReplica, P.replica.CreateReplicaRequest(
        name="big", uuid=U(), pooluuid="pool-a", size=1 << 30, thin=True)) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert code_of(c.replica.CreateReplica, P.replica.CreateReplicaRequest(
        name="big", uuid=U(), pooluuid="pool-a", size=a.capacity - 16 * MiB, thin=False)) == grpc.StatusCode.RESOURCE_EXHAUSTED
    pa = c.pool.ListPools(P.pool.ListPoolOptions(name=P.pool.google_dot_protobuf_dot_wrappers__pb2.StringValue(
        value="pool-a"))).pools
    assert len(pa) == 1 and pa[0].committed == 64 * MiB
    assert pa[0].used == 32 * MiB  # the thick replica counts in full at once, as in io-engine

    # nvme-cli connects to the share and moves data; another host NQN is refused
    nqn = "nqn.2019-05.io.openebs:r3"
    nvme_connect(nqn, hostnqn)
    try:
        ns = nvme_fabrics.wait_for_namespace(r3)
        data = pattern(3, 1 << 20)
        write_direct(ns.path, 4 * MiB, data)
        assert read_direct(ns.path, 4 * MiB, len(data)) == data
    finally:
        nvme_disconnect(nqn)
    other = run("nvme", "connect", "-t", "tcp", "-a", "127.0.0.1", "-s", "8420", "-n", nqn, "-q",
                "nqn.2014-08.org.nvmexpress:uuid:" + U(), check=False)
    assert other.returncode != 0
    listed = c.replica.ListReplicas(P.replica.ListReplicaOptions(uuid=_sv(r3))).replicas[0]
    assert listed.usage.allocated_bytes >= 1 * MiB  # the written megabyte is allocated in the thin pool

    # resize (grow) the shared replica: the namespace follows
    grown = c.replica.ResizeReplica(P.replica.ResizeReplicaRequest(uuid=r3, requested_size=48 * MiB))
    assert grown.size == 48 * MiB
    assert code_of(c.replica.ResizeReplica, P.replica.ResizeReplicaRequest(uuid=r3, requested_size=8 * MiB)) == \
        grpc.StatusCode.INVALID_ARGUMENT
    nvme_connect(nqn, hostnqn)
    try:
        ns = nvme_fabrics.wait_for_namespace(r3)
        from mayastor.kernel import block
        assert block.size_bytes(ns.path) == 48 * MiB
        assert read_direct(ns.path, 4 * MiB, len(data)) == data
    finally:
        nvme_disconnect(nqn)

    # snapshot, write more, clone the snapshot: the clone shows the data as it was
    s1 = U()
    snap = c.snapshot.CreateReplicaSnapshot(P.snapshot.CreateReplicaSnapshotRequest(
        replica_uuid=r3, snapshot_uuid=s1, snapshot_name="r3-snap", entity_id="vol-3", txn_id="t1")).snapshot
    assert snap.source_uuid == r3 and snap.snapshot_size == 48 * MiB and snap.txn_id == "t1"
    assert snap.referenced_bytes >= 1 * MiB
    c1 = U()
    clone = c.snapshot.CreateSnapshotClone(P.snapshot.CreateSnapshotCloneRequest(
        snapshot_uuid=s1, clone_name="r3-clone", clone_uuid=c1))
    assert clone.is_clone and clone.snapshot_uuid == s1 and clone.size == 48 * MiB
    clone_dev = f"/dev/mapper/MAYASTOR-testnode-thin-{c1}"
    with dm.DeviceMapper() as ctl:
        clone_dev = ctl.info(f"MAYASTOR-testnode-thin-{c1}").devnode
    assert read_direct(clone_dev, 4 * MiB, len(data)) == data

    # list filters
    L = c.replica.ListReplicas
    assert {r.name for r in L(P.replica.ListReplicaOptions()).replicas} == {"r1", "r2", "r3", "r3-clone"}
    assert {r.name for r in L(P.replica.ListReplicaOptions(poolname=_sv("pool-a"))).replicas} == {"r1", "r2"}
    assert {r.name for r in L(P.replica.ListReplicaOptions(pooluuid=_sv(b.uuid))).replicas} == {"r3", "r3-clone"}
    assert [r.uuid for r in L(P.replica.ListReplicaOptions(name=_sv("r2"))).replicas] == [r2]
    assert [r.name for r in L(P.replica.ListReplicaOptions(query=Q(snapshot=True))).replicas] == ["r3-snap"]
    assert [r.name for r in L(P.replica.ListReplicaOptions(query=Q(clone=True))).replicas] == ["r3-clone"]
    assert {r.name for r in L(P.replica.ListReplicaOptions(query=Q(replica=True))).replicas} == {"r1", "r2", "r3"}
    assert L(P.replica.ListReplicaOptions(pooltypes=[1])).replicas == []
    assert [s.snapshot_uuid for s in c.snapshot.ListSnapshot(P.snapshot.ListSnapshotsRequest(source_uuid=r3)).snapshots] == [s1]
    assert c.snapshot.ListSnapshot(P.snapshot.ListSnapshotsRequest(source_uuid=r1)).snapshots == []
    assert [r.uuid for r in c.snapshot.ListSnapshotClone(P.snapshot.ListSnapshotCloneRequest(snapshot_uuid=s1)).replicas] == [c1]
    assert {p.name for p in c.pool.ListPools(P.pool.ListPoolOptions(uuid=_sv(b.uuid))).pools} == {"pool-b"}
    assert c.pool.ListPools(P.pool.ListPoolOptions(pooltype=P.pool.PoolTypeValue(value=1))).pools == []

    # entity id, share/unshare
    assert c.replica.SetReplicaEntityId(P.replica.SetReplicaEntityIdRequest(uuid=r2, entity_id="vol-2")).entity_id == "vol-2"
    assert c.replica.ShareReplica(P.replica.ShareReplicaRequest(uuid=r1, share=1)).share == 1
    assert c.replica.UnshareReplica(P.replica.UnshareReplicaRequest(uuid=r1)).uri == f"bdev:///r1?uuid={r1}"

    # destroying a snapshot with a clone only discards it; it goes with its last clone
    c.snapshot.DestroySnapshot(P.snapshot.DestroySnapshotRequest(snapshot_uuid=s1))
    assert [s.discarded_snapshot for s in c.snapshot.ListSnapshot(P.snapshot.ListSnapshotsRequest()).snapshots] == [True]
    c.replica.DestroyReplica(P.replica.DestroyReplicaRequest(uuid=c1))
    assert c.snapshot.ListSnapshot(P.snapshot.ListSnapshotsRequest()).snapshots == []

    # destroy everything: NOT_FOUND (with gtm-602) for a second destroy, and the kernel is clean
    for r in (r1, r2, r3):
        c.replica.DestroyReplica(P.replica.DestroyReplicaRequest(uuid=r))
    with pytest.raises(grpc.RpcError) as err:
        c.replica.DestroyReplica(P.replica.DestroyReplicaRequest(uuid=r1))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert ("gtm-602", "0") in tuple(err.value.trailing_metadata())
    c.pool.DestroyPool(P.pool.DestroyPoolRequest(name="pool-a"))
    c.pool.DestroyPool(P.pool.DestroyPoolRequest(name="pool-b"))
    assert code_of(c.pool.DestroyPool, P.pool.DestroyPoolRequest(name="pool-b")) == grpc.StatusCode.NOT_FOUND
    assert our_dm_devices() == []
    assert __import__("configfs").Root().subsystems == []
    assert [d for d in loop.list_attached() if d.backing_file == str(pool_file)] == []


def _sv(value: str):
    return P.pool.google_dot_protobuf_dot_wrappers__pb2.StringValue(value=value)


def Q(**kw):
    return P.replica.ListReplicaOptions.Query(**kw)


def test_destroy_pool_with_everything_in_it(daemon, tmp_path):
    c = daemon.client
    c.pool.CreatePool(P.pool.CreatePoolRequest(name="full", disks=[f"aio://{tmp_path}/full.img?size_mb=128"]))
    r, s, k = U(), U(), U()
    c.replica.CreateReplica(P.replica.CreateReplicaRequest(name="fr", uuid=r, pooluuid="full", size=8 * MiB,
                                                           thin=True, share=1))
    c.snapshot.CreateReplicaSnapshot(P.snapshot.CreateReplicaSnapshotRequest(
        replica_uuid=r, snapshot_uuid=s, snapshot_name="fr-s"))
    c.snapshot.CreateSnapshotClone(P.snapshot.CreateSnapshotCloneRequest(snapshot_uuid=s, clone_name="fr-c",
                                                                         clone_uuid=k))
    c.pool.DestroyPool(P.pool.DestroyPoolRequest(name="full"))
    assert c.replica.ListReplicas(P.replica.ListReplicaOptions()).replicas == []
    assert our_dm_devices() == []
    assert __import__("configfs").Root().subsystems == []


def test_multi_disk_pool_grow_export_import_stats_and_host(daemon, tmp_path):
    from google.protobuf.empty_pb2 import Empty

    from mayastor.kernel import nvme_fabrics

    c = daemon.client
    d1, d2 = f"{tmp_path}/m1.img", f"{tmp_path}/m2.img"
    pool = c.pool.CreatePool(P.pool.CreatePoolRequest(
        name="multi", disks=[f"aio://{d1}?size_mb=96", f"aio://{d2}?size_mb=96"]))
    assert len(pool.disks) == 2 and pool.capacity > 150 * MiB  # both disks, concatenated
    assert pool.disk_capacity == 192 * MiB
    # a replica bigger than either disk spans both
    r = U()
    c.replica.CreateReplica(P.replica.CreateReplicaRequest(name="span", uuid=r, pooluuid="multi",
                                                           size=140 * MiB, thin=False, share=1))
    hostnqn = "nqn.2014-08.org.nvmexpress:uuid:" + U()
    c.replica.ShareReplica(P.replica.ShareReplicaRequest(uuid=r, share=1, allowed_hosts=[hostnqn]))
    nqn = "nqn.2019-05.io.openebs:span"
    c.stats.ResetIoStats(Empty())
    nvme_connect(nqn, hostnqn)
    try:
        ns = nvme_fabrics.wait_for_namespace(r)
        data = pattern(9, 2 * MiB)
        write_direct(ns.path, 130 * MiB, data)  # lands on the second disk
        assert read_direct(ns.path, 130 * MiB, len(data)) == data
        ctrls = c.host.ListNvmeControllers(Empty()).controllers
        mine = [x for x in ctrls if x.size == 140 * MiB]
        assert len(mine) == 1 and mine[0].state == 2 and mine[0].blk_size == 512
        st = c.host.StatNvmeController(P.host.StatNvmeControllerRequest(name=mine[0].name)).stats
        assert st.bytes_written >= 2 * MiB and st.bytes_read >= 2 * MiB
    finally:
        nvme_disconnect(nqn)
    rs = c.stats.GetReplicaIoStats(P.stats.ListStatsOption(name="span")).stats
    assert len(rs) == 1 and rs[0].stats.bytes_written >= 2 * MiB and rs[0].stats.num_write_ops > 0
    ps = c.stats.GetPoolIoStats(P.stats.ListStatsOption()).stats
    assert [s.name for s in ps] == ["multi"] and ps[0].bytes_written >= 2 * MiB and ps[0].tick_rate == 1000
    c.stats.ResetIoStats(Empty())
    assert c.stats.GetReplicaIoStats(P.stats.ListStatsOption(name="span")).stats[0].stats.bytes_written == 0

    # block devices: the pool's loop devices are listed and not available
    devs = c.host.ListBlockDevices(P.host.ListBlockDevicesRequest(all=True)).devices
    loops = {x.devname: x for x in devs if x.devname.startswith("/dev/loop")}
    assert len(loops) >= 2 and not any(x.available for x in loops.values())
    assert all(x.devname not in loops for x in c.host.ListBlockDevices(P.host.ListBlockDevicesRequest()).devices)

    # grow: the last disk got bigger
    os.truncate(d2, 160 * MiB)
    grown = c.pool.GrowPool(P.pool.GrowPoolRequest(name="multi"))
    assert grown.previous_pool.capacity == pool.capacity
    assert grown.current_pool.capacity >= pool.capacity + 60 * MiB
    assert grown.current_pool.disk_capacity == 256 * MiB
    # the first disk growing cannot be used (it would shift the concatenation)
    os.truncate(d1, 128 * MiB)
    assert code_of(c.pool.GrowPool, P.pool.GrowPoolRequest(name="multi")) == grpc.StatusCode.FAILED_PRECONDITION

    # export then import: the replica and its share come back, data intact
    c.pool.ExportPool(P.pool.ExportPoolRequest(name="multi"))
    assert our_dm_devices() == [] and __import__("configfs").Root().subsystems == []
    assert c.replica.ListReplicas(P.replica.ListReplicaOptions()).replicas == []
    back = c.pool.ImportPool(P.pool.ImportPoolRequest(name="multi", disks=[d2, d1]))  # any order
    assert back.uuid == pool.uuid and back.capacity == grown.current_pool.capacity
    rep = c.replica.ListReplicas(P.replica.ListReplicaOptions()).replicas
    assert [x.uuid for x in rep] == [r] and rep[0].share == 1 and list(rep[0].allowed_hosts) == [hostnqn]
    with dm.DeviceMapper() as ctl:
        dev = ctl.info(f"MAYASTOR-testnode-thin-{r}").devnode
    assert read_direct(dev, 130 * MiB, len(data)) == data
    # one disk alone is refused: the label says the pool has two
    c.pool.ExportPool(P.pool.ExportPoolRequest(name="multi"))
    assert code_of(c.pool.ImportPool, P.pool.ImportPoolRequest(name="multi", disks=[d1])) == \
        grpc.StatusCode.FAILED_PRECONDITION
    c.pool.ImportPool(P.pool.ImportPoolRequest(name="multi", disks=[d1, d2]))


def test_config_and_pool_yaml_at_start(tmp_path, request):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("nexus_opts:\n  nvmf_replica_port: 8430\nbdev_opts:\n  bdev_io_pool_size: 65535\n")
    pools = tmp_path / "pools.yaml"
    pools.write_text(f"pools:\n  - name: yp\n    disks: ['aio://{tmp_path}/yp.img?size_mb=64']\n")
    log = os.path.join(RESULTS, f"daemon-{request.node.name}.log")
    d = Daemon(str(tmp_path / "s.db"), log, extra_args=("-y", str(cfg), "-P", str(pools), "-l", "1,2", "-r",
                                                        "/tmp/ms0.sock"))
    c = d.start()
    try:
        assert [p.name for p in c.pool.ListPools(P.pool.ListPoolOptions()).pools] == ["yp"]
        r = c.replica.CreateReplica(P.replica.CreateReplicaRequest(name="y1", uuid=U(), pooluuid="yp",
                                                                   size=4 * MiB, thin=True, share=1))
        assert r.uri.startswith("nvmf://127.0.0.1:8430/")
        c.pool.DestroyPool(P.pool.DestroyPoolRequest(name="yp"))
    finally:
        assert d.stop() == 0
    text = d.log()
    assert "bdev_opts is SPDK-specific and ignored" in text and "ignoring SPDK-only option" in text
    bad = tmp_path / "bad.yaml"
    bad.write_text("nexus_opts:\n  nvmf_replica_prt: 1\n")
    res = run(sys.executable, "-m", "mayastor", "-y", str(bad), "--state-db", str(tmp_path / "b.db"), check=False)
    assert res.returncode == 2 and "unknown key nexus_opts.nvmf_replica_prt" in res.stderr
