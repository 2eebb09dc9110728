"""The on-disk pool label and the pool layout it records.

Every disk of a pool starts with a label block (and keeps a backup copy in its last 4 KiB), so a
pool can be imported from its disks alone: after a lost SQLite file or on another node.

Disk layout (bytes):  [0, 1 MiB) label area | data the pool uses ... | last 4 KiB: backup label.
The pool's space is the linear concatenation of every disk's usable range; its first
``metadata_len`` bytes hold the dm-thin metadata device and the rest the data device.

Block format: magic (16 bytes) | version u32 | body length u32 | crc32 of body u32 | JSON body.
The format version lives only in the header.
"""

from __future__ import annotations

import json
import os
import struct
import uuid as _uuid
import zlib
from dataclasses import asdict, dataclass, field

MAGIC = b"MAYASTOR-KPOOL\0\0"
VERSION = 1
LABEL_BLOCK = 4096
LABEL_AREA = 1 << 20  # reserved at the start of every disk
MIN_DISK_BYTES = LABEL_AREA + 2 * 4096  # the label area and its backup: anything smaller is no disk
MiB = 1 << 20
_HEAD = struct.Struct("<16sIII")

# dm-thin metadata needs about 48 bytes per data block (Documentation/admin-guide/device-mapper/
# thin-provisioning.rst); the kernel caps the metadata device at 16 GiB.
THIN_META_BYTES_PER_BLOCK = 48
THIN_META_MIN = 2 * MiB  # lvm2's minimum too; io-engine's pool overhead is one 4 MiB cluster
THIN_META_MAX = 16 * 1024 * MiB
DEFAULT_CLUSTER = 4 * MiB


class LabelError(ValueError):
    pass


@dataclass
class DiskEntry:
    index: int
    disk_uuid: str
    size: int  # bytes of the whole disk when labelled
    start: int  # first usable byte on the disk
    length: int  # usable bytes on the disk


@dataclass
class PoolLabel:
    name: str
    pool_uuid: str
    cluster_size: int
    metadata_len: int  # bytes at the start of the concatenated space for thin metadata
    disks: list[DiskEntry]
    this_disk: int = 0  # index of the disk this copy of the label was read from
    extra: dict = field(default_factory=dict)

    @property
    def total_len(self) -> int:
        return sum(d.length for d in self.disks)

    @property
    def data_len(self) -> int:
        usable = self.total_len - self.metadata_len
        return usable - usable % self.cluster_size

    def encode(self, this_disk: int | None = None) -> bytes:
        data = asdict(self)
        if this_disk is not None:
            data["this_disk"] = this_disk
        body = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
        if _HEAD.size + len(body) > LABEL_BLOCK:
            raise LabelError(f"label too large ({len(body)} bytes): too many disks or a name too long")
        block = _HEAD.pack(MAGIC, VERSION, len(body), zlib.crc32(body)) + body
        return block.ljust(LABEL_BLOCK, b"\0")

    @classmethod
    def decode(cls, block: bytes) -> PoolLabel:
        if len(block) < _HEAD.size:
            raise LabelError("short label block")
        magic, version, length, crc = _HEAD.unpack_from(block)
        if magic != MAGIC:
            raise LabelError("no pool label (magic missing)")
        if version > VERSION:
            raise LabelError(f"label version {version} is newer than this daemon understands ({VERSION})")
        body = block[_HEAD.size : _HEAD.size + length]
        if len(body) != length or zlib.crc32(body) != crc:
            raise LabelError("pool label checksum mismatch")
        data = json.loads(body)
        disks = [DiskEntry(**d) for d in data.pop("disks")]
        return cls(disks=disks, **data)


def mappable_bytes(label: PoolLabel) -> int:
    """Data the pool's thin metadata can map at dm-thin's estimate (a pool may grow up to this)."""
    return label.metadata_len // THIN_META_BYTES_PER_BLOCK * label.cluster_size


def metadata_size(data_bytes: int, cluster_size: int, ratio: float = 1.0) -> int:
    """Thin metadata device size for a data area, rounded up to 1 MiB, within dm-thin's limits."""
    if ratio <= 0:
        raise LabelError("metadata reservation ratio must be positive")
    blocks = data_bytes // cluster_size
    want = int(blocks * THIN_META_BYTES_PER_BLOCK * ratio)
    want = -(-want // MiB) * MiB
    return min(max(want, THIN_META_MIN), THIN_META_MAX)


def check_cluster_size(cluster_size: int | None) -> int:
    """Mayastor: a multiple of 1 MiB (at least 1 MiB); anything else falls back to the 4 MiB default.
    dm-thin also needs a multiple of 64 KiB no larger than 1 GiB."""
    if cluster_size and cluster_size % MiB == 0 and MiB <= cluster_size <= 1024 * MiB:
        return cluster_size
    return DEFAULT_CLUSTER


def plan(
    name: str,
    disk_sizes: list[int],
    cluster_size: int | None = None,
    md_ratio: float = 1.0,
    pool_uuid: str | None = None,
) -> PoolLabel:
    """Lay out a new pool over disks of the given sizes (bytes)."""
    if not disk_sizes:
        raise LabelError("a pool needs at least one disk")
    cluster = check_cluster_size(cluster_size)
    disks = []
    for i, size in enumerate(disk_sizes):
        usable = size - LABEL_AREA - LABEL_BLOCK
        usable -= usable % MiB  # keep every segment 1 MiB aligned
        if usable < 2 * cluster:
            raise LabelError(f"disk {i} ({size} bytes) is too small for a pool")
        disks.append(DiskEntry(i, str(_uuid.uuid4()), size, LABEL_AREA, usable))
    meta = metadata_size(sum(d.length for d in disks), cluster, md_ratio)
    label = PoolLabel(
        name=name, pool_uuid=pool_uuid or str(_uuid.uuid4()), cluster_size=cluster, metadata_len=meta, disks=disks
    )
    if label.data_len <= 0:
        raise LabelError("no room left for data after the thin metadata")
    return label


def linear_segments(label: PoolLabel, disk_devs: list[str], start: int, length: int) -> list[tuple[int, int, str, int]]:
    """dm-linear targets (start, length, device, device offset) in 512-byte sectors that map the byte
    range [start, start+length) of the concatenated pool space onto the disks."""
    if len(disk_devs) != len(label.disks):
        raise LabelError("one device per labelled disk is needed")
    out = []
    pos = 0  # position in the concatenated space
    cursor = start
    end = start + length
    for d, dev in zip(label.disks, disk_devs):
        seg_start, seg_end = pos, pos + d.length
        lo, hi = max(cursor, seg_start), min(end, seg_end)
        if lo < hi:
            out.append(((lo - start) // 512, (hi - lo) // 512, dev, (d.start + lo - seg_start) // 512))
            cursor = hi
        pos = seg_end
    if cursor != end:
        raise LabelError("range beyond the pool's space")
    return out


# -- on-disk I/O -----------------------------------------------------------------------------------


def _pwrite_sync(dev: str, offset: int, data: bytes) -> None:
    fd = os.open(dev, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.pwrite(fd, data, offset)
        os.fsync(fd)
    finally:
        os.close(fd)


def _pread(dev: str, offset: int, length: int) -> bytes:
    fd = os.open(dev, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.pread(fd, length, offset)
    finally:
        os.close(fd)


def backup_offset(disk_size: int) -> int:
    return disk_size - LABEL_BLOCK


def write_label(dev: str, label: PoolLabel, this_disk: int, disk_size: int) -> None:
    """Write the backup copy first, then the primary, so one of them is whole after a crash."""
    block = label.encode(this_disk)
    _pwrite_sync(dev, backup_offset(disk_size), block)
    _pwrite_sync(dev, 0, block)


def read_label(dev: str, disk_size: int) -> PoolLabel | None:
    """The label of a disk: the primary copy, else the backup; None when neither has our magic."""
    errors = []
    for offset in (0, backup_offset(disk_size)):
        try:
            return PoolLabel.decode(_pread(dev, offset, LABEL_BLOCK))
        except LabelError as exc:
            errors.append(str(exc))
    if all("magic missing" in e for e in errors):
        return None
    raise LabelError(f"{dev}: damaged pool label ({'; '.join(errors)})")


def wipe_label(dev: str, disk_size: int) -> None:
    """Erase both label copies and the label area (catalog included)."""
    _pwrite_sync(dev, backup_offset(disk_size), bytes(LABEL_BLOCK))
    _pwrite_sync(dev, 0, bytes(LABEL_AREA))
