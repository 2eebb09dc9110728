"""mayastor-csi's pure logic: request checks, volume URIs, mountinfo parsing, the csi.v1 services."""

from __future__ import annotations

import pytest

from mayastor.csi import mounts
from mayastor.csi import requests as req
from mayastor.csi.protos import csi, csi_grpc
from mayastor.errors import InvalidArgument

VOL = "0b7e6c3e-4a8d-4f0e-9d1c-5e2f3a4b6c7d"
NQN = f"nqn.2019-05.io.openebs:{VOL}"
MODES = csi.VolumeCapability.AccessMode


def test_volume_id_is_a_uuid():
    assert req.volume_id(VOL.upper()) == VOL
    for bad in ("", "vol1", VOL + "x", "../" + VOL[3:], VOL.replace("-", "")):
        with pytest.raises(InvalidArgument):
            req.volume_id(bad)


@pytest.mark.parametrize("bad", ["", "rel/path", "/a/../b", "/a/./b", "/a//b", "/a/", "/", "/a\nb", "/a\0b"])
def test_paths_must_be_normalised_absolute(bad):
    with pytest.raises(InvalidArgument):
        req.path(bad, "target_path")


def test_path_ok():
    assert req.path("/var/lib/kubelet/pods/x/volumes/kubernetes.io~csi/pvc-1/mount", "p").endswith("/mount")


def cap(**kw):
    return csi.VolumeCapability(**kw)


def test_capabilities():
    block = req.capability(cap(block=csi.VolumeCapability.BlockVolume(), access_mode=MODES(mode=1)))
    assert block.block and not block.read_only
    mount = req.capability(cap(mount=csi.VolumeCapability.MountVolume(mount_flags=["noatime", "discard"]),
                               access_mode=MODES(mode=MODES.SINGLE_NODE_READER_ONLY)))
    assert (mount.block, mount.fs_type, mount.mount_flags, mount.read_only) == (False, "ext4", ("noatime", "discard"), True)
    assert req.capability(None, required=False) is None
    bad = [
        None,
        cap(access_mode=MODES(mode=1)),  # neither block nor mount
        cap(mount=csi.VolumeCapability.MountVolume(fs_type="ntfs"), access_mode=MODES(mode=1)),
        cap(mount=csi.VolumeCapability.MountVolume(fs_type="xfs"), access_mode=MODES(mode=MODES.MULTI_NODE_MULTI_WRITER)),
        cap(mount=csi.VolumeCapability.MountVolume(), access_mode=MODES(mode=MODES.UNKNOWN)),
        cap(mount=csi.VolumeCapability.MountVolume(mount_flags=["rw,suid"]), access_mode=MODES(mode=1)),
        cap(mount=csi.VolumeCapability.MountVolume(mount_flags=["a b"]), access_mode=MODES(mode=1)),
        cap(mount=csi.VolumeCapability.MountVolume(volume_mount_group="1000"), access_mode=MODES(mode=1)),
    ]
    for c in bad:
        with pytest.raises(InvalidArgument):
            req.capability(c)


def test_volume_uris():
    u = req.volume_uri(f"nvmf://10.1.0.5:8420/{NQN}?uuid={VOL}&nr_io_queues=2&hostnqn=nqn.2014-08.org.x:h1", VOL)
    assert (u.scheme, u.host, u.port, u.nqn, u.hostnqn, u.options) == \
        ("nvmf", "10.1.0.5", 8420, NQN, "nqn.2014-08.org.x:h1", {"nr_io_queues": 2})
    assert req.volume_uri(f"nvmf+tcp://node-1.example/{NQN}", VOL).port == 4420
    assert req.volume_uri(f"nvmf://[fd00::5]:4421/{NQN}", VOL).host == "fd00::5"
    assert req.volume_uri("file:///dev/nbd3", VOL).device == "/dev/nbd3"
    other = "1b7e6c3e-4a8d-4f0e-9d1c-5e2f3a4b6c7d"
    for bad in ("", f"iscsi://h/{NQN}", f"nvmf://h/nqn.2019-05.io.openebs:{other}", f"nvmf://h/{NQN}?bogus=1",
                f"nvmf://h/{NQN}?nr_io_queues=-1", f"nvmf://h/{NQN}?hostnqn=bad", "nvmf://h/notanqn",
                f"nvmf://bad_host!/{NQN}", f"nvmf://u:p@h/{NQN}", f"nvmf://h/{NQN}#frag", "file:///etc/passwd",
                "file:///dev/../etc/passwd", "file://host/dev/sda", f"nvmf://h:99999/{NQN}", f"nvmf://h/{NQN} x"):
        with pytest.raises(InvalidArgument):
            req.volume_uri(bad, VOL)


def test_volume_of_nqn():
    assert req.volume_of_nqn(NQN) == VOL and req.subsystem_nqn(VOL) == NQN
    assert req.volume_of_nqn("nqn.2019-05.io.openebs:vol1") is None
    assert req.volume_of_nqn(f"nqn.2014-08.org.x:{VOL}") is None


MOUNTINFO = """\
22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw
98 22 259:5 / /var/lib/stage\\040dir rw,noatime shared:50 - xfs /dev/nvme1n1 rw,nouuid
99 22 259:5 / /var/lib/pods/a/mount ro,noatime shared:50 - xfs /dev/nvme1n1 rw,nouuid
100 22 0:5 /nvme2n1 /var/lib/pods/b/dev rw,nosuid shared:2 - devtmpfs udev rw,size=1k
101 22 0:44 / /var/lib/stage2 rw shared:51 - btrfs /dev/nvme3n1 rw,space_cache=v2
102 22 0:44 / /var/lib/pods/c/mount rw shared:51 - btrfs /dev/nvme3n1 rw,space_cache=v2
"""


def test_mountinfo():
    ms = mounts.parse_mountinfo(MOUNTINFO)
    assert [m.target for m in ms][:2] == ["/", "/var/lib/stage dir"]
    stage = mounts.at("/var/lib/stage dir", ms)
    assert (stage.devnum, stage.fs_type, stage.source, stage.read_only) == ((259, 5), "xfs", "/dev/nvme1n1", False)
    assert mounts.at("/var/lib/pods/a/mount", ms).read_only
    assert mounts.at("/nowhere", ms) is None
    assert [m.target for m in mounts.of_device((259, 5), "nvme1n1", ms)] == ["/var/lib/stage dir", "/var/lib/pods/a/mount"]
    assert [m.target for m in mounts.of_device((259, 9), "nvme2n1", ms)] == ["/var/lib/pods/b/dev"]
    assert [m.target for m in mounts.of_device((0, 44), "nvme3n1", ms)] == ["/var/lib/stage2", "/var/lib/pods/c/mount"]
    assert mounts.of_device((1, 1), "", ms) == []


def test_csi_services_are_the_node_plugins():
    ident = csi.DESCRIPTOR.services_by_name["Identity"]
    node = csi.DESCRIPTOR.services_by_name["Node"]
    assert csi.DESCRIPTOR.package == "csi.v1"
    assert [m.name for m in ident.methods] == ["GetPluginInfo", "GetPluginCapabilities", "Probe"]
    assert {m.name for m in node.methods} == {
        "NodeStageVolume", "NodeUnstageVolume", "NodePublishVolume", "NodeUnpublishVolume", "NodeGetVolumeStats",
        "NodeExpandVolume", "NodeGetCapabilities", "NodeGetInfo"}
    assert hasattr(csi_grpc, "NodeStub") and hasattr(csi_grpc, "IdentityStub")
    # a few wire numbers kubelet depends on
    f = csi.NodePublishVolumeRequest.DESCRIPTOR.fields_by_name
    assert (f["target_path"].number, f["volume_capability"].number, f["readonly"].number) == (4, 5, 6)
    assert csi.NodeExpandVolumeRequest.DESCRIPTOR.fields_by_name["staging_target_path"].number == 4
