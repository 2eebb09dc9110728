"""Per-segment digests of a device range, the unit a nexus verify compares across children.

A replica's own node computes them (JsonRpc ``replica_digests``), so a verify of a remote child
moves digests over the network, not data. Requests are bounded and aligned before any I/O."""

from __future__ import annotations

import os

from .._native._buffer import AlignedBuffer
from .._native.scan import ALGORITHMS, DEFAULT, scan_range
from ..errors import InvalidArgument

ALIGN = 512  # O_DIRECT on 512-byte logical blocks (a 4 KiB-block device refuses odd ranges itself)
MAX_SEGMENT = 64 << 20
READ = 4 << 20  # bytes per read, whatever the segment: fewer, larger reads keep a scan I/O-bound
MAX_SEGMENTS = 65536  # per request: 512 KiB of digests, well inside gRPC's message limit
DEFAULT_SEGMENT = 1 << 20
DEFAULT_ALGORITHM = DEFAULT


def _int(params: dict, key: str, default: int | None = None) -> int:
    v = params.get(key, default)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise InvalidArgument(f"{key} must be a non-negative integer")
    return v


def check_range(offset: int, length: int, segment: int, size: int, algorithm: str) -> int:
    """Validate a digest request against a device of ``size`` bytes; returns the segment count."""
    if algorithm not in ALGORITHMS:
        raise InvalidArgument(f"unknown algorithm {str(algorithm)[:40]!r} (known: {', '.join(ALGORITHMS)})")
    if not 0 < segment <= MAX_SEGMENT or segment % ALIGN or offset % ALIGN or length % ALIGN:
        raise InvalidArgument(
            f"offset, length and segment must be multiples of {ALIGN} (0 < segment <= {MAX_SEGMENT >> 20} MiB)"
        )
    if offset + length > size:
        raise InvalidArgument(f"range {offset}+{length} runs past the end of the device ({size} bytes)")
    count = -(-length // segment)
    if count > MAX_SEGMENTS:
        raise InvalidArgument(f"{count} segments asked; at most {MAX_SEGMENTS} per request")
    return count


def parse_segment(params: dict) -> tuple[int, str]:
    """(segment, algorithm) from JSON params, types checked (defaults: 1 MiB, xxh64)."""
    algorithm = params.get("algorithm", DEFAULT)
    if not isinstance(algorithm, str):
        raise InvalidArgument("algorithm must be a string")
    return _int(params, "segment", DEFAULT_SEGMENT), algorithm


def parse_request(params: dict) -> tuple[int, int, int, str]:
    """(offset, length, segment, algorithm) from JSON params, types checked."""
    return (_int(params, "offset", 0), _int(params, "length"), *parse_segment(params))


def scan(device: str, offset: int, length: int, segment: int, algorithm: str = DEFAULT) -> list[int]:
    """The digest of every ``segment`` bytes of ``device`` in [offset, offset+length), read with
    O_DIRECT (a leg's page cache may be stale: the nexus writes reach it through md)."""
    fd = os.open(device, os.O_RDONLY | os.O_DIRECT | os.O_CLOEXEC)
    try:
        raw = scan_range(fd, offset, length, segment, AlignedBuffer(READ), algorithm)
    finally:
        os.close(fd)
    return [int.from_bytes(raw[i : i + 8], "little") for i in range(0, len(raw), 8)]
