"""LVM pools (pool type Lvm, --enable-lvm) on loop devices, with Debian's lvm2: a VG made by the
daemon or one the user had already, thin and thick replicas as thin LVs, a share moving data over
NVMe/TCP, snapshots and clones as LVM thin snapshots, resize, export/import, a restart, destroy."""

from __future__ import annotations

import subprocess
import uuid

import grpc
import pytest

from mayastor.grpc import protos as P
from mayastor.kernel import block, dm, loop, nvme_fabrics
from mayastor.kernel.dm_targets import ThinPoolStatus
from mayastor.pool import lvm_tools

from .daemon import serve
from .util import code_of, pattern, read_direct, run, write_direct

MiB = 1 << 20
NODE = "lvmnode"
LVM = 1
HOST = "nqn.2014-08.org.nvmexpress:uuid:" + str(uuid.uuid4())

pytestmark = pytest.mark.skipif(not lvm_tools.available(), reason="lvm2 is not installed (scripts/setup)")


def U() -> str:
    return str(uuid.uuid4())


def lvm(*args: str) -> str:
    return lvm_tools.run(*args)


def vg_report(name: str) -> dict | None:
    rows = lvm_tools.report("vgs", "vg", "vg_name,vg_uuid,vg_size,vg_free,vg_tags", f"--select=vg_name={name}")
    return rows[0] if rows else None


def lvs(vg: str) -> dict[str, dict]:
    rows = lvm_tools.report("lvs", "lv", "lv_name,lv_size,lv_tags,lv_attr,origin,pool_lv", f"--select=vg_name={vg}")
    return {r["lv_name"]: r for r in rows}


def active_dm(vg: str) -> list[str]:
    prefix = vg.replace("-", "--") + "-"
    with dm.DeviceMapper() as ctl:
        return sorted(d.name for d in ctl.list_devices() if d.name.startswith(prefix))


def lv_device(vg: str, lv: str) -> str:
    with dm.DeviceMapper() as ctl:
        return ctl.info(lvm_tools.dm_name(vg, lv)).devnode


def lvm_signature(path: str) -> str:
    r = subprocess.run(["blkid", "-p", "-o", "value", "-s", "TYPE", path], capture_output=True, text=True)
    return r.stdout.strip()


@pytest.fixture
def disks(tmp_path):
    """make(size_mb) -> a loop device; at teardown every VG on them is removed whatever the test left."""
    made: list[loop.LoopDevice] = []

    def make(size_mb: int) -> str:
        path = tmp_path / f"lvm{len(made)}.img"
        with open(path, "wb") as f:
            f.truncate(size_mb << 20)
        made.append(loop.attach(str(path)))
        return made[-1].path

    yield make
    for dev in reversed(made):
        rows = lvm_tools.report("pvs", "pv", "pv_name,vg_name", f"--select=pv_name={dev.path}")
        for vg in {r["vg_name"] for r in rows if r["vg_name"]}:
            subprocess.run(["lvm", "vgchange", f"--config={lvm_tools.CONFIG}", "-an", vg], capture_output=True)
            subprocess.run(["lvm", "vgremove", f"--config={lvm_tools.CONFIG}", "-ff", "-y", vg], capture_output=True)
        subprocess.run(["lvm", "pvremove", f"--config={lvm_tools.CONFIG}", "-ff", "-y", dev.path], capture_output=True)
        loop.detach(dev)


@pytest.fixture
def daemon(tmp_path, request):
    yield from serve(tmp_path, request, NODE, extra_args=("--enable-lvm",), nqns=("nqn.2019-05.io.openebs:lr-thin",))


ALL = P.replica.ListReplicaOptions.Query(replica=True, snapshot=True, clone=True)


def pool_named(c, name):
    return [p for p in c.pool.ListPools(P.pool.ListPoolOptions()).pools if p.name == name]


def replicas(c, **kw):
    return {r.name: r for r in c.replica.ListReplicas(P.replica.ListReplicaOptions(**kw)).replicas}


@pytest.mark.timeout(1500)
def test_lvm_pool_made_by_the_daemon(disks, daemon):  # the daemon goes first, then the disks
    c = daemon.client
    info = c.host.GetMayastorInfo(P.host.google_dot_protobuf_dot_empty__pb2.Empty())
    assert info.registration_info.features.logicalVolumeManager
    disk = disks(128)

    # refused before anything is made: a name lvm cannot take, a reserved one, a RAM disk, a uuid
    for name, dsk in (("a:b", disk), ("MAYASTOR-x", disk), ("lvr", "malloc:///m0?size_mb=64")):
        assert code_of(c.pool.CreatePool, P.pool.CreatePoolRequest(name=name, disks=[dsk], pooltype=LVM)) == \
            grpc.StatusCode.INVALID_ARGUMENT, name
    req = P.pool.CreatePoolRequest(name="lvm0", disks=[disk], pooltype=LVM)
    req.uuid.value = U()
    assert code_of(c.pool.CreatePool, req) == grpc.StatusCode.INVALID_ARGUMENT
    assert lvm_signature(disk) == "" and vg_report("lvm0") is None

    pool = c.pool.CreatePool(P.pool.CreatePoolRequest(name="lvm0", disks=[disk], pooltype=LVM))
    vg = vg_report("lvm0")
    assert vg is not None and "mayastor" in vg["vg_tags"].split(",")
    assert pool.uuid == vg["vg_uuid"] and pool.pooltype == LVM and pool.state == 1
    assert pool.capacity == int(vg["vg_size"]) == 124 * MiB and pool.used == 0 and pool.cluster_size == 4 * MiB
    assert list(pool.disks) == [disk]
    assert code_of(c.pool.CreatePool, P.pool.CreatePoolRequest(name="lvm0", disks=[disk], pooltype=LVM)) == \
        grpc.StatusCode.ALREADY_EXISTS
    assert [p.name for p in c.pool.ListPools(P.pool.ListPoolOptions(pooltype=P.pool.PoolTypeValue(value=LVM))).pools] \
        == ["lvm0"]
    assert c.pool.ListPools(P.pool.ListPoolOptions(pooltype=P.pool.PoolTypeValue(value=0))).pools == []

    # a thick replica (promised in full) and a thin one, shared; both thin LVs of one thin pool
    thick_u, thin_u = U(), U()
    thick = c.replica.CreateReplica(P.replica.CreateReplicaRequest(name="lr-thick", uuid=thick_u, pooluuid="lvm0",
                                                                   size=30 * MiB, thin=False, entity_id="vol-1"))
    assert thick.size == 32 * MiB and not thick.thin and thick.pooltype == LVM and thick.pooluuid == pool.uuid
    thin = c.replica.CreateReplica(P.replica.CreateReplicaRequest(
        name="lr-thin", uuid=thin_u, pooluuid=pool.uuid, size=40 * MiB, thin=True, share=1, allowed_hosts=[HOST]))
    assert thin.uri == f"nvmf://127.0.0.1:8420/nqn.2019-05.io.openebs:lr-thin?uuid={thin_u}"
    found = lvs("lvm0")
    assert found[thick_u]["pool_lv"] == found[thin_u]["pool_lv"] == "mayastor-thin"
    assert "mayastor.lv.name=lr-thick" in found[thick_u]["lv_tags"].split(",")
    assert "mayastor.lv.entity_id=vol-1" in found[thick_u]["lv_tags"].split(",")
    assert "mayastor.lv.share=nvmf" in found[thin_u]["lv_tags"].split(",")
    listed = pool_named(c, "lvm0")[0]
    assert listed.used >= 32 * MiB and listed.committed == 72 * MiB
    with dm.DeviceMapper() as ctl:  # a full thin pool fails writes at once (NO_SPACE), never queues them
        tpool = lvm_tools.dm_name("lvm0", "mayastor-thin") + "-tpool"
        assert ThinPoolStatus.parse(ctl.status(tpool)[0].params).error_if_no_space
    assert code_of(c.replica.CreateReplica, P.replica.CreateReplicaRequest(
        name="lr-big", uuid=U(), pooluuid="lvm0", size=100 * MiB, thin=False)) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert code_of(c.replica.CreateReplica, P.replica.CreateReplicaRequest(
        name="lr-thin", uuid=U(), pooluuid="lvm0", size=4 * MiB, thin=True)) == grpc.StatusCode.ALREADY_EXISTS
    assert set(replicas(c, pooltypes=[LVM])) == {"lr-thick", "lr-thin"} and replicas(c, pooltypes=[0]) == {}

    # data over NVMe/TCP into the thin LV; the snapshot keeps it, later writes stay out of it
    nqn = "nqn.2019-05.io.openebs:lr-thin"
    first, second = pattern(11, MiB), pattern(12, MiB)
    run("nvme", "connect", "-t", "tcp", "-a", "127.0.0.1", "-s", "8420", "-n", nqn, "-q", HOST)
    try:
        ns = nvme_fabrics.wait_for_namespace(thin_u, timeout=120)
        write_direct(ns.path, 8 * MiB, first)
    finally:
        run("nvme", "disconnect", "-n", nqn)
    assert replicas(c)["lr-thin"].usage.allocated_bytes >= MiB
    snap_u = U()
    snap = c.snapshot.CreateReplicaSnapshot(P.snapshot.CreateReplicaSnapshotRequest(
        replica_uuid=thin_u, snapshot_uuid=snap_u, snapshot_name="lr-snap", entity_id="vol-2", txn_id="t1")).snapshot
    assert snap.source_uuid == thin_u and snap.snapshot_size == 40 * MiB and snap.txn_id == "t1"
    assert lvs("lvm0")[snap_u]["origin"] == thin_u and lvs("lvm0")[snap_u]["lv_attr"][1] == "r"
    write_direct(lv_device("lvm0", thin_u), 8 * MiB, second)
    clone_u = U()
    clone = c.snapshot.CreateSnapshotClone(P.snapshot.CreateSnapshotCloneRequest(
        snapshot_uuid=snap_u, clone_name="lr-clone", clone_uuid=clone_u))
    assert clone.is_clone and clone.snapshot_uuid == snap_u and clone.pooltype == LVM
    assert read_direct(lv_device("lvm0", clone_u), 8 * MiB, MiB) == first
    assert read_direct(lv_device("lvm0", thin_u), 8 * MiB, MiB) == second
    c.snapshot.CreateReplicaSnapshot(P.snapshot.CreateReplicaSnapshotRequest(  # a thick replica's too
        replica_uuid=thick_u, snapshot_uuid=U(), snapshot_name="lr-thick-snap", entity_id="vol-1", txn_id="t2"))

    # resize: the LV and the shared namespace grow
    grown = c.replica.ResizeReplica(P.replica.ResizeReplicaRequest(uuid=thin_u, requested_size=48 * MiB))
    assert grown.size == 48 * MiB and int(lvs("lvm0")[thin_u]["lv_size"]) == 48 * MiB
    assert block.size_bytes(lv_device("lvm0", thin_u)) == 48 * MiB

    # export: every LV inactive, the VG untagged; import brings replicas, snapshots and the share back
    before = replicas(c, query=ALL)
    c.pool.ExportPool(P.pool.ExportPoolRequest(name="lvm0"))
    assert pool_named(c, "lvm0") == [] and replicas(c) == {}
    assert active_dm("lvm0") == [] and "mayastor" not in vg_report("lvm0")["vg_tags"].split(",")
    back = c.pool.ImportPool(P.pool.ImportPoolRequest(name="lvm0", disks=[disk], pooltype=LVM))
    assert back.uuid == pool.uuid and back.capacity == pool.capacity
    after = replicas(c, query=ALL)
    assert {n: (r.uuid, r.size, r.thin, r.share, list(r.allowed_hosts), r.entity_id, r.is_snapshot, r.is_clone)
            for n, r in after.items()} == \
        {n: (r.uuid, r.size, r.thin, r.share, list(r.allowed_hosts), r.entity_id, r.is_snapshot, r.is_clone)
         for n, r in before.items()}
    assert read_direct(lv_device("lvm0", clone_u), 8 * MiB, MiB) == first

    # a restart: reconcile brings the pool, its LVs and the share back
    daemon.stop()
    daemon.start()
    c = daemon.client
    assert pool_named(c, "lvm0")[0].uuid == pool.uuid
    assert replicas(c)["lr-thin"].uri == thin.uri and replicas(c)["lr-thin"].size == 48 * MiB
    run("nvme", "connect", "-t", "tcp", "-a", "127.0.0.1", "-s", "8420", "-n", nqn, "-q", HOST)
    try:
        ns = nvme_fabrics.wait_for_namespace(thin_u, timeout=120)
        assert read_direct(ns.path, 8 * MiB, MiB) == second
    finally:
        run("nvme", "disconnect", "-n", nqn)

    # destroy: replicas one by one (their LVs go), then the pool: VG and PV label gone
    c.replica.DestroyReplica(P.replica.DestroyReplicaRequest(uuid=clone_u))
    assert clone_u not in lvs("lvm0")
    c.pool.DestroyPool(P.pool.DestroyPoolRequest(name="lvm0"))
    assert pool_named(c, "lvm0") == [] and vg_report("lvm0") is None
    assert lvm_signature(disk) == "" and active_dm("lvm0") == []
    assert __import__("configfs").Root().subsystems == []


@pytest.mark.timeout(1200)
def test_existing_volume_group_is_imported_and_kept(tmp_path, request, disks):
    """io-engine's LVM scenario: the user's VG "lvmpool" on a 64 MiB loop device becomes a pool
    of 62914560 bytes, used 0; an LV of the user's own stays, and so does the VG when the pool goes."""
    disk = disks(64)
    lvm("vgcreate", "-q", "lvmpool", disk)
    lvm("lvcreate", "-q", "-L", "8m", "-n", "keep", "lvmpool")
    keep = pattern(5, MiB)
    write_direct(lv_device("lvmpool", "keep"), 0, keep)

    gen = serve(tmp_path, request, NODE)  # without --enable-lvm: refused as io-engine refuses it
    d = next(gen)
    try:
        c = d.client
        info = c.host.GetMayastorInfo(P.host.google_dot_protobuf_dot_empty__pb2.Empty())
        assert not info.registration_info.features.logicalVolumeManager
        assert code_of(c.pool.CreatePool, P.pool.CreatePoolRequest(name="lvmpool", disks=[disk], pooltype=LVM)) == \
            grpc.StatusCode.FAILED_PRECONDITION
        assert "mayastor" not in vg_report("lvmpool")["vg_tags"].split(",")
        d.stop()
        d.extra_args += ("--enable-lvm",)
        d.start()
        c = d.client
        # the VG is on this disk only: other disks do not match it
        other = disks(64)
        assert code_of(c.pool.ImportPool, P.pool.ImportPoolRequest(name="lvmpool", disks=[other], pooltype=LVM)) \
            == grpc.StatusCode.INVALID_ARGUMENT
        assert code_of(c.pool.ImportPool, P.pool.ImportPoolRequest(name="nosuch", disks=[other], pooltype=LVM)) \
            == grpc.StatusCode.NOT_FOUND
        pool = c.pool.CreatePool(P.pool.CreatePoolRequest(name="lvmpool", disks=[disk], pooltype=LVM))
        assert pool.capacity == 60 * MiB == 62914560 and pool.used == 8 * MiB  # the user's LV is used space
        assert pool.uuid == vg_report("lvmpool")["vg_uuid"]
        r = U()
        c.replica.CreateReplica(P.replica.CreateReplicaRequest(name=r, uuid=r, pooluuid=pool.uuid, size=16 * MiB))
        assert replicas(c, pooltypes=[LVM])[r].pooltype == LVM
        c.replica.DestroyReplica(P.replica.DestroyReplicaRequest(uuid=r))
        assert r not in lvs("lvmpool")
        c.pool.DestroyPool(P.pool.DestroyPoolRequest(name="lvmpool"))
        left = lvs("lvmpool")
        assert set(left) == {"keep"} and "mayastor" not in vg_report("lvmpool")["vg_tags"].split(",")
        assert read_direct(lv_device("lvmpool", "keep"), 0, MiB) == keep
    finally:
        for _ in gen:  # the fixture body's teardown: pools destroyed, daemon stopped, nothing left
            pass
