"""Nexus child URIs: parsed and checked before anything touches the kernel.

    bdev:///<replica name>?uuid=U          a replica of this node (also loopback:///)
    nvmf://host[:port]/<nqn>?uuid=U        a remote replica through the kernel nvme-tcp host
                                           (also nvmf+tcp://; default port 4420)
    aio:///path  uring:///path             a block device or a file (through a loop device)
    malloc:///name?size_mb=N               a RAM disk (tmpfs file on a loop device)
    null:///name?size_mb=N                 a null device (CreateBdev only: dm-zero; not a child)
    nbd://host:port/export                 an NBD export through the kernel nbd client

The ``uuid`` query is the child's identity (Mayastor keys NexusInfo by it). Unknown schemes and
unknown query parameters are rejected, like Mayastor's ``uri::parse``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from configfs.validate import is_valid_nqn

from .. import ramdisk, validate
from ..errors import InvalidArgument

PATH_MAX = 1024
URI_MAX = 2048

# scheme -> accepted query keys
QUERY_KEYS: dict[str, tuple[str, ...]] = {
    "bdev": ("uuid",),
    "nvmf": ("uuid", "hostnqn"),
    "aio": ("uuid", "blk_size", "rescan"),
    "uring": ("uuid", "blk_size"),
    "malloc": ("uuid", "size_mb", "num_blocks", "blk_size", "resize"),
    "null": ("uuid", "size_mb", "num_blocks", "blk_size"),
    "nbd": ("uuid",),
}
ALIASES = {"loopback": "bdev", "nvmf+tcp": "nvmf"}
NVMF_DEFAULT_PORT = 4420
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


@dataclass(frozen=True)
class ChildUri:
    uri: str  # exactly as given; the child's key in the nexus
    scheme: str  # canonical scheme (aliases folded)
    path: str = ""  # bdev: replica name; aio/uring: file path; malloc: name; nbd: export; nvmf: nqn
    host: str = ""
    port: int = 0
    uuid: str | None = None
    params: dict = field(default_factory=dict, compare=False)

    @property
    def blk_size(self) -> int | None:
        v = self.params.get("blk_size")
        return int(v) if v else None


def _fail(uri: str, why: str) -> InvalidArgument:
    return InvalidArgument(f"child {uri[:200]!r}: {why}")


def _query(uri: str, scheme: str, raw: str) -> dict[str, str]:
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, strict_parsing=bool(raw))
    except ValueError:
        raise _fail(uri, "malformed query") from None
    allowed = QUERY_KEYS[scheme]
    out: dict[str, str] = {}
    for key, value in pairs:
        if key not in allowed:
            raise _fail(uri, f"unknown parameter {key!r} for {scheme} (known: {', '.join(allowed)})")
        if key in out:
            raise _fail(uri, f"parameter {key!r} given twice")
        out[key] = value
    return out


def _check_path(uri: str, path: str) -> str:
    if not path.startswith("/") or len(path) > PATH_MAX:
        raise _fail(uri, "expected an absolute path")
    if (
        any(c in path for c in "\0\n\r")
        or any(p in (".", "..") for p in path.split("/")[1:])
        or "//" in path
        or path.endswith("/")
    ):
        raise _fail(uri, "path must be normalised (no '.', '..', '//', NUL or newline)")
    return path


def _check_host(uri: str, host: str | None) -> str:
    if not host:
        raise _fail(uri, "missing host")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not _HOST.fullmatch(host):
        raise _fail(uri, f"invalid host {host[:80]!r}")
    return host


def parse(uri: str) -> ChildUri:
    if not isinstance(uri, str) or not uri:
        raise InvalidArgument("empty child URI")
    if len(uri) > URI_MAX or any(c in uri for c in "\0\n\r"):
        raise _fail(uri, f"too long or contains control characters (at most {URI_MAX} bytes)")
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as exc:
        raise _fail(uri, f"malformed URI: {exc}") from None
    scheme = ALIASES.get(parts.scheme, parts.scheme)
    if scheme not in QUERY_KEYS:
        raise _fail(
            uri, f"unsupported scheme {parts.scheme!r} (known: {', '.join(sorted(set(QUERY_KEYS) | set(ALIASES)))})"
        )
    if parts.fragment:
        raise _fail(uri, "fragments are not allowed")
    q = _query(uri, scheme, parts.query)
    child_uuid = validate.uuid(q["uuid"], "child uuid") if "uuid" in q else None
    if "blk_size" in q and q["blk_size"] not in ("512", "4096"):
        raise _fail(uri, "blk_size must be 512 or 4096")
    if "rescan" in q and q["rescan"] not in ("", "true", "false"):
        raise _fail(uri, "rescan takes no value")

    if scheme in ("bdev", "malloc", "null"):
        if parts.netloc:
            raise _fail(uri, f"expected {parts.scheme}:///<name>")
        name = parts.path[1:] if parts.path.startswith("/") else ""
        if scheme == "bdev":
            validate.name(name, "replica name")
        else:
            try:
                ramdisk.check(name, q)
            except ValueError as exc:
                raise _fail(uri, str(exc)) from None
        return ChildUri(uri, scheme, name, uuid=child_uuid, params=q)

    if scheme in ("aio", "uring"):
        if parts.netloc:
            raise _fail(uri, f"expected {parts.scheme}:///absolute/path")
        return ChildUri(uri, scheme, _check_path(uri, parts.path), uuid=child_uuid, params=q)

    host = _check_host(uri, parts.hostname)
    if parts.username or parts.password:
        raise _fail(uri, "credentials are not allowed")
    export = parts.path[1:] if parts.path.startswith("/") else parts.path
    if scheme == "nvmf":
        if not is_valid_nqn(export):
            raise _fail(uri, f"invalid subsystem NQN {export[:80]!r}")
        if "hostnqn" in q and not is_valid_nqn(q["hostnqn"]):
            raise _fail(uri, f"invalid hostnqn {q['hostnqn'][:80]!r}")
        return ChildUri(uri, scheme, export, host, port or NVMF_DEFAULT_PORT, child_uuid, q)
    # nbd
    if port is None:
        raise _fail(uri, "nbd needs a port")
    if len(export) > 4096 or any(ord(c) < 0x20 for c in export):
        raise _fail(uri, "invalid export name")
    return ChildUri(uri, scheme, export, host, port, child_uuid, q)
