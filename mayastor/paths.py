"""Which host paths the daemon may open for writing: pool disks and file/device nexus children.

Checked before anything is opened for writing (a loop attach or a label write opens read-write):

* the path is resolved (by-id links are symlinks) and must not lead into /proc or /sys;
* a block device must be a node under /dev, not mounted, not held by anything but this daemon's
  own device-mapper devices; a pool disk must also carry no partitions and no filesystem, RAID,
  LVM or partition-table signature (``blkid -p``, read-only) unless it already holds one of our
  pool labels or the operator started the daemon with ``--allow-formatted-disks``;
* a regular file must lie under one of the directories given with ``--disk-dir``, have a single
  link (no hard link to a file elsewhere) and a size a pool or child can use; a missing file is
  created only there;
* anything else (character devices such as /dev/mem, FIFOs, sockets, directories) is refused.

Errors are INVALID_ARGUMENT for a path that can never be used and FAILED_PRECONDITION for a device
that is busy or formatted now.
"""

from __future__ import annotations

import os
import stat
import subprocess
from dataclasses import dataclass

from .errors import FailedPrecondition, InvalidArgument, NotFound
from .kernel import block, mountinfo

FORBIDDEN_TREES = ("/proc", "/sys")
MAX_FILE_BYTES = 1 << 44  # 16 TiB, size_mb's upper bound


def _under(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree.rstrip("/") + "/")


@dataclass(frozen=True)
class Target:
    """A checked path: ``path`` is what to open (symlinks resolved), ``kind`` "block" or "file",
    ``exists`` False for a file that is to be created."""

    path: str
    kind: str
    exists: bool = True


@dataclass(frozen=True)
class PathPolicy:
    file_dirs: tuple[str, ...] = ()
    allow_formatted: bool = False

    @classmethod
    def of(cls, file_dirs: list[str] | tuple[str, ...] = (), allow_formatted: bool = False) -> PathPolicy:
        dirs = []
        for d in file_dirs:
            real = os.path.realpath(d)
            if not os.path.isabs(d) or any(_under(real, t) for t in FORBIDDEN_TREES + ("/dev",)) or real == "/":
                raise ValueError(f"--disk-dir {d}: must be an absolute directory outside /, /dev, /proc and /sys")
            dirs.append(real)
        return cls(tuple(dirs), allow_formatted)

    def check(
        self, path: str, what: str, min_bytes: int, own_holders: str, create: bool = False, pool_disk: bool = False
    ) -> Target:
        """Raise unless ``path`` may be opened read-write as ``what``. A block device may be held
        only by dm devices whose names start with ``own_holders`` (ours, of the same kind);
        ``create`` allows a missing file in a disk directory; ``pool_disk`` adds the
        formatted-device check."""
        real = os.path.realpath(path)
        tree = next((t for t in FORBIDDEN_TREES if _under(real, t)), None)
        if tree is not None:
            raise InvalidArgument(f"{what}: {path} is in {tree}, which never holds disks")
        try:
            st = os.stat(real)
        except FileNotFoundError:
            if _under(real, "/dev"):
                raise NotFound(f"{what}: no such device {path}") from None
            self._check_file_dir(real, path, what)
            if not create:
                raise NotFound(f"{what}: no such file {path}") from None
            if not os.path.isdir(os.path.dirname(real)):
                raise FailedPrecondition(f"{what}: directory of {path} does not exist") from None
            return Target(real, "file", exists=False)
        if stat.S_ISBLK(st.st_mode):
            self._check_block(real, path, what, st, min_bytes, own_holders, pool_disk)
            return Target(real, "block")
        if stat.S_ISREG(st.st_mode):
            self._check_file_dir(real, path, what)
            if st.st_nlink != 1:
                raise InvalidArgument(f"{what}: {path} has {st.st_nlink} hard links; use a file of its own")
            if not min_bytes <= st.st_size <= MAX_FILE_BYTES:
                raise InvalidArgument(
                    f"{what}: {path} is {st.st_size} bytes; between {min_bytes} and {MAX_FILE_BYTES} are usable"
                )
            if pool_disk:
                self._check_unformatted(real, path, what, st.st_size)
            return Target(real, "file")
        raise InvalidArgument(f"{what}: {path} is not a block device or regular file")

    def _check_file_dir(self, real: str, path: str, what: str) -> None:
        if _under(real, "/dev"):
            raise InvalidArgument(f"{what}: {path} is a file under /dev, not a block device")
        if not any(_under(os.path.dirname(real), d) for d in self.file_dirs):
            allowed = ", ".join(self.file_dirs) or "none configured"
            raise InvalidArgument(
                f"{what}: regular files are accepted only under the daemon's --disk-dir "
                f"directories ({allowed}); {path} is not"
            )

    def _check_block(
        self, real: str, path: str, what: str, st: os.stat_result, min_bytes: int, own_holders: str, pool_disk: bool
    ) -> None:
        if not _under(real, "/dev"):
            raise InvalidArgument(f"{what}: block device nodes are accepted only under /dev, not {path}")
        devnum = (os.major(st.st_rdev), os.minor(st.st_rdev))
        for m in mountinfo.read():
            if m.devnum == devnum:
                raise FailedPrecondition(f"{what}: {path} is mounted at {m.target}")
        foreign = [h for h in block.holders(real) if not _held_by(h, own_holders)]
        if foreign:
            raise FailedPrecondition(f"{what}: {path} is in use by {', '.join(foreign)}")
        size = block.size_bytes(real)
        if size < min_bytes:
            raise InvalidArgument(f"{what}: {path} is {size} bytes; at least {min_bytes} are needed")
        if pool_disk:
            name = block.name_of(real)
            parts = [
                p
                for p in os.listdir(os.path.join(block.SYS_BLOCK, name))
                if os.path.exists(os.path.join(block.SYS_BLOCK, name, p, "partition"))
            ]
            if parts and not self.allow_formatted:
                raise FailedPrecondition(
                    f"{what}: {path} has partitions ({', '.join(sorted(parts))}); give a partition or an empty disk"
                )
            self._check_unformatted(real, path, what, size)

    def _check_unformatted(self, real: str, path: str, what: str, size: int) -> None:
        if self.allow_formatted:
            return
        found = signatures(real)
        if found and not _has_our_label(real, size):
            raise FailedPrecondition(
                f"{what}: {path} holds {found}; wipe it first (wipefs) or start the daemon with --allow-formatted-disks"
            )


def _held_by(holder: str, prefix: str) -> bool:
    try:
        with open(os.path.join(block.SYS_BLOCK, holder, "dm", "name")) as f:
            return f.read().strip().startswith(prefix)
    except OSError:
        return False


def signatures(path: str) -> str:
    """What ``blkid -p`` (a read-only low-level probe) finds on ``path``: e.g. "an ext4 filesystem",
    "a gpt partition table"; "" when it finds nothing."""
    try:
        r = subprocess.run(
            ["blkid", "-p", "-o", "export", "--", path], capture_output=True, text=True, timeout=120, check=False
        )
    except FileNotFoundError:
        raise FailedPrecondition("blkid (util-linux) is needed to check disks for existing data") from None
    if r.returncode == 2:  # nothing found
        return ""
    if r.returncode != 0:
        raise FailedPrecondition(f"blkid -p {path} failed: {r.stderr.strip() or r.returncode}")
    tags = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
    if "PTTYPE" in tags:
        return f"a {tags['PTTYPE']} partition table"
    if "TYPE" in tags:
        return f"a {tags['TYPE']} {'signature' if tags.get('USAGE') in ('raid', 'crypto') else 'filesystem'}"
    return "an unknown signature"


def _has_our_label(path: str, size: int) -> bool:
    from .pool.label import LabelError, read_label

    try:
        return read_label(path, size) is not None
    except (LabelError, OSError):
        return False
