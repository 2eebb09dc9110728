"""The plugin's mounts: what the kernel shows (kernel/mountinfo.py) and the mount/umount commands.

The plugin is stateless: whether a volume is staged or published is read back from here.
"""

from __future__ import annotations

import os

from ..kernel.mountinfo import Mount, at, parse_mountinfo, read  # noqa: F401  (the plugin's view of mounts)
from .filesystems import run_tool


def of_device(devnum: tuple[int, int], dev_name: str, mounts: list[Mount] | None = None) -> list[Mount]:
    """Every mount of a volume: those of its filesystem (``devnum`` as mountinfo shows it) and bind
    mounts of its device node ``dev_name``."""
    return [
        m
        for m in (read() if mounts is None else mounts)
        if m.devnum == devnum or (dev_name and m.fs_type == "devtmpfs" and m.root == f"/{dev_name}")
    ]


def mount(source: str, target: str, fs_type: str, options: list[str]) -> None:
    cmd = ["mount", "-t", fs_type]
    if options:
        cmd += ["-o", ",".join(options)]
    run_tool([*cmd, "--", source, target], timeout=120)


def bind(source: str, target: str, read_only: bool) -> None:
    run_tool(["mount", "--bind", "--", source, target], timeout=120)
    if read_only:  # a bind mount takes "ro" only on a remount of itself
        run_tool(["mount", "-o", "remount,bind,ro", "--", target], timeout=120)


def umount(target: str) -> None:
    run_tool(["umount", "--", target], timeout=120)


def umount_all(target: str) -> None:
    """Unmount everything stacked on ``target``."""
    while at(target) is not None:
        umount(target)


def ensure_dir(path: str) -> None:
    os.makedirs(path, exist_ok=True)


def ensure_file(path: str) -> None:
    """A block volume's publish target is a file the device node is bind-mounted onto."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if not os.path.exists(path):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o660))
