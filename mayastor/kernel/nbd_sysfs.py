"""nbd devices as sysfs shows them (no netlink, so no pyroute2: cheap to import): which are
connected and to which backend."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .nbd_proto import ExportInfo

SYS_BLOCK = "/sys/block"


@dataclass(frozen=True)
class NbdDevice:
    index: int
    export: ExportInfo | None = None

    @property
    def name(self) -> str:
        return f"nbd{self.index}"

    @property
    def path(self) -> str:
        return f"/dev/nbd{self.index}"

    def backend(self) -> str | None:
        try:
            with open(f"{SYS_BLOCK}/{self.name}/backend") as f:
                return f.read().strip()
        except FileNotFoundError:
            return None


def is_connected(index: int) -> bool:
    # pid file exists while a socket is configured (ioctl or netlink)
    return os.path.exists(f"{SYS_BLOCK}/nbd{index}/pid")


def connected_to(backend: str) -> NbdDevice | None:
    """The connected device whose backend identifier is ``backend``, if any."""
    names = os.listdir(SYS_BLOCK) if os.path.isdir(SYS_BLOCK) else []
    for name in sorted(names):
        if name.startswith("nbd") and name[3:].isdigit():
            dev = NbdDevice(int(name[3:]))
            if is_connected(dev.index) and dev.backend() == backend:
                return dev
    return None
