"""Which parts of a thin volume hold data: its mapping read from the pool's metadata snapshot.

A rebuild copies only these ranges. The map comes from a userspace-readable copy of the live
metadata (``reserve_metadata_snap``), dumped by ``thin_dump --metadata-snap --dev-id``; writes that
land after the snapshot are caught by the rebuild's own write tracking, not by this map."""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET

from ..kernel import dm
from ..kernel.block import SECTOR

_SNAP_LOCK = threading.Lock()  # one metadata snapshot per pool at a time; one lock keeps it simple


def parse_thin_dump(xml_text: str, dev_id: int) -> tuple[int, list[tuple[int, int]]]:
    """(data block size in bytes, merged (offset, length) byte extents of ``dev_id``) from thin_dump XML."""
    root = ET.fromstring(xml_text)
    if root.tag != "superblock":
        raise ValueError("thin_dump output has no superblock element")
    block = int(root.get("data_block_size", "0")) * SECTOR
    if block <= 0:
        raise ValueError("thin_dump output has no data_block_size")
    blocks: list[tuple[int, int]] = []
    for dev in root.iter("device"):
        if int(dev.get("dev_id", "-1")) != dev_id:
            continue
        for m in dev:
            if m.tag == "range_mapping":
                blocks.append(
                    (dm.xml_int_attr(m, "origin_begin", "thin_dump"), dm.xml_int_attr(m, "length", "thin_dump"))
                )
            elif m.tag == "single_mapping":
                blocks.append((dm.xml_int_attr(m, "origin_block", "thin_dump"), 1))
    return block, [(b * block, n * block) for b, n in merge_extents(blocks)]


def merge_extents(extents: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sort (start, length) extents and join touching or overlapping ones."""
    out: list[list[int]] = []
    for start, length in sorted(e for e in extents if e[1] > 0):
        if out and start <= out[-1][0] + out[-1][1]:
            out[-1][1] = max(out[-1][1], start + length - out[-1][0])
        else:
            out.append([start, length])
    return [(s, n) for s, n in out]


def clip_extents(extents: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    """Extents cut at ``size`` (a thin device may map blocks past a shrunken table end)."""
    return [(s, min(n, size - s)) for s, n in extents if s < size]


def mapped_extents(
    ctl: dm.DeviceMapper, pool_name: str, meta_devnode: str, thin_id: int, size: int
) -> list[tuple[int, int]]:
    """Byte extents of thin device ``thin_id`` that hold data, read from a metadata snapshot."""
    with _SNAP_LOCK:
        return _mapped_extents(ctl, pool_name, meta_devnode, thin_id, size)


def _mapped_extents(
    ctl: dm.DeviceMapper, pool_name: str, meta_devnode: str, thin_id: int, size: int
) -> list[tuple[int, int]]:
    res = dm.run_on_metadata_snapshot(
        ctl,
        pool_name,
        "reserve_metadata_snap",
        "release_metadata_snap",
        ["thin_dump", "--metadata-snap", "--dev-id", str(thin_id), meta_devnode],
    )
    if res.returncode != 0:
        raise RuntimeError(f"thin_dump of {meta_devnode} failed: {res.stderr.strip()}")
    _, extents = parse_thin_dump(res.stdout, thin_id)
    return clip_extents(extents, size)
