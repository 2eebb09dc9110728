"""Pool disks: parse the URI a user gives and open it as a block device.

Accepted: ``/dev/sdb``, ``aio:///dev/sdb``, ``uring:///dev/sdb`` (the kernel does the I/O either way,
so the scheme only says "a local block device or file"), or a path to a regular file, which is
attached through a loop device. ``size_mb=N`` creates a missing file of that size (for tests and
file-backed pools). ``blk_size`` (512 or 4096) must match the device; ``uuid`` is accepted as
Mayastor's disk URIs carry one. Anything else is rejected before the kernel is touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from ..errors import InvalidArgument
from ..kernel import block, loop
from .. import validate
from ..paths import PathPolicy
from .label import MIN_DISK_BYTES

SCHEMES = ("aio", "uring")
QUERY_KEYS = ("blk_size", "uuid", "size_mb")
PATH_MAX = 1024


@dataclass(frozen=True)
class DiskUri:
    scheme: str
    path: str
    blk_size: int | None = None
    size_mb: int | None = None
    uuid: str | None = None

    @property
    def canonical(self) -> str:
        """The form stored and reported (no creation hints)."""
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
        raise InvalidArgument(f"disk {uri!r}: unsupported scheme {parts.scheme!r}, expected one of "
                              f"{', '.join(SCHEMES)} or a plain path")
    if parts.netloc or parts.fragment:
        raise InvalidArgument(f"disk {uri!r}: expected {parts.scheme}:///absolute/path")
    query: dict[str, str] = {}
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise InvalidArgument(f"disk {uri!r}: malformed query") from None
    for key, value in pairs:
        if key not in QUERY_KEYS:
            raise InvalidArgument(f"disk {uri!r}: unknown parameter {key!r} (known: {', '.join(QUERY_KEYS)})")
        if key in query:
            raise InvalidArgument(f"disk {uri!r}: parameter {key!r} given twice")
        query[key] = value
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


@dataclass
class OpenDisk:
    uri: DiskUri
    device: str  # block device node
    loop: loop.LoopDevice | None = None  # set when we attached a file

    @property
    def size(self) -> int:
        return block.size_bytes(self.device)

    def close(self) -> None:
        """Detach the loop device we attached (the file stays)."""
        if self.loop is not None:
            loop.detach(self.loop)
            self.loop = None


def open_disk(d: DiskUri, policy: PathPolicy, own_holders: str, create: bool = False,
              loop_tag: str = "mayastor") -> OpenDisk:
    """Resolve a disk to a block device; files get a loop device (reused if already attached),
    whose lo_file_name is ``loop_tag`` so reconcile can recognise it. ``policy`` checks the path
    before anything is opened for writing; only dm devices named ``own_holders``* may hold it."""
    target = policy.check(d.path, f"disk {d.canonical}", MIN_DISK_BYTES, own_holders,
                          create=create and bool(d.size_mb), pool_disk=True)
    path = target.path
    if not target.exists:
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
