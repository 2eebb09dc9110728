"""Mounts as the kernel reports them (/proc/self/mountinfo) and the mount/umount commands.

The plugin is stateless: whether a volume is staged or published is read back from here.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

from ..errors import Internal

MOUNTINFO = "/proc/self/mountinfo"


@dataclass(frozen=True)
class Mount:
    mount_id: int
    devnum: tuple[int, int]
    root: str  # the path inside the source filesystem ("/" for a whole filesystem)
    target: str
    options: tuple[str, ...]
    fs_type: str
    source: str

    @property
    def read_only(self) -> bool:
        return "ro" in self.options


def _unescape(text: str) -> str:
    # mountinfo writes space, tab, newline and backslash as octal escapes
    out, i = [], 0
    while i < len(text):
        code = text[i + 1:i + 4]
        if text[i] == "\\" and len(code) == 3 and all(c in "01234567" for c in code):
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[Mount]:
    mounts = []
    for line in text.splitlines():
        fields = line.split(" ")
        if len(fields) < 10 or "-" not in fields[6:]:
            continue
        sep = fields.index("-", 6)
        major, minor = fields[2].split(":")
        mounts.append(Mount(int(fields[0]), (int(major), int(minor)), _unescape(fields[3]), _unescape(fields[4]),
                            tuple(fields[5].split(",")), fields[sep + 1], _unescape(fields[sep + 2])))
    return mounts


def read() -> list[Mount]:
    with open(MOUNTINFO) as f:
        return parse_mountinfo(f.read())


def at(path: str, mounts: list[Mount] | None = None) -> Mount | None:
    """The mount visible at ``path`` (the last one stacked there), or None."""
    found = None
    for m in read() if mounts is None else mounts:
        if m.target == path:
            found = m
    return found


def of_device(devnum: tuple[int, int], dev_name: str, mounts: list[Mount] | None = None) -> list[Mount]:
    """Every mount of a volume: those of its filesystem (``devnum`` as mountinfo shows it) and bind
    mounts of its device node ``dev_name``."""
    return [m for m in (read() if mounts is None else mounts)
            if m.devnum == devnum or (dev_name and m.fs_type == "devtmpfs" and m.root == f"/{dev_name}")]


def _run(*cmd: str) -> None:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        raise Internal(f"{' '.join(cmd)}: {(res.stderr or res.stdout).strip()[-400:]} (exit {res.returncode})")


def mount(source: str, target: str, fs_type: str, options: list[str]) -> None:
    cmd = ["mount", "-t", fs_type]
    if options:
        cmd += ["-o", ",".join(options)]
    _run(*cmd, "--", source, target)


def bind(source: str, target: str, read_only: bool) -> None:
    _run("mount", "--bind", "--", source, target)
    if read_only:  # a bind mount takes "ro" only on a remount of itself
        _run("mount", "-o", "remount,bind,ro", "--", target)


def umount(target: str) -> None:
    _run("umount", "--", target)


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
