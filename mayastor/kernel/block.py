"""Block devices through sysfs: size, logical block size, I/O counters, holders, device nodes."""

from __future__ import annotations

import fcntl
import mmap
import os
import stat
import struct
from dataclasses import dataclass

SYS_BLOCK = "/sys/class/block"
SECTOR = 512  # the kernel's sector: sysfs sizes, I/O counters and dm tables count in it


def name_of(path: str) -> str:
    """Kernel name (``dm-3``, ``nvme0n1``, ``loop1``) of a block device node or a bare name."""
    if "/" not in path:
        if os.path.isdir(os.path.join(SYS_BLOCK, path)):
            return path
        raise FileNotFoundError(f"no block device named {path!r}")
    st = os.stat(path)
    if not stat.S_ISBLK(st.st_mode):
        raise NotADirectoryError(f"{path} is not a block device")
    link = f"/sys/dev/block/{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    return os.path.basename(os.path.realpath(link))


def _read(name: str, attr: str) -> str:
    with open(os.path.join(SYS_BLOCK, name, attr)) as f:
        return f.read().strip()


def size_bytes(dev: str) -> int:
    return int(_read(name_of(dev), "size")) * SECTOR


def logical_block_size(dev: str) -> int:
    name = name_of(dev)
    return int(_read(name, "queue/logical_block_size"))


def physical_block_size(dev: str) -> int:
    return int(_read(name_of(dev), "queue/physical_block_size"))


def devnum(dev: str) -> tuple[int, int]:
    major, minor = _read(name_of(dev), "dev").split(":")
    return int(major), int(minor)


def holders(dev: str) -> list[str]:
    return sorted(os.listdir(os.path.join(SYS_BLOCK, name_of(dev), "holders")))


def slaves(dev: str) -> list[str]:
    return sorted(os.listdir(os.path.join(SYS_BLOCK, name_of(dev), "slaves")))


def devnode(name: str) -> str:
    """/dev/<name>, created with mknod when devtmpfs lacks it (no udev in the VM)."""
    path = f"/dev/{name}"
    if not os.path.exists(path):
        major, minor = _read(name, "dev").split(":")
        os.mknod(path, 0o600 | stat.S_IFBLK, os.makedev(int(major), int(minor)))
    return path


@dataclass(frozen=True)
class IoStats:
    """Counters of /sys/block/<dev>/stat (Documentation/block/stat.rst); sectors are 512 bytes."""

    read_ios: int
    read_merges: int
    read_sectors: int
    read_ticks_ms: int
    write_ios: int
    write_merges: int
    write_sectors: int
    write_ticks_ms: int
    in_flight: int
    io_ticks_ms: int
    time_in_queue_ms: int
    discard_ios: int = 0
    discard_merges: int = 0
    discard_sectors: int = 0
    discard_ticks_ms: int = 0
    flush_ios: int = 0
    flush_ticks_ms: int = 0

    @classmethod
    def parse(cls, text: str) -> IoStats:
        vals = [int(x) for x in text.split()]
        if len(vals) < 11:
            raise ValueError(f"block stat line has {len(vals)} fields, expected at least 11")
        return cls(*vals[:17])

    @property
    def bytes_read(self) -> int:
        return self.read_sectors * SECTOR

    @property
    def bytes_written(self) -> int:
        return self.write_sectors * SECTOR


def io_stats(dev: str) -> IoStats:
    return IoStats.parse(_read(name_of(dev), "stat"))


def parse_diskstats(text: str) -> dict[str, IoStats]:
    """/proc/diskstats: ``major minor name`` followed by the same counters as the stat file."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 14:
            out[parts[2]] = IoStats.parse(" ".join(parts[3:]))
    return out


BLKDISCARD = 0x1277  # _IO(0x12, 119): u64 range[2] = {start, length} in bytes
BLKZEROOUT = 0x127F  # _IO(0x12, 127): same argument; the kernel writes zeroes (offloaded where it can)


def discard_max_bytes(dev: str) -> int:
    """0 when the device cannot discard."""
    try:
        return int(_read(name_of(dev), "queue/discard_max_bytes"))
    except (OSError, ValueError):
        return 0


def _range_ioctl(dev: str, request: int, start: int, length: int) -> None:
    """BLKDISCARD/BLKZEROOUT: both take u64 {start, length} in bytes on a writable fd."""
    fd = os.open(dev, os.O_WRONLY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, request, struct.pack("QQ", start, length))
    finally:
        os.close(fd)


def discard(dev: str, start: int, length: int) -> None:
    """Discard (unmap) a byte range; on a dm-thin volume the range then reads as zeros."""
    _range_ioctl(dev, BLKDISCARD, start, length)


def zero_out(dev: str, start: int, length: int) -> None:
    """Make a byte range read as zeros (BLKZEROOUT: write-zeroes offload or zero pages)."""
    _range_ioctl(dev, BLKZEROOUT, start, length)


DIRECT_ALIGN = (
    512  # O_DIRECT wants offset and length aligned to the logical block size (the kernel checks the real one)
)


def read_direct(dev: str, offset: int, length: int) -> bytes:
    """Read what the device holds, not the page cache: md writes its superblocks with bios of
    its own, so a page cached by an earlier buffered read or write can be stale."""
    if offset % DIRECT_ALIGN or length % DIRECT_ALIGN or length <= 0:
        raise ValueError(f"direct read of {length} bytes at {offset}: not {DIRECT_ALIGN}-byte aligned")
    buf = mmap.mmap(-1, length)  # page aligned
    try:
        fd = os.open(dev, os.O_RDONLY | os.O_DIRECT | os.O_CLOEXEC)
        try:
            got = os.preadv(fd, [buf], offset)
        finally:
            os.close(fd)
        return bytes(buf[:got])
    finally:
        buf.close()


def write_direct(dev: str, offset: int, data: bytes) -> None:
    """Write through to the device (O_DIRECT, then fsync), leaving no page cached that a later
    read could take for what the device holds."""
    if offset % DIRECT_ALIGN or len(data) % DIRECT_ALIGN or not data:
        raise ValueError(f"direct write of {len(data)} bytes at {offset}: not {DIRECT_ALIGN}-byte aligned")
    buf = mmap.mmap(-1, len(data))
    try:
        buf.write(data)
        fd = os.open(dev, os.O_WRONLY | os.O_DIRECT | os.O_CLOEXEC)
        try:
            if os.pwritev(fd, [buf], offset) != len(data):
                raise OSError(f"short direct write to {dev}")
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        buf.close()
