"""Mounts as the kernel reports them: /proc/self/mountinfo, parsed once for every user."""

from __future__ import annotations

from dataclasses import dataclass

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
        code = text[i + 1 : i + 4]
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
        mounts.append(
            Mount(
                int(fields[0]),
                (int(major), int(minor)),
                _unescape(fields[3]),
                _unescape(fields[4]),
                tuple(fields[5].split(",")),
                fields[sep + 1],
                _unescape(fields[sep + 2]),
            )
        )
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


def filesystem_of(path: str, mounts: list[Mount] | None = None) -> str:
    """The type of the filesystem ``path`` is on (the mount point nearest above it)."""
    best, fs = "", ""
    for m in read() if mounts is None else mounts:
        inside = path == m.target or path.startswith(m.target.rstrip("/") + "/")
        if inside and len(m.target) >= len(best):
            best, fs = m.target, m.fs_type
    return fs
