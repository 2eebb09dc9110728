"""Filesystems on a volume: find what is there, make one, grow it (the distributions' tools), and
the one way the plugin runs such tools."""

from __future__ import annotations

import subprocess

from ..errors import FailedPrecondition, Internal

MKFS = {
    "ext4": ["mkfs.ext4", "-q", "-F"],
    "xfs": ["mkfs.xfs", "-q", "-f"],
    "btrfs": ["mkfs.btrfs", "-q", "-f"],
}
# options every mount of the type gets: XFS refuses two mounts of one UUID (clones, restored
# snapshots) unless told not to check
MOUNT_OPTIONS = {"xfs": ["nouuid"]}


def run_tool(cmd: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    """Run a node tool (mkfs, mount, ...); a failure is one INTERNAL error with its last words."""
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise FailedPrecondition(f"{cmd[0]} is not installed on this node") from None
    if res.returncode != 0:
        raise Internal(f"{' '.join(cmd)}: {(res.stderr or res.stdout).strip()[-400:]} (exit {res.returncode})")
    return res


def probe(device: str) -> str | None:
    """The filesystem type on ``device`` (blkid's low-level probe, no cache), None when blank."""
    res = subprocess.run(
        ["blkid", "-p", "-s", "TYPE", "-o", "value", "--", device],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if res.returncode == 2:  # nothing recognised
        return None
    if res.returncode != 0:
        raise Internal(f"blkid {device}: {res.stderr.strip()} (exit {res.returncode})")
    return res.stdout.strip() or None


def make(device: str, fs_type: str) -> None:
    run_tool([*MKFS[fs_type], "--", device])


def grow(fs_type: str, device: str, mount_point: str) -> None:
    """Grow a mounted filesystem to its device's size (online)."""
    if fs_type == "ext4":
        run_tool(["resize2fs", device])
    elif fs_type == "xfs":
        run_tool(["xfs_growfs", mount_point])
    elif fs_type == "btrfs":
        run_tool(["btrfs", "filesystem", "resize", "max", mount_point])
    else:
        raise FailedPrecondition(f"cannot grow a {fs_type} filesystem")
