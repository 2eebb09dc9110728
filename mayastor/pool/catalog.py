"""The replica catalog: what a pool holds, stored inside the pool's own label area.

Mayastor keeps replica properties as blobstore xattrs, so an imported pool brings its replicas
along. dm-thin stores no names or sizes, so we keep a small catalog on the first disk of the pool,
in the label area that dm never maps: two slots written alternately, each with a generation and a
checksum; the newest valid slot wins. The generation is also set as the thin-pool's transaction id,
which fences two writers of one pool (set_transaction_id is a compare-and-swap).
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field

from .label import LABEL_AREA, _pread, _pwrite_sync

MAGIC = b"MAYASTOR-CATALOG"
SLOT_SIZE = 256 << 10
SLOTS = (64 << 10, (64 << 10) + SLOT_SIZE)
_HEAD = struct.Struct("<16sQII")  # magic, generation, compressed length, crc32
assert SLOTS[-1] + SLOT_SIZE <= LABEL_AREA


class CatalogError(ValueError):
    pass


@dataclass
class Catalog:
    generation: int = 0
    replicas: list[dict] = field(default_factory=list)  # one dict per thin device (replica/snapshot/clone)

    def encode(self) -> bytes:
        body = zlib.compress(json.dumps({"replicas": self.replicas}, sort_keys=True).encode())
        if _HEAD.size + len(body) > SLOT_SIZE:
            raise CatalogError(f"catalog of {len(self.replicas)} replicas does not fit its {SLOT_SIZE} byte slot")
        block = _HEAD.pack(MAGIC, self.generation, len(body), zlib.crc32(body)) + body
        return block.ljust(-(-len(block) // 4096) * 4096, b"\0")

    @classmethod
    def decode(cls, raw: bytes) -> Catalog | None:
        magic, gen, length, crc = _HEAD.unpack_from(raw)
        if magic != MAGIC:
            return None
        body = raw[_HEAD.size : _HEAD.size + length]
        if len(body) != length or zlib.crc32(body) != crc:
            return None
        return cls(gen, json.loads(zlib.decompress(body))["replicas"])


def read(dev: str) -> Catalog:
    """The newest valid slot; an empty catalog (generation 0) when there is none."""
    found = [c for c in (Catalog.decode(_pread(dev, off, SLOT_SIZE)) for off in SLOTS) if c]
    return max(found, key=lambda c: c.generation) if found else Catalog()


def write(dev: str, catalog: Catalog) -> None:
    """Write generation+1 into the older slot (the newer one stays valid if this write is torn)."""
    catalog.generation += 1
    _pwrite_sync(dev, SLOTS[catalog.generation % 2], catalog.encode())
