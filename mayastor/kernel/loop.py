"""Loop devices through their ioctls (/dev/loop-control, LOOP_CONFIGURE), for files used as disks."""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import time
from dataclasses import dataclass

from .errors import KernelError
from .kmsg import KmsgCursor

LOOP_SET_FD = 0x4C00
LOOP_CLR_FD = 0x4C01
LOOP_SET_STATUS64 = 0x4C04
LOOP_GET_STATUS64 = 0x4C05
LOOP_SET_CAPACITY = 0x4C07
LOOP_SET_DIRECT_IO = 0x4C08
LOOP_SET_BLOCK_SIZE = 0x4C09
LOOP_CONFIGURE = 0x4C0A
LOOP_CTL_GET_FREE = 0x4C82

LO_FLAGS_READ_ONLY = 1
LO_FLAGS_AUTOCLEAR = 4
LO_FLAGS_PARTSCAN = 8
LO_FLAGS_DIRECT_IO = 16
LO_NAME_SIZE = 64

# struct loop_info64: 5 u64, 4 u32, file_name[64], crypt_name[64], encrypt_key[32], u64 init[2]
_INFO64 = struct.Struct("<5Q4I64s64s32s2Q")
# struct loop_config: u32 fd, u32 block_size, loop_info64, u64 reserved[8]
_CONFIG = struct.Struct(f"<II{_INFO64.size}s64s")


class LoopError(KernelError):
    pass


@dataclass(frozen=True)
class LoopDevice:
    index: int

    @property
    def path(self) -> str:
        return f"/dev/loop{self.index}"

    @property
    def name(self) -> str:
        return f"loop{self.index}"

    @property
    def backing_file(self) -> str | None:
        try:
            with open(f"/sys/block/{self.name}/loop/backing_file") as f:
                return f.read().strip()
        except FileNotFoundError:
            return None


def _ioctl(fd: int, req: int, arg, what: str, target: str):
    cursor = KmsgCursor()
    try:
        return fcntl.ioctl(fd, req, arg)
    except OSError as exc:
        raise LoopError(exc.errno or errno.EIO, what, cursor.reason("loop"), target) from None
    finally:
        cursor.close()


def _ensure_node(index: int) -> str:
    path = f"/dev/loop{index}"
    if not os.path.exists(path):
        os.mknod(path, 0o660 | 0o060000, os.makedev(7, index))
    return path


def attach(
    path: str, read_only: bool = False, direct_io: bool = False, block_size: int = 0, tag: str = ""
) -> LoopDevice:
    """Attach a file to a free loop device. ``tag`` goes into lo_file_name (shown by LOOP_GET_STATUS)."""
    flags = os.O_RDONLY if read_only else os.O_RDWR
    if direct_io:
        flags |= os.O_DIRECT
    backing = os.open(path, flags | os.O_CLOEXEC)
    try:
        ctl = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
        try:
            for _ in range(16):  # another attacher may take the free index first
                index = _ioctl(ctl, LOOP_CTL_GET_FREE, 0, "loop get free", "/dev/loop-control")
                dev = os.open(_ensure_node(index), os.O_RDWR | os.O_CLOEXEC)
                try:
                    lo_flags = (LO_FLAGS_READ_ONLY if read_only else 0) | (LO_FLAGS_DIRECT_IO if direct_io else 0)
                    name = (tag or path).encode()[: LO_NAME_SIZE - 1]
                    info = _INFO64.pack(0, 0, 0, 0, 0, 0, 0, 0, lo_flags, name, b"", b"", 0, 0)
                    cfg = _CONFIG.pack(backing, block_size, info, b"")
                    try:
                        _ioctl(dev, LOOP_CONFIGURE, cfg, "loop configure", path)
                    except LoopError as exc:
                        if exc.errno == errno.EBUSY:
                            continue
                        raise
                    return LoopDevice(index)
                finally:
                    os.close(dev)
            raise LoopError(errno.EBUSY, "loop attach", "no free loop device could be claimed", path)
        finally:
            os.close(ctl)
    finally:
        os.close(backing)


def detach(device: LoopDevice | str, wait: float = 5.0) -> None:
    """Detach and wait (up to ``wait`` s) until the kernel has really let go of the file.

    LOOP_CLR_FD only marks the device autoclear while anyone else holds it open (udev's probe
    right after an attach, a reader); the file stays attached until that last close. Callers
    (export, destroy) promise the file is free when they return, so wait for it."""
    path = device.path if isinstance(device, LoopDevice) else device
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    try:
        try:
            _ioctl(fd, LOOP_CLR_FD, 0, "loop detach", path)
        except LoopError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: not attached
                raise
    finally:
        os.close(fd)
    backing = f"/sys/block/{os.path.basename(path)}/loop/backing_file"
    deadline = time.monotonic() + wait
    while os.path.exists(backing) and time.monotonic() < deadline:
        time.sleep(0.02)


def set_capacity(device: LoopDevice) -> None:
    """Re-read the backing file size after it grew."""
    fd = os.open(device.path, os.O_RDWR | os.O_CLOEXEC)
    try:
        _ioctl(fd, LOOP_SET_CAPACITY, 0, "loop set capacity", device.path)
    finally:
        os.close(fd)


def status(device: LoopDevice) -> dict:
    fd = os.open(device.path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        buf = bytearray(_INFO64.size)
        _ioctl(fd, LOOP_GET_STATUS64, buf, "loop status", device.path)
    finally:
        os.close(fd)
    f = _INFO64.unpack(bytes(buf))
    return {
        "offset": f[3],
        "sizelimit": f[4],
        "number": f[5],
        "flags": f[8],
        "file_name": f[9].split(b"\0", 1)[0].decode("utf-8", "replace"),
    }


def list_attached() -> list[LoopDevice]:
    out = []
    for name in os.listdir("/sys/block"):
        if name.startswith("loop") and os.path.exists(f"/sys/block/{name}/loop/backing_file"):
            out.append(LoopDevice(int(name[4:])))
    return sorted(out, key=lambda d: d.index)


def find_by_file(path: str) -> list[LoopDevice]:
    real = os.path.realpath(path)
    return [d for d in list_attached() if d.backing_file == real]
