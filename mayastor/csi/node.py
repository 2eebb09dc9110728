"""CSI Node: stage (attach + mkfs + mount), publish (bind mounts), stats, expand, unpublish, unstage.

Every call is idempotent: it first reads what the kernel already has (mounts, controllers) and does
only what is missing. Calls on one volume are serialised; different volumes run in parallel.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import defaultdict

from ..errors import AlreadyExists, FailedPrecondition, NotFound
from ..grpc.status import rpc
from . import device, filesystems, mounts
from . import requests as req
from .device import Device, Tuning
from .protos import csi, csi_grpc

log = logging.getLogger("mayastor.csi")
TOPOLOGY_KEY = "openebs.io/nodename"


def _capability(request, field: str = "volume_capability", required: bool = True) -> req.Capability | None:
    return req.capability(getattr(request, field) if request.HasField(field) else None, required)


class Node(csi_grpc.NodeServicer):
    def __init__(self, node_name: str, tuning: Tuning = Tuning()):
        self.node_name = node_name
        self.tuning = tuning
        self._locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
        self._locks_guard = threading.Lock()

    def _lock(self, volume: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks[volume]

    # info -----------------------------------------------------------------------------------------
    @rpc
    def NodeGetInfo(self, request, context):
        return csi.NodeGetInfoResponse(
            node_id=self.node_name,
            max_volumes_per_node=0,
            accessible_topology=csi.Topology(segments={TOPOLOGY_KEY: self.node_name}),
        )

    @rpc
    def NodeGetCapabilities(self, request, context):
        rpc_type = csi.NodeServiceCapability.RPC
        return csi.NodeGetCapabilitiesResponse(
            capabilities=[
                csi.NodeServiceCapability(rpc=rpc_type(type=t))
                for t in (rpc_type.STAGE_UNSTAGE_VOLUME, rpc_type.GET_VOLUME_STATS, rpc_type.EXPAND_VOLUME)
            ]
        )

    # what is mounted where ------------------------------------------------------------------------
    def _mounted_volume(self, path: str) -> tuple[mounts.Mount, Device | None, str | None] | None:
        """The mount at ``path``, its block device and that device's volume id (None if unknown)."""
        m = mounts.at(path)
        if m is None:
            return None
        if m.fs_type == "devtmpfs":  # a block volume: the device node bind-mounted onto a file
            dev = device.by_devnum(_rdev(path))
        elif m.source.startswith("/dev/") and os.path.exists(m.source):
            # the source, not the mount's device number: btrfs reports an anonymous one
            dev = device.by_devnum(_rdev(m.source))
        else:
            dev = device.by_devnum(m.devnum)
        return m, dev, device.volume_of(dev.name) if dev else None

    def _own_mount(self, volume: str, path: str) -> tuple[mounts.Mount, Device | None, str | None] | None:
        """What is mounted at ``path`` (None: nothing), refused when it is another volume."""
        found = self._mounted_volume(path)
        if found is not None and found[2] not in (volume, None):
            raise FailedPrecondition(f"{path} holds volume {found[2]}, not {volume}")
        return found

    def _volume_at(self, volume: str, path: str, what: str) -> tuple[mounts.Mount, Device]:
        """The mount of ``volume`` at ``path``; NOT_FOUND when the path does not hold it."""
        if not os.path.exists(path):
            raise NotFound(f"{what} {path} does not exist")
        found = self._mounted_volume(path)
        m, dev, owner = found if found is not None else (None, None, None)
        if m is None or dev is None:
            raise NotFound(f"volume {volume} is not mounted at {path}")
        if owner is not None and owner != volume:
            raise NotFound(f"{path} holds volume {owner}, not {volume}")
        return m, dev

    # stage ----------------------------------------------------------------------------------------
    @rpc
    def NodeStageVolume(self, request, context):
        volume = req.volume_id(request.volume_id)
        staging = req.path(request.staging_target_path, "staging_target_path")
        cap = _capability(request)
        uri = req.volume_uri(request.publish_context.get("uri", ""), volume)
        with self._lock(volume):
            found = self._mounted_volume(staging)
            if found is not None:
                m, dev, owner = found
                if owner not in (volume, None):
                    raise AlreadyExists(f"{staging} already holds volume {owner}")
                if not cap.block and m.fs_type != cap.fs_type:
                    raise AlreadyExists(f"volume {volume} is staged at {staging} as {m.fs_type}, not {cap.fs_type}")
                return csi.NodeStageVolumeResponse()
            dev, created = device.attach(uri, self.tuning)
            try:
                if not cap.block:  # block volumes have nothing to stage beyond the attach
                    self._mount_filesystem(volume, dev, staging, cap)
            except Exception:
                if created:
                    device.detach(volume)
                raise
            log.info("staged volume %s: %s at %s", volume, dev.path, staging if not cap.block else "-")
            return csi.NodeStageVolumeResponse()

    def _mount_filesystem(self, volume: str, dev: Device, staging: str, cap: req.Capability) -> None:
        existing = filesystems.probe(dev.path)
        if existing is None:
            if cap.read_only:
                raise FailedPrecondition(f"volume {volume} has no filesystem and is staged read-only")
            filesystems.make(dev.path, cap.fs_type)
        elif existing != cap.fs_type:
            raise FailedPrecondition(f"volume {volume} holds {existing}, not the {cap.fs_type} asked for")
        mounts.ensure_dir(staging)
        options = [*filesystems.MOUNT_OPTIONS.get(cap.fs_type, []), *cap.mount_flags]
        if cap.read_only:
            options.append("ro")
        mounts.mount(dev.path, staging, cap.fs_type, options)

    @rpc
    def NodeUnstageVolume(self, request, context):
        volume = req.volume_id(request.volume_id)
        staging = req.path(request.staging_target_path, "staging_target_path")
        with self._lock(volume):
            found = self._own_mount(volume, staging)
            if found is not None:
                m, dev, _ = found
                self._refuse_if_published(volume, m.devnum, dev, exclude=staging)
                mounts.umount_all(staging)
            else:
                dev = device.find(volume)
                if dev is not None:
                    self._refuse_if_published(volume, dev.devnum, dev, exclude=None)
            gone = device.detach(volume)
            log.info("unstaged volume %s (disconnected %s)", volume, ", ".join(gone) or "nothing")
            return csi.NodeUnstageVolumeResponse()

    @staticmethod
    def _refuse_if_published(volume: str, devnum: tuple[int, int], dev: Device | None, exclude: str | None) -> None:
        """``devnum``: the filesystem's (what its mounts show), ``dev``: the block device."""
        still = [m.target for m in mounts.of_device(devnum, dev.name if dev else "") if m.target != exclude]
        if still:
            raise FailedPrecondition(f"volume {volume} is still published at {', '.join(still)}")

    # publish --------------------------------------------------------------------------------------
    @rpc
    def NodePublishVolume(self, request, context):
        volume = req.volume_id(request.volume_id)
        target = req.path(request.target_path, "target_path")
        staging = req.path(request.staging_target_path, "staging_target_path")
        cap = _capability(request)
        read_only = request.readonly or cap.read_only
        with self._lock(volume):
            if cap.block:
                dev = device.find(volume)
                if dev is None and "uri" in request.publish_context:
                    uri = req.volume_uri(request.publish_context["uri"], volume)
                    if uri.scheme == "file":
                        dev = device.attach(uri, self.tuning)[0]
                if dev is None:
                    raise FailedPrecondition(f"volume {volume} is not staged on this node")
                source = dev.path
            else:
                staged = self._mounted_volume(staging)
                if staged is None or staged[2] not in (volume, None):
                    raise FailedPrecondition(f"volume {volume} is not staged at {staging}")
                dev, source = staged[1], staging
            published = self._mounted_volume(target)
            if published is not None:
                m, other, owner = published
                if other is None or other.devnum != dev.devnum:
                    raise AlreadyExists(f"{target} already holds another volume ({owner or m.source})")
                if m.read_only != read_only:
                    raise AlreadyExists(
                        f"volume {volume} is published at {target} "
                        f"{'read-only' if m.read_only else 'read-write'} already"
                    )
                return csi.NodePublishVolumeResponse()
            if cap.block:
                mounts.ensure_file(target)
            else:
                mounts.ensure_dir(target)
            mounts.bind(source, target, read_only)
            log.info("published volume %s at %s%s", volume, target, " (read-only)" if read_only else "")
            return csi.NodePublishVolumeResponse()

    @rpc
    def NodeUnpublishVolume(self, request, context):
        volume = req.volume_id(request.volume_id)
        target = req.path(request.target_path, "target_path")
        with self._lock(volume):
            if self._own_mount(volume, target) is not None:
                mounts.umount_all(target)
            if os.path.isdir(target):
                os.rmdir(target)
            elif os.path.lexists(target):
                os.unlink(target)
            return csi.NodeUnpublishVolumeResponse()

    # stats and expansion --------------------------------------------------------------------------
    @rpc
    def NodeGetVolumeStats(self, request, context):
        volume = req.volume_id(request.volume_id)
        path = req.path(request.volume_path, "volume_path")
        m, dev = self._volume_at(volume, path, "volume_path")
        usage = csi.VolumeUsage
        if m.fs_type == "devtmpfs":
            return csi.NodeGetVolumeStatsResponse(usage=[usage(total=dev.size, unit=usage.BYTES)])
        st = os.statvfs(path)
        stats = [
            usage(
                total=st.f_blocks * st.f_frsize,
                available=st.f_bavail * st.f_frsize,
                used=(st.f_blocks - st.f_bfree) * st.f_frsize,
                unit=usage.BYTES,
            )
        ]
        if st.f_files:  # btrfs has no inode limit and reports none
            stats.append(
                usage(total=st.f_files, available=st.f_favail, used=st.f_files - st.f_ffree, unit=usage.INODES)
            )
        return csi.NodeGetVolumeStatsResponse(usage=stats)

    @rpc
    def NodeExpandVolume(self, request, context):
        volume = req.volume_id(request.volume_id)
        path = req.path(request.volume_path, "volume_path")
        cap = _capability(request, required=False)
        required = request.capacity_range.required_bytes if request.HasField("capacity_range") else 0
        with self._lock(volume):
            m, dev = self._volume_at(volume, path, "volume_path")
            size = device.grow_to(volume, dev, required) if required else dev.size
            if m.fs_type != "devtmpfs" and not (cap and cap.block):
                filesystems.grow(m.fs_type, dev.path, path)
            log.info("expanded volume %s to %d bytes", volume, size)
            return csi.NodeExpandVolumeResponse(capacity_bytes=size)


def _rdev(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return os.major(st.st_rdev), os.minor(st.st_rdev)
