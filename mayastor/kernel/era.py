"""Which blocks of a dm-era device were written since a given era (era_invalidate on a metadata
snapshot). The rebuild uses it to re-copy what changed while it copied."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from . import dm
from .dm_targets import EraStatus


def parse_invalidate(xml_text: str) -> list[tuple[int, int]]:
    """(first block, count) runs from era_invalidate XML (``<range begin end>`` is half-open)."""
    root = ET.fromstring(xml_text)
    out = []
    for el in root:
        if el.tag == "block":
            out.append((dm.xml_int_attr(el, "block", "era_invalidate"), 1))
        elif el.tag == "range":
            b, e = dm.xml_int_attr(el, "begin", "era_invalidate"), dm.xml_int_attr(el, "end", "era_invalidate")
            if e > b:
                out.append((b, e - b))
    return sorted(out)


def status(ctl: dm.DeviceMapper, name: str) -> EraStatus:
    return EraStatus.parse(ctl.status(name)[0].params)


def checkpoint(ctl: dm.DeviceMapper, name: str) -> int:
    """Start a new era (the kernel may decline when nothing was written); returns the current era."""
    ctl.message(name, "checkpoint")
    return status(ctl, name).current_era


def written_since(ctl: dm.DeviceMapper, name: str, metadata_dev: str, era: int) -> list[tuple[int, int]]:
    """Block runs written in ``era`` or later, read from a metadata snapshot of the live device."""
    res = dm.run_on_metadata_snapshot(
        ctl,
        name,
        "take_metadata_snap",
        "drop_metadata_snap",
        ["era_invalidate", "--metadata-snapshot", "--written-since", str(era), metadata_dev],
    )
    if res.returncode != 0:
        raise RuntimeError(f"era_invalidate on {metadata_dev} failed: {res.stderr.strip()}")
    return parse_invalidate(res.stdout)
