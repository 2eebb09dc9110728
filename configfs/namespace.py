"""nvmet namespace: ``subsystems/<nqn>/namespaces/<nsid>``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .node import Attr, CFSNode
from .validate import check_ana_grpid, check_nguid, check_nsid, check_uuid

if TYPE_CHECKING:
    from .subsystem import Subsystem


class Namespace(CFSNode):
    device_path = Attr("device_path", str, "block device (or file) exported as this namespace")
    device_uuid = Attr("device_uuid", str, "namespace UUID; the host's wwid is derived from it")
    device_nguid = Attr("device_nguid", str, "namespace globally unique identifier")
    enabled = Attr("enable", bool, "1 opens the device and exposes the namespace")
    buffered_io = Attr("buffered_io", bool, "use the page cache (file backend only)")
    resv_enable = Attr("resv_enable", bool, "NVMe reservations on this namespace (Linux 6.13+; set while disabled)")

    def __init__(self, subsystem: Subsystem, nsid: int, mode: str = "any"):
        self.subsystem = subsystem
        self.nsid = check_nsid(nsid)
        self.path = os.path.join(subsystem.path, "namespaces", str(nsid))
        self._setup(mode)

    @property
    def ana_grpid(self) -> int:
        return int(self.read_attr("ana_grpid"))

    @ana_grpid.setter
    def ana_grpid(self, grpid: int) -> None:
        self.write_attr("ana_grpid", str(check_ana_grpid(grpid)))

    def set_device(self, path: str, uuid: str | None = None, nguid: str | None = None) -> None:
        """Point the (disabled) namespace at a device; uuid/nguid are validated first."""
        if not path or "\n" in path or "\0" in path or not os.path.isabs(path):
            raise ValueError(f"invalid device path {path!r}: expected an absolute path")
        uuid = check_uuid(uuid) if uuid else None
        nguid = check_nguid(nguid) if nguid else None
        self.device_path = path
        if uuid:
            self.device_uuid = uuid
        if nguid:
            self.device_nguid = nguid

    def enable(self) -> None:
        self.enabled = True

    def disable(self) -> None:
        if self.exists and self.enabled:
            self.enabled = False

    def revalidate_size(self) -> None:
        """Re-read the backing device size after it grew; the host gets a namespace-changed AEN."""
        self.write_attr("revalidate_size", "1")

    def delete(self) -> None:
        if not self.exists:
            return
        self.disable()
        self._rmdir()

    def dump(self) -> dict:
        device = {"path": self.device_path}
        for key, fname in (("uuid", "device_uuid"), ("nguid", "device_nguid")):
            if self.has_attr(fname):
                device[key] = self.read_attr(fname).strip()
        out: dict = {"nsid": self.nsid, "enable": int(self.enabled), "device": device}
        if self.has_attr("ana_grpid"):
            out["ana_grpid"] = self.ana_grpid
        if self.has_attr("buffered_io"):
            out["buffered_io"] = int(self.buffered_io)
        return out

    def restore(self, data: dict) -> None:
        device = data.get("device", {})
        if device.get("path"):
            self.device_path = device["path"]
        # A zero uuid/nguid is the kernel's "unset"; writing it back is harmless but pointless.
        if device.get("uuid") and device["uuid"] != "00000000-0000-0000-0000-000000000000":
            self.device_uuid = device["uuid"]
        if device.get("nguid") and device["nguid"] != "00000000-0000-0000-0000-000000000000":
            self.device_nguid = device["nguid"]
        if "ana_grpid" in data and self.has_attr("ana_grpid"):
            self.ana_grpid = int(data["ana_grpid"])
        if "buffered_io" in data and self.has_attr("buffered_io") and bool(data["buffered_io"]) != self.buffered_io:
            self.buffered_io = bool(data["buffered_io"])
        if data.get("enable"):
            self.enable()
