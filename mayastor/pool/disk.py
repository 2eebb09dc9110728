"""Pool disks: parse the URI a user gives and open it as a block device.

Accepted: ``/dev/sdb``, ``aio:///dev/sdb``, ``uring:///dev/sdb`` (the kernel does the I/O either way,
so the scheme only says "a local block device or file"), or a path to a regular file, which is
attached through a loop device. ``size_mb=N`` creates a missing file of that size (for tests and
file-backed pools). ``blk_size`` (512 or 4096) must match the device; ``uuid`` is accepted as
Mayastor's disk URIs carry one. ``malloc:///name?size_mb=N`` (or ``num_blocks``, ``blk_size``) is a
RAM disk, as io-engine's (mayastor/ramdisk.py; gone with a reboot, as io-engine's with a restart).
Anything else is rejected before the kernel is touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from .. import ramdisk, validate
from ..errors import InvalidArgument, NotFound
from ..kernel import block, loop
from ..paths import PathPolicy
from .label import MIN_DISK_BYTES

SCHEMES = ("aio", "uring", "malloc")
QUERY_KEYS = {
    "aio": ("blk_size", "uuid", "size_mb"),
    "uring": ("blk_size", "uuid", "size_mb"),
    "malloc": ("blk_size", "uuid", "size_mb", "num_blocks"),
}
PATH_MAX = 1024


@dataclass(frozen=True)
class DiskUri:
    scheme: str
    path: str
    blk_size: int | None = None
    size_mb: int | None = None
    uuid: str | None = None
    ram_size: str = ""  # malloc: the size query kept in the canonical form ("size_mb=N", "num_blocks=N&...")

    @property
    def is_ram(self) -> bool:
        return self.scheme == "malloc"

    @property
    def key(self) -> tuple[bool, str]:
        """What two URIs share when they name the same disk (aio and uring of one file do)."""
        return self.is_ram, self.path

    @property
    def canonical(self) -> str:
        """The form stored and reported (no creation hints; a RAM disk keeps its size)."""
        if self.is_ram:
            return f"malloc://{self.path}?{self.ram_size}"
        return f"{self.scheme}://{self.path}"


def _check_path(path: str, uri: str) -> str:
    if not path.startswith("/") or len(path) > PATH_MAX:
        raise InvalidArgument(f"disk {uri!r}: expected an absolute path")
    if any(c in path for c in "\0\n\r") or any(p in (".", "..") for p in path.split("/")[1:]):
        raise InvalidArgument(f"disk {uri!r}: path must be normalised (no '.', '..', NUL or newline)")
    if "//" in path or (path != "/" and path.endswith("/")):
        raise InvalidArgument(f"disk {uri!r}: path must be normalised")
    return path


def parse(uri: str) -> DiskUri:
    if not isinstance(uri, str) or not uri:
        raise InvalidArgument("empty disk URI")
    if uri.startswith("/"):
        return DiskUri("aio", _check_path(uri, uri))
    parts = urlsplit(uri)
    if parts.scheme not in SCHEMES:
        raise InvalidArgument(
            f"disk {uri!r}: unsupported scheme {parts.scheme!r}, expected one of {', '.join(SCHEMES)} or a plain path"
        )
    if parts.netloc or parts.fragment:
        raise InvalidArgument(f"disk {uri!r}: expected {parts.scheme}:///absolute/path")
    query: dict[str, str] = {}
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise InvalidArgument(f"disk {uri!r}: malformed query") from None
    known = QUERY_KEYS[parts.scheme]
    for key, value in pairs:
        if key not in known:
            raise InvalidArgument(f"disk {uri!r}: unknown parameter {key!r} (known: {', '.join(known)})")
        if key in query:
            raise InvalidArgument(f"disk {uri!r}: parameter {key!r} given twice")
        query[key] = value
    if parts.scheme == "malloc":
        return _ram_disk(uri, parts.path, query)
    blk = size = None
    if "blk_size" in query:
        if query["blk_size"] not in ("512", "4096"):
            raise InvalidArgument(f"disk {uri!r}: blk_size must be 512 or 4096")
        blk = int(query["blk_size"])
    if "size_mb" in query:
        if not query["size_mb"].isdigit() or not 0 < int(query["size_mb"]) <= 1 << 24:
            raise InvalidArgument(f"disk {uri!r}: size_mb must be a positive integer")
        size = int(query["size_mb"])
    disk_uuid = validate.uuid(query["uuid"], "disk uuid") if "uuid" in query else None
    return DiskUri(parts.scheme, _check_path(parts.path, uri), blk, size, disk_uuid)


def _ram_disk(uri: str, path: str, query: dict[str, str]) -> DiskUri:
    name = path[1:] if path.startswith("/") else ""
    try:
        _, blk = ramdisk.check(name, query)
    except ValueError as exc:
        raise InvalidArgument(f"disk {uri!r}: {exc}") from None
    size = f"size_mb={int(query['size_mb'])}" if "size_mb" in query else f"num_blocks={int(query['num_blocks'])}"
    if blk:
        size += f"&blk_size={blk}"
    disk_uuid = validate.uuid(query["uuid"], "disk uuid") if "uuid" in query else None
    return DiskUri("malloc", "/" + name, blk or None, None, disk_uuid, size)


@dataclass
class OpenDisk:
    uri: DiskUri
    device: str  # block device node
    loop: loop.LoopDevice | None = None  # set when we attached a file
    ram: ramdisk.RamDisk | None = None  # set for a RAM disk
    created: bool = False  # this open made the RAM disk (a failed create gives it back)

    @property
    def size(self) -> int:
        return block.size_bytes(self.device)

    def close(self) -> None:
        """Detach the loop device we attached (the file, or the RAM disk, stays)."""
        if self.loop is not None:
            loop.detach(self.loop)
            self.loop = None
        if self.ram is not None:
            self.ram.detach()

    def discard(self) -> None:
        """Close, and give a RAM disk's memory back (its pool is destroyed)."""
        self.close()
        if self.ram is not None:
            self.ram.destroy()


def open_disk(
    d: DiskUri, policy: PathPolicy, own_holders: str, create: bool = False, loop_tag: str = "mayastor", node: str = ""
) -> OpenDisk:
    """Resolve a disk to a block device; files get a loop device (reused if already attached),
    whose lo_file_name is ``loop_tag`` so reconcile can recognise it. ``policy`` checks the path
    before anything is opened for writing; only dm devices named ``own_holders``* may hold it.
    A RAM disk lives in the pool disks' name space of ``node``."""
    if d.is_ram:
        return _open_ram(d, loop_tag, node, create)
    target = policy.check(
        d.path, f"disk {d.canonical}", MIN_DISK_BYTES, own_holders, create=create and bool(d.size_mb), pool_disk=True
    )
    path = target.path
    if not target.exists:  # policy.check lets a missing file through only to be created with size_mb
        if not d.size_mb:
            raise NotFound(f"disk {d.canonical}: no such file {path}")
        with open(path, "xb") as f:
            f.truncate(d.size_mb << 20)
    if target.kind == "block":
        dev, found, attached = path, None, []
    else:
        # a loop device being detached (e.g. right after an export) still names the file for a
        # moment but has size 0: never reuse that one
        attached = [lo for lo in loop.find_by_file(path) if block.size_bytes(lo.path) > 0]
        found = attached[0] if attached else loop.attach(path, tag=loop_tag)
        dev = found.path
    if d.blk_size and block.logical_block_size(dev) != d.blk_size:
        lbs = block.logical_block_size(dev)
        if found is not None and not attached:
            loop.detach(found)
        raise InvalidArgument(f"disk {d.canonical}: device block size is {lbs}, not {d.blk_size}")
    return OpenDisk(d, dev, found)


def _open_ram(d: DiskUri, loop_tag: str, node: str, create: bool) -> OpenDisk:
    size, blk = ramdisk.check(d.path[1:], dict(parse_qsl(d.ram_size)))
    ram = ramdisk.RamDisk(ramdisk.POOL_SCOPE.format(node=node), d.path[1:], size, blk)
    existed = ram.exists
    try:
        dev = ram.open(loop_tag, create=create)
    except FileNotFoundError:
        raise NotFound(f"disk {d.canonical}: the RAM disk is gone (its data went with it)") from None
    if block.size_bytes(dev) != size:
        ram.detach()
        raise InvalidArgument(f"disk {d.canonical}: the RAM disk exists with another size")
    return OpenDisk(d, dev, None, ram, created=not existed)
