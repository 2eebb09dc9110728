"""mayastor.v1.HostRpc: node info, block devices (sysfs), resource usage, NVMe controllers."""

from __future__ import annotations

import os
import re
import resource

from .. import __version__
from ..errors import NotFound
from ..kernel import block, mountinfo, nvme_fabrics
from . import protos as P
from .status import rpc

SYS_BLOCK = "/sys/block"
CTRL_STATES = {"new": 0, "connecting": 1, "live": 2, "dead": 3, "deleting": 4, "deleting (no IO)": 4}


def _read(path: str, default: str = "") -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def _mounted_sources() -> set[str]:
    """Mount sources and "major:minor" of every mounted filesystem."""
    try:
        mounts = mountinfo.read()
    except OSError:
        return set()
    return {m.source for m in mounts} | {f"{m.devnum[0]}:{m.devnum[1]}" for m in mounts}


def _devlinks(devnode: str) -> list[str]:
    links = []
    for root, _dirs, files in os.walk("/dev/disk"):
        for f in files:
            p = os.path.join(root, f)
            if os.path.realpath(p) == devnode:
                links.append(p)
    return sorted(links)


def _connection_type(name: str) -> str:
    if name.startswith("nvme"):
        return "nvme"
    real = os.path.realpath(os.path.join(SYS_BLOCK, name))
    for kind in ("virtio", "usb", "ata", "scsi", "loop", "nbd", "dm"):
        if f"/{kind}" in real or name.startswith(kind):
            return kind
    return ""


def block_devices(all_devices: bool, pool_devices: set[str]) -> list:
    mounted = _mounted_sources()
    out = []
    for name in sorted(os.listdir(SYS_BLOCK)):
        if name.startswith(("ram", "zram")) or (
            name.startswith("loop") and not os.path.exists(os.path.join(SYS_BLOCK, name, "loop"))
        ):
            continue
        base = os.path.join(SYS_BLOCK, name)
        entries: list[tuple[str, str, str | None]] = [(name, base, None)]
        for part in sorted(os.listdir(base)):
            if part.startswith(name) and os.path.exists(os.path.join(base, part, "partition")):
                entries.append((part, os.path.join(base, part), name))
        for dev, path, parent in entries:
            devnum = _read(os.path.join(path, "dev"), "0:0")
            major, minor = (int(x) for x in devnum.split(":"))
            devnode = f"/dev/{dev}"
            holders = os.path.join(path, "holders")
            held = os.path.isdir(holders) and bool(os.listdir(holders))
            in_use = devnode in mounted or devnum in mounted or devnode in pool_devices or held
            has_parts = parent is None and len(entries) > 1
            bd = P.host.BlockDevice(
                devname=devnode,
                devtype="partition" if parent else "disk",
                devmajor=major,
                devminor=minor,
                model=_read(os.path.join(base, "device", "model")),
                devpath=os.path.realpath(path),
                devlinks=_devlinks(devnode),
                size=int(_read(os.path.join(path, "size"), "0")),
                available=not in_use and not has_parts,
                connection_type=_connection_type(name),
            )
            rot = _read(os.path.join(base, "queue", "rotational"))
            if rot:
                bd.is_rotational = rot == "1"
            if parent:
                bd.partition.parent = parent
                bd.partition.number = int(_read(os.path.join(path, "partition"), "0"))
                bd.partition.name = dev
            if all_devices or bd.available:
                out.append(bd)
    return out


class HostRpc(P.host_grpc.HostRpcServicer):
    def __init__(self, node, registration):
        self.node = node
        self.registration = registration  # the RegisterRequest the heartbeat sends, to the letter

    @rpc
    def GetMayastorInfo(self, request, context):
        reg = self.registration
        return P.host.MayastorInfoResponse(
            version=__version__,
            registration_info=reg,
            previous_features=P.host.BackCompatMayastorFeatures(
                asymmetricNamespaceAccess=reg.features.asymmetricNamespaceAccess
            ),
        )

    @rpc
    def ListBlockDevices(self, request, context):
        pool_devs = {d for p in self.node.pools.live.values() for d in p.disk_devices()}
        return P.host.ListBlockDevicesResponse(devices=block_devices(request.all, pool_devs))

    @rpc
    def GetMayastorResourceUsage(self, request, context):
        r = resource.getrusage(resource.RUSAGE_SELF)
        return P.host.GetMayastorResourceUsageResponse(
            usage=P.host.ResourceUsage(
                soft_faults=r.ru_minflt,
                hard_faults=r.ru_majflt,
                swaps=r.ru_nswap,
                in_block_ops=r.ru_inblock,
                out_block_ops=r.ru_oublock,
                ipc_msg_send=r.ru_msgsnd,
                ipc_msg_rcv=r.ru_msgrcv,
                signals=r.ru_nsignals,
                vol_csw=r.ru_nvcsw,
                invol_csw=r.ru_nivcsw,
            )
        )

    @staticmethod
    def _namespace_of(ctrl) -> str | None:
        """The controller's namespace block device name in /sys/block: the per-path node
        (nvmeXcYnZ, hidden, with per-controller counters) under native multipath, else nvmeXnY."""
        for entry in sorted(os.listdir(ctrl.sysfs)):
            if re.fullmatch(r"nvme\d+(c\d+)?n\d+", entry) and os.path.isdir(os.path.join(SYS_BLOCK, entry)):
                return entry
        return None

    @rpc
    def ListNvmeControllers(self, request, context):
        out = []
        for c in nvme_fabrics.list_controllers():
            ns = self._namespace_of(c)
            size = int(_read(os.path.join(SYS_BLOCK, ns, "size"), "0")) * block.SECTOR if ns else 0
            bs = int(_read(os.path.join(SYS_BLOCK, ns, "queue", "logical_block_size"), "0")) if ns else 0
            out.append(P.host.NvmeController(name=c.name, state=CTRL_STATES.get(c.state, 3), size=size, blk_size=bs))
        return P.host.ListNvmeControllersResponse(controllers=out)

    @rpc
    def StatNvmeController(self, request, context):
        for c in nvme_fabrics.list_controllers():
            if request.name in (c.name, c.subsysnqn):
                ns = self._namespace_of(c)
                if ns is None:
                    return P.host.StatNvmeControllerResponse(stats=P.host.NvmeControllerIoStats())
                st = block.IoStats.parse(_read(os.path.join(SYS_BLOCK, ns, "stat")))
                return P.host.StatNvmeControllerResponse(
                    stats=P.host.NvmeControllerIoStats(
                        num_read_ops=st.read_ios,
                        num_write_ops=st.write_ios,
                        bytes_read=st.bytes_read,
                        bytes_written=st.bytes_written,
                        num_unmap_ops=st.discard_ios,
                        bytes_unmapped=st.discard_sectors * block.SECTOR,
                    )
                )
        raise NotFound(f"nvme controller {request.name} not found")
