"""mayastor-csi in the VM: a published nexus staged and published as ext4, xfs, btrfs and a raw
block device, grown after ResizeNexus, every call repeated (idempotent), missing volumes NOT_FOUND.
The plugin runs as its console script on a unix socket; the nexus comes from a real daemon."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid

import grpc
import pytest

from mayastor.csi.protos import csi, csi_grpc
from mayastor.grpc import protos as P
from mayastor.kernel import block, nvme_fabrics

from .daemon import FAST_RECONNECT, serve
from .util import code_of

NODE = "csinode"
MiB = 1 << 20
NQN = "nqn.2019-05.io.openebs:"
PLUGIN = shutil.which("mayastor-csi") or os.path.join(os.path.dirname(sys.executable), "mayastor-csi")
MODES = csi.VolumeCapability.AccessMode
VOLUMES = [str(uuid.uuid4()) for _ in range(4)]  # ext4, xfs, btrfs, block


@pytest.fixture
def daemon(tmp_path, request):
    yield from serve(tmp_path, request, NODE, nqns=tuple(NQN + v for v in VOLUMES))


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    """One plugin process for the module (a Python start costs ~20 s under TCG)."""
    tmp = tmp_path_factory.mktemp("csi")
    sock = str(tmp / "csi.sock")
    log = open(tmp / "csi.log", "w+")
    proc = subprocess.Popen([PLUGIN, "--csi-socket", sock, "--node-name", NODE, "-v"], stdout=log, stderr=log)
    channel = grpc.insecure_channel(f"unix://{sock}", options=FAST_RECONNECT)
    try:
        grpc.channel_ready_future(channel).result(timeout=120)
        yield csi_grpc.IdentityStub(channel), csi_grpc.NodeStub(channel)
    finally:
        channel.close()
        proc.terminate()
        rc = proc.wait(timeout=30)
        log.seek(0)
        print(log.read()[-5000:])
        assert rc == 0 and not os.path.exists(sock)


def cap(fs: str | None, mode: int = MODES.SINGLE_NODE_WRITER) -> csi.VolumeCapability:
    if fs is None:
        return csi.VolumeCapability(block=csi.VolumeCapability.BlockVolume(), access_mode=MODES(mode=mode))
    return csi.VolumeCapability(mount=csi.VolumeCapability.MountVolume(fs_type=fs, mount_flags=["noatime"]),
                                access_mode=MODES(mode=mode))


def mount_at(path: str) -> list[str] | None:
    """findmnt's SOURCE and FSTYPE of ``path`` (None when nothing is mounted there)."""
    res = subprocess.run(["findmnt", "-n", "-o", "SOURCE,FSTYPE,OPTIONS", "--mountpoint", path],
                         capture_output=True, text=True)
    return res.stdout.split() if res.returncode == 0 else None


def make_volume(c, pool: str, vol: str, size: int) -> tuple[str, str, str]:
    """A one-replica nexus named ``vol``, published to this node: (device URI, nexus uuid, replica uuid)."""
    r = c.replica.CreateReplica(P.replica.CreateReplicaRequest(
        name=f"r-{vol[:8]}", uuid=str(uuid.uuid4()), pooluuid=pool, size=size + 4 * MiB, thin=True))
    nx = c.nexus.CreateNexus(P.nexus.CreateNexusRequest(name=vol, uuid=str(uuid.uuid4()), size=size,
                                                        children=[f"bdev:///{r.name}?uuid={r.uuid}"])).nexus
    host = nvme_fabrics.HostIdentity.load_or_create().hostnqn  # the node's identity, as the plugin uses
    published = c.nexus.PublishNexus(P.nexus.PublishNexusRequest(uuid=nx.uuid, share=1, allowed_hosts=[host]))
    return published.nexus.device_uri, nx.uuid, r.uuid


@pytest.mark.timeout(900)
def test_stage_publish_expand_unpublish_unstage(daemon, plugin, tmp_path):
    identity, node = plugin
    c = daemon.client
    info = identity.GetPluginInfo(csi.GetPluginInfoRequest())
    assert info.name == "io.openebs.csi-mayastor" and info.vendor_version
    assert identity.Probe(csi.ProbeRequest()).ready.value is True
    ni = node.NodeGetInfo(csi.NodeGetInfoRequest())
    assert ni.node_id == NODE and dict(ni.accessible_topology.segments) == {"openebs.io/nodename": NODE}
    caps = {cp.rpc.type for cp in node.NodeGetCapabilities(csi.NodeGetCapabilitiesRequest()).capabilities}
    assert caps == {1, 2, 3}  # STAGE_UNSTAGE_VOLUME, GET_VOLUME_STATS, EXPAND_VOLUME

    c.pool.CreatePool(P.pool.CreatePoolRequest(name="csipool", disks=[f"aio://{tmp_path}/csi.img?size_mb=2048"]))
    size = 320 * MiB  # mkfs.xfs wants 300 MiB at least
    made = {vol: make_volume(c, "csipool", vol, size) for vol in VOLUMES}
    uris = {vol: m[0] for vol, m in made.items()}
    kinds = dict(zip(VOLUMES, ["ext4", "xfs", "btrfs", None]))

    for vol, fs in kinds.items():
        staging, target = str(tmp_path / f"stage-{vol}"), str(tmp_path / "pods" / vol / "mount")
        ctx = {"uri": uris[vol]}
        stage = csi.NodeStageVolumeRequest(volume_id=vol, publish_context=ctx, staging_target_path=staging,
                                           volume_capability=cap(fs))
        publish = csi.NodePublishVolumeRequest(volume_id=vol, publish_context=ctx, staging_target_path=staging,
                                               target_path=target, volume_capability=cap(fs))
        for _ in range(2):  # the second of each call finds the work done and changes nothing
            node.NodeStageVolume(stage)
            dev = nvme_fabrics.namespaces_of(NQN + vol)
            assert len(dev) == 1 and len(nvme_fabrics.find_controllers(NQN + vol)) == 1
            assert block.size_bytes(dev[0].name) == size
            if fs:
                assert mount_at(staging)[:2] == [dev[0].path, fs]
        for _ in range(2):
            node.NodePublishVolume(publish)
        stats = node.NodeGetVolumeStats(csi.NodeGetVolumeStatsRequest(volume_id=vol, volume_path=target))
        bytes_usage = stats.usage[0]
        assert bytes_usage.unit == csi.VolumeUsage.BYTES
        if fs:
            assert mount_at(target)[:2] == [dev[0].path, fs] and "noatime" in mount_at(target)[2]
            # (XFS keeps a 64 MiB log out of its total)
            assert 0.75 * size < bytes_usage.total <= size and 0 < bytes_usage.available < bytes_usage.total
            if fs == "btrfs":  # no inode limit: no inode usage
                assert len(stats.usage) == 1
            else:
                assert stats.usage[1].unit == csi.VolumeUsage.INODES and stats.usage[1].total > 0
            with open(os.path.join(target, "hello"), "w") as f:
                f.write(f"data of {vol}")
        else:
            assert bytes_usage.total == size and os.stat(target).st_rdev == os.stat(dev[0].path).st_rdev
            with open(target, "r+b") as f:
                f.write(b"block of " + vol.encode())
        # the volume is in use: unstage refuses while it is still published
        assert code_of(node.NodeUnstageVolume, csi.NodeUnstageVolumeRequest(
            volume_id=vol, staging_target_path=staging)) == grpc.StatusCode.FAILED_PRECONDITION

    # grow the ext4 and the block volume: replica, then nexus, then the node's view of it
    for vol in (VOLUMES[0], VOLUMES[3]):
        _, nexus_uuid, replica_uuid = made[vol]
        c.replica.ResizeReplica(P.replica.ResizeReplicaRequest(uuid=replica_uuid, requested_size=2 * size + 4 * MiB))
        c.nexus.ResizeNexus(P.nexus.ResizeNexusRequest(uuid=nexus_uuid, requested_size=2 * size))
        target = str(tmp_path / "pods" / vol / "mount")
        grow = csi.NodeExpandVolumeRequest(volume_id=vol, volume_path=target,
                                           capacity_range=csi.CapacityRange(required_bytes=2 * size))
        for _ in range(2):
            assert node.NodeExpandVolume(grow).capacity_bytes == 2 * size
        total = node.NodeGetVolumeStats(csi.NodeGetVolumeStatsRequest(volume_id=vol, volume_path=target)).usage[0].total
        assert (1.8 * size < total <= 2 * size) if vol == VOLUMES[0] else total == 2 * size

    # unpublish and unstage (twice each), then stage again: the data is still there
    for vol, fs in kinds.items():
        staging, target = str(tmp_path / f"stage-{vol}"), str(tmp_path / "pods" / vol / "mount")
        for _ in range(2):
            node.NodeUnpublishVolume(csi.NodeUnpublishVolumeRequest(volume_id=vol, target_path=target))
            assert not os.path.exists(target)
        for _ in range(2):
            node.NodeUnstageVolume(csi.NodeUnstageVolumeRequest(volume_id=vol, staging_target_path=staging))
            assert mount_at(staging) is None and nvme_fabrics.find_controllers(NQN + vol) == []
        ctx = {"uri": uris[vol]}
        node.NodeStageVolume(csi.NodeStageVolumeRequest(volume_id=vol, publish_context=ctx,
                                                        staging_target_path=staging, volume_capability=cap(fs)))
        dev = nvme_fabrics.namespaces_of(NQN + vol)[0].path
        if fs:
            with open(os.path.join(staging, "hello")) as f:
                assert f.read() == f"data of {vol}"
        else:
            with open(dev, "rb") as f:
                assert f.read(45) == b"block of " + vol.encode()
        # another filesystem on a volume that has one is refused, and changes nothing
        if fs == "ext4":
            for path, code in ((staging, grpc.StatusCode.ALREADY_EXISTS),
                               (str(tmp_path / "stage-other"), grpc.StatusCode.FAILED_PRECONDITION)):
                assert code_of(node.NodeStageVolume, csi.NodeStageVolumeRequest(
                    volume_id=vol, publish_context=ctx, staging_target_path=path,
                    volume_capability=cap("xfs"))) == code
            assert mount_at(staging)[:2] == [dev, "ext4"] and mount_at(str(tmp_path / "stage-other")) is None
        node.NodeUnstageVolume(csi.NodeUnstageVolumeRequest(volume_id=vol, staging_target_path=staging))
        assert nvme_fabrics.find_controllers(NQN + vol) == []


@pytest.mark.timeout(300)
def test_missing_volumes_and_bad_requests(daemon, plugin, tmp_path):
    _, node = plugin
    c = daemon.client
    c.pool.CreatePool(P.pool.CreatePoolRequest(name="csipool", disks=[f"aio://{tmp_path}/csi.img?size_mb=512"]))
    vol = VOLUMES[0]
    uri = make_volume(c, "csipool", vol, 64 * MiB)[0]
    missing = str(uuid.uuid4())  # never created: its subsystem is not exported
    missing_uri = uri.replace(vol, missing)
    staging = str(tmp_path / "stage")
    NOT_FOUND, INVALID = grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT

    def stage(volume_id=missing, path=staging, uri=missing_uri, capability=cap("ext4")):
        return csi.NodeStageVolumeRequest(volume_id=volume_id, publish_context={"uri": uri} if uri else {},
                                          staging_target_path=path, volume_capability=capability)
    assert code_of(node.NodeStageVolume, stage()) == NOT_FOUND
    assert nvme_fabrics.find_controllers(NQN + missing) == [] and mount_at(staging) is None
    assert code_of(node.NodeGetVolumeStats, csi.NodeGetVolumeStatsRequest(
        volume_id=missing, volume_path=staging)) == NOT_FOUND
    assert code_of(node.NodeExpandVolume, csi.NodeExpandVolumeRequest(
        volume_id=missing, volume_path=str(tmp_path / "nowhere"))) == NOT_FOUND
    # unpublish/unstage of what is not there succeed (idempotent) and touch nothing
    node.NodeUnpublishVolume(csi.NodeUnpublishVolumeRequest(volume_id=missing, target_path=str(tmp_path / "t")))
    node.NodeUnstageVolume(csi.NodeUnstageVolumeRequest(volume_id=missing, staging_target_path=staging))

    bad = [
        stage(volume_id="not-a-uuid"),
        stage(path="relative/path"),
        stage(path=str(tmp_path / ".." / "escape")),
        stage(volume_id=vol, uri=missing_uri),  # the URI names another volume's subsystem
        stage(volume_id=vol, uri=None),
        stage(volume_id=vol, uri="iscsi://h/iqn.x"),
        stage(volume_id=vol, uri=uri + "?bogus=1"),
        stage(volume_id=vol, uri=uri, capability=cap("ntfs")),
        stage(volume_id=vol, uri=uri, capability=cap("ext4", MODES.MULTI_NODE_MULTI_WRITER)),
        stage(volume_id=vol, uri=uri, capability=csi.VolumeCapability(mount=csi.VolumeCapability.MountVolume(
            fs_type="ext4", mount_flags=["ro,exec"]), access_mode=MODES(mode=1))),
        csi.NodeStageVolumeRequest(volume_id=vol, publish_context={"uri": uri}, staging_target_path=staging),
    ]
    for request in bad:
        assert code_of(node.NodeStageVolume, request) == INVALID, request
    assert nvme_fabrics.find_controllers(NQN + vol) == [] and not os.path.exists(staging)
    # publishing what was never staged is refused
    assert code_of(node.NodePublishVolume, csi.NodePublishVolumeRequest(
        volume_id=vol, staging_target_path=staging, target_path=str(tmp_path / "t"),
        volume_capability=cap("ext4"))) == grpc.StatusCode.FAILED_PRECONDITION
