"""RAM disks, io-engine's ``malloc:///<name>?size_mb=N`` (or ``num_blocks=N``, ``blk_size=512|4096``):
a file on a tmpfs behind a loop device — brd cannot add disks once loaded, and a tmpfs file gives
its memory back when it is removed. Nexus children and pool disks keep separate name spaces, so a
child can never open a pool's disk.

The URI rules live here once; the child and pool-disk parsers call ``check``."""

from __future__ import annotations

import os
import re
import subprocess

from .kernel import block, loop

MALLOC_DIR = "/run/mayastor/malloc"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
SIZE_MB_MAX = 1 << 20  # 1 TiB
NUM_BLOCKS_MAX = 1 << 40
BLOCK_SIZES = ("512", "4096")


def _positive(key: str, value: str, limit: int) -> int:
    if not value.isdigit() or not 0 < int(value) <= limit:
        raise ValueError(f"{key} must be a positive integer up to {limit}")
    return int(value)


def check(name: str, params: dict[str, str]) -> tuple[int, int]:
    """(size in bytes, block size or 0) of a RAM disk URI's name and query; ValueError says why not."""
    if not NAME.fullmatch(name):
        raise ValueError("malloc name must be 1-128 of [A-Za-z0-9_.-], starting with a letter or digit")
    if ("size_mb" in params) == ("num_blocks" in params):
        raise ValueError("malloc needs exactly one of size_mb or num_blocks")
    blk = params.get("blk_size") or ""
    if blk and blk not in BLOCK_SIZES:
        raise ValueError("blk_size must be 512 or 4096")
    if "size_mb" in params:
        return _positive("size_mb", params["size_mb"], SIZE_MB_MAX) << 20, int(blk or 0)
    return _positive("num_blocks", params["num_blocks"], NUM_BLOCKS_MAX) * int(blk or 512), int(blk or 0)


def ensure_tmpfs(path: str = MALLOC_DIR) -> None:
    """Mount a tmpfs at ``path`` unless one is there: RAM disks must never land on a disk."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    with open("/proc/mounts") as f:
        mounts = [line.split()[1:3] for line in f]
    best = max(
        (m for m in mounts if path == m[0] or path.startswith(m[0].rstrip("/") + "/")),
        key=lambda m: len(m[0]),
        default=("/", "?"),
    )
    if best[1] != "tmpfs":
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0700", "mayastor-malloc", path], check=True)


POOL_SCOPE = "pools/{node}"  # pool disks in a sub-directory: no child name can reach them


class RamDisk:
    """One RAM disk: the file ``<scope>-<name>`` in the tmpfs. Scope: the node for nexus children,
    ``POOL_SCOPE`` for pool disks."""

    def __init__(self, scope: str, name: str, size: int = 0, blk_size: int = 0):
        self.file = os.path.join(MALLOC_DIR, f"{scope}-{name}")
        self.size, self.blk_size = size, blk_size

    @property
    def exists(self) -> bool:
        return os.path.exists(self.file)

    def open(self, loop_tag: str, create: bool = True) -> str:
        """The loop device over the file, attached if needed; the file is made only when ``create``
        (a RAM disk that is gone stays gone: its data went with it)."""
        ensure_tmpfs()
        os.makedirs(os.path.dirname(self.file), mode=0o700, exist_ok=True)
        found = [lo for lo in loop.find_by_file(self.file) if block.size_bytes(lo.path) > 0]
        if found:
            return found[0].path
        if not create and not self.exists:
            raise FileNotFoundError(self.file)
        with open(self.file, "ab") as f:
            if f.tell() == 0:
                f.truncate(self.size)
        return loop.attach(self.file, tag=loop_tag, block_size=self.blk_size).path

    def detach(self) -> None:
        for dev in loop.find_by_file(self.file):
            loop.detach(dev)

    def destroy(self) -> None:
        """Detach and give the memory back."""
        self.detach()
        try:
            os.unlink(self.file)
        except FileNotFoundError:
            pass
