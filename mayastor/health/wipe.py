"""WipeReplica (TestRpc): wipe or checksum a replica in chunks, reporting after every chunk.

The chunk plan and its limits follow io-engine's wiper: chunk_size 0 means the whole replica in
one chunk; it must not exceed the replica, must be a multiple of the block size, and the number
of chunks must stay below 1024 (one stream message each). CHECKSUM does not write: it is one
CRC-32C over the whole replica, reported running after each chunk and finalized with the last."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from .._native._buffer import AlignedBuffer
from .._native.scan import CRC32C_INITIAL, CRC32C_XOR, crc32c_range
from ..errors import InvalidArgument
from ..kernel import block

NONE, WRITE_ZEROES, UNMAP, WRITE_PATTERN, CHECKSUM = 0, 1, 2, 3, 4
METHOD_NAMES = {
    NONE: "NONE",
    WRITE_ZEROES: "WRITE_ZEROES",
    UNMAP: "UNMAP",
    WRITE_PATTERN: "WRITE_PATTERN",
    CHECKSUM: "CHECKSUM",
}
SUPPORTED = (NONE, WRITE_ZEROES, UNMAP, CHECKSUM)
CRC32C = 0  # WipeOptions.CheckSumAlgorithm
MAX_CHUNKS = 1024
MAX_IO = 8 << 20  # one kernel call at most; the stream is checked for a cancelled client between them


@dataclass
class WipeProgress:
    uuid: str
    total_bytes: int
    chunk_size: int
    last_chunk_size: int
    total_chunks: int
    wiped_bytes: int = 0
    wiped_chunks: int = 0
    since: float | None = None  # seconds since the first chunk started
    crc32: int | None = None
    started: float = field(default=0.0, repr=False)

    @property
    def remaining_bytes(self) -> int:
        return self.total_bytes - self.wiped_bytes


def plan(uuid: str, total: int, chunk_size: int, block_size: int) -> WipeProgress:
    """Validate the chunking and describe it (nothing wiped yet)."""
    if total <= 0:
        raise InvalidArgument("The replica seems to have no size!")
    chunk = chunk_size or total
    if chunk > total:
        raise InvalidArgument("The chunk_size is larger than the replica")
    rem = total % chunk
    if chunk % block_size or rem % block_size:
        raise InvalidArgument(f"The chunk_size is not a multiple of the replica's block size ({block_size})")
    chunks = total // chunk + (1 if rem else 0)
    if chunks >= MAX_CHUNKS:
        raise InvalidArgument("Too many notifications, try increasing the chunk_size")
    return WipeProgress(uuid, total, chunk, rem or chunk, chunks)


def plan_device(uuid: str, device: str, chunk_size: int) -> WipeProgress:
    return plan(uuid, block.size_bytes(device), chunk_size, block.logical_block_size(device))


def check_method(method: int, cksum_alg: int = CRC32C) -> int:
    if method not in METHOD_NAMES:
        raise InvalidArgument("Invalid Wipe Method")
    if method not in SUPPORTED:
        raise InvalidArgument(f"Wipe Method {METHOD_NAMES[method]} not implemented")
    if method == CHECKSUM and cksum_alg != CRC32C:
        raise InvalidArgument(f"checksum algorithm {cksum_alg} not implemented (Crc32c only)")
    return method


def chunks(p: WipeProgress) -> Iterator[tuple[int, int]]:
    for i in range(p.total_chunks):
        yield i * p.chunk_size, p.last_chunk_size if i == p.total_chunks - 1 else p.chunk_size


def run(device: str, method: int, p: WipeProgress, cancelled: Callable[[], bool]) -> Iterator[WipeProgress]:
    """Yield ``p`` before the first chunk and after every chunk. Stops (returns) when cancelled."""
    yield p
    p.started = time.monotonic()
    crc = CRC32C_INITIAL
    fd, buf = -1, None
    if method == CHECKSUM:
        fd = os.open(device, os.O_RDONLY | os.O_DIRECT | os.O_CLOEXEC)
        buf = AlignedBuffer(1 << 20)
    try:
        for off, n in chunks(p):
            pos = off
            while pos < off + n:
                step = min(MAX_IO, off + n - pos)
                if method == WRITE_ZEROES:
                    block.zero_out(device, pos, step)
                elif method == UNMAP:
                    block.discard(device, pos, step)
                elif method == CHECKSUM:
                    crc = crc32c_range(fd, pos, step, buf, crc)
                pos += step
                if cancelled():
                    return
            p.wiped_bytes += n
            p.wiped_chunks += 1
            p.since = time.monotonic() - p.started
            if method == CHECKSUM:
                p.crc32 = crc ^ CRC32C_XOR if p.wiped_chunks == p.total_chunks else crc
            yield p
    finally:
        if fd >= 0:
            os.close(fd)
