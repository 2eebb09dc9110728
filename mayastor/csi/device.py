"""A volume's block device on this node: attach it (kernel NVMe-oF host), find it, detach it."""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
import uuid as _uuid
from dataclasses import dataclass

from ..errors import FailedPrecondition, Internal, NotFound
from ..kernel import block, nvme_fabrics
from ..kernel.errors import KernelError
from .requests import VolumeUri, subsystem_nqn, volume_of_nqn

log = logging.getLogger("mayastor.csi")
_UUID_NQN = nvme_fabrics.UUID_NQN_PREFIX


@dataclass(frozen=True)
class Tuning:
    """Connect options from the plugin's flags; a URI's own values win."""

    nr_io_queues: int | None = None
    ctrl_loss_tmo: int | None = None
    keep_alive_tmo: int | None = None
    io_timeout_ms: int | None = None  # per-device /sys/block/<dev>/queue/io_timeout


@dataclass(frozen=True)
class Device:
    path: str  # /dev/nvme0n1
    name: str  # nvme0n1

    @property
    def devnum(self) -> tuple[int, int]:
        return block.devnum(self.name)

    @property
    def size(self) -> int:
        return block.size_bytes(self.name)


def _host_identity(hostnqn: str) -> tuple[str, str]:
    if not hostnqn:
        ident = nvme_fabrics.HostIdentity.load_or_create()
        return ident.hostnqn, ident.hostid
    if hostnqn.startswith(_UUID_NQN):
        try:
            return hostnqn, str(_uuid.UUID(hostnqn[len(_UUID_NQN) :]))
        except ValueError:
            pass
    return hostnqn, str(_uuid.uuid5(_uuid.NAMESPACE_URL, hostnqn))  # stable per host NQN


def _live_controllers(uri: VolumeUri) -> list[nvme_fabrics.Controller]:
    out = []
    for c in nvme_fabrics.find_controllers(uri.nqn, uri.host, str(uri.port)):
        try:
            if c.state not in ("deleting", "deleting (no IO)", "dead"):
                out.append(c)
        except FileNotFoundError:
            continue
    return out


def attach(uri: VolumeUri, tuning: Tuning, timeout: float = 30.0) -> tuple[Device, bool]:
    """The volume's device, connecting when no controller to it exists; (device, newly connected)."""
    if uri.scheme == "file":
        try:
            st = os.stat(uri.device)
        except FileNotFoundError:
            raise NotFound(f"volume device {uri.device} does not exist on this node") from None
        if not stat.S_ISBLK(st.st_mode):
            raise FailedPrecondition(f"{uri.device} is not a block device")
        real = os.path.realpath(uri.device)
        return Device(real, os.path.basename(real)), False
    created = False
    if not _live_controllers(uri):
        hostnqn, hostid = _host_identity(uri.hostnqn)
        opts = nvme_fabrics.ConnectOptions(
            uri.nqn,
            uri.host,
            uri.port,
            hostnqn=hostnqn,
            hostid=hostid,
            nr_io_queues=uri.options.get("nr_io_queues", tuning.nr_io_queues),
            ctrl_loss_tmo=uri.options.get("ctrl_loss_tmo", tuning.ctrl_loss_tmo),
            keep_alive_tmo=uri.options.get("keep_alive_tmo", tuning.keep_alive_tmo),
            reconnect_delay=uri.options.get("reconnect_delay"),
        )
        try:
            nvme_fabrics.connect(opts)
            created = True
        except nvme_fabrics.AlreadyConnectedError:
            pass  # a concurrent attach won the race: use its controller
        except KernelError as exc:
            raise _connect_error(uri, exc) from None
    try:
        ns = nvme_fabrics.wait_for_subsystem_namespace(uri.nqn, timeout)
    except KernelError as exc:
        if created:
            detach_nqn(uri.nqn)
        raise Internal(f"attached {uri.nqn} but no namespace appeared: {exc}") from None
    dev = Device(ns.path, ns.name)
    if tuning.io_timeout_ms:
        _set_io_timeout(dev, tuning.io_timeout_ms)
    return dev, created


def _connect_error(uri: VolumeUri, exc: KernelError) -> Exception:
    where = f"{uri.nqn} at {uri.host}:{uri.port}"
    reason = exc.reason or exc.strerror
    if exc.errno == errno.ECONNREFUSED:
        return NotFound(f"volume {where} is not reachable (connection refused): {reason}")
    if exc.errno in (errno.EINVAL, errno.EIO) and "subsys" in (exc.reason or "").lower():
        return NotFound(f"volume {where} is not published there: {reason}")
    return Internal(f"attaching {where}: {exc}")


def _set_io_timeout(dev: Device, ms: int) -> None:
    try:
        with open(f"/sys/block/{dev.name}/queue/io_timeout", "w") as f:
            f.write(str(ms))
    except OSError as exc:
        log.warning("cannot set io_timeout of %s: %s", dev.name, exc)


def find(volume: str) -> Device | None:
    """The attached NVMe-oF device of ``volume``, if any."""
    found = nvme_fabrics.namespaces_of(subsystem_nqn(volume))
    if not found:
        return None
    ns = min(found, key=lambda n: n.nsid)
    return Device(ns.path, ns.name)


def volume_of(dev_name: str) -> str | None:
    """Which volume a block device belongs to (None: not one of our NVMe-oF volumes)."""
    nqn = nvme_fabrics.subsysnqn_of(dev_name)
    return volume_of_nqn(nqn) if nqn else None


def by_devnum(devnum: tuple[int, int]) -> Device | None:
    link = f"/sys/dev/block/{devnum[0]}:{devnum[1]}"
    if not os.path.exists(link):
        return None
    name = os.path.basename(os.path.realpath(link))
    return Device(f"/dev/{name}", name)


def detach_nqn(nqn: str) -> list[str]:
    gone = []
    for c in nvme_fabrics.find_controllers(nqn):
        nvme_fabrics.disconnect(c)
        gone.append(c.name)
    return gone


def detach(volume: str) -> list[str]:
    """Disconnect every controller of the volume's subsystem (idempotent)."""
    return detach_nqn(subsystem_nqn(volume))


def grow_to(volume: str, dev: Device, required: int, timeout: float = 15.0) -> int:
    """Rescan the volume's controllers until the device is at least ``required`` bytes."""
    deadline = time.monotonic() + timeout
    while True:
        size = dev.size
        if size >= required:
            return size
        for c in nvme_fabrics.find_controllers(subsystem_nqn(volume)):
            nvme_fabrics.rescan(c)
        if time.monotonic() > deadline:
            raise FailedPrecondition(f"volume {volume} is {size} bytes, {required} asked: resize the nexus first")
        time.sleep(0.2)
