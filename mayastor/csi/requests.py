"""Checks on CSI requests, before anything is attached or mounted (pure logic, host-tested).

A volume id is the nexus name, a UUID; the nexus is published as subsystem
``nqn.2019-05.io.openebs:<volume id>``, so the publish context's URI must name that subsystem.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from configfs.validate import is_valid_nqn

from .. import validate
from ..errors import InvalidArgument
from ..validate import NQN_PREFIX

FS_TYPES = ("ext4", "xfs", "btrfs")
DEFAULT_FS = "ext4"
PATH_MAX = 4096
# csi.v1 VolumeCapability.AccessMode.Mode values a single-node block volume can honour
SINGLE_NODE_WRITER, SINGLE_NODE_READER_ONLY, MULTI_NODE_READER_ONLY = 1, 2, 3
SINGLE_NODE_SINGLE_WRITER, SINGLE_NODE_MULTI_WRITER = 6, 7
WRITABLE_MODES = (SINGLE_NODE_WRITER, SINGLE_NODE_SINGLE_WRITER, SINGLE_NODE_MULTI_WRITER)
READ_ONLY_MODES = (SINGLE_NODE_READER_ONLY, MULTI_NODE_READER_ONLY)
_MOUNT_FLAG = re.compile(r"[A-Za-z0-9_.:/@+=-]{1,256}")
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
# URI query keys the node plugin passes on to the NVMe-oF connect (as Mayastor's CSI node does)
NVMF_INT_KEYS = ("nr_io_queues", "ctrl_loss_tmo", "keep_alive_tmo", "reconnect_delay")
NVMF_SCHEMES = ("nvmf", "nvmf+tcp")


def volume_id(value: str) -> str:
    """A volume id is the nexus name, a UUID."""
    if not value:
        raise InvalidArgument("volume_id is required")
    return validate.uuid(value, "volume_id")


def path(value: str, what: str) -> str:
    """An absolute, normalised path: it becomes a mount point, so no '..' games."""
    if not value:
        raise InvalidArgument(f"{what} is required")
    if (
        not value.startswith("/")
        or len(value) > PATH_MAX
        or any(c in value for c in "\0\n\r\t")
        or any(p in (".", "..") for p in value.split("/")[1:])
        or "//" in value
        or (value.endswith("/") and value != "/")
    ):
        raise InvalidArgument(f"invalid {what} {value[:120]!r}: expected a normalised absolute path")
    if value == "/":
        raise InvalidArgument(f"{what} must not be /")
    return value


@dataclass(frozen=True)
class Capability:
    block: bool
    fs_type: str = ""
    mount_flags: tuple[str, ...] = ()
    read_only: bool = False  # the access mode allows no writer


def capability(cap, required: bool = True) -> Capability | None:
    """A csi.v1 VolumeCapability (None when the request has none), checked: block or mount
    (ext4/xfs/btrfs), single-node modes."""
    if cap is None:
        if required:
            raise InvalidArgument("volume_capability is required")
        return None
    kind = cap.WhichOneof("access_type")
    if kind is None:
        raise InvalidArgument("volume_capability needs block or mount access")
    mode = cap.access_mode.mode
    if mode not in WRITABLE_MODES + READ_ONLY_MODES:
        raise InvalidArgument(f"access mode {mode} is not supported (single-node writer or read-only modes)")
    read_only = mode in READ_ONLY_MODES
    if kind == "block":
        return Capability(True, read_only=read_only)
    fs = cap.mount.fs_type or DEFAULT_FS
    if fs not in FS_TYPES:
        raise InvalidArgument(f"filesystem {fs[:40]!r} is not supported (one of {', '.join(FS_TYPES)})")
    flags = []
    for flag in cap.mount.mount_flags:
        # each flag is one mount option: no commas (they would smuggle in more), no blanks
        if not _MOUNT_FLAG.fullmatch(flag):
            raise InvalidArgument(f"invalid mount flag {flag[:80]!r}")
        flags.append(flag)
    if cap.mount.volume_mount_group:
        raise InvalidArgument("volume_mount_group is not supported")
    return Capability(False, fs, tuple(flags), read_only)


@dataclass(frozen=True)
class VolumeUri:
    """Where the volume's device comes from: an NVMe-oF subsystem, or a local device node."""

    scheme: str  # "nvmf" or "file"
    nqn: str = ""
    host: str = ""
    port: int = 0
    device: str = ""  # file:// URIs: the device node
    hostnqn: str = ""
    options: dict[str, int] = field(default_factory=dict)


def subsystem_nqn(volume: str) -> str:
    return NQN_PREFIX + volume


def volume_of_nqn(nqn: str) -> str | None:
    """The volume id a subsystem NQN belongs to, or None when it is not one of ours."""
    if not nqn.startswith(NQN_PREFIX):
        return None
    try:
        return validate.uuid(nqn[len(NQN_PREFIX) :])
    except InvalidArgument:
        return None


def volume_uri(uri: str, volume: str) -> VolumeUri:
    """The publish context's ``uri``: nvmf://host:port/<nqn>[?hostnqn=..&nr_io_queues=..] naming this
    volume's subsystem, or file:///dev/<node> for a nexus published locally."""
    if not uri:
        raise InvalidArgument("publish_context has no 'uri' (the nexus's device URI)")
    if len(uri) > PATH_MAX or any(c in uri for c in "\0\n\r\t "):
        raise InvalidArgument(f"invalid volume URI {uri[:120]!r}")
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as exc:
        raise InvalidArgument(f"invalid volume URI {uri[:120]!r}: {exc}") from None
    if parts.fragment or parts.username or parts.password:
        raise InvalidArgument(f"invalid volume URI {uri[:120]!r}: no fragments or credentials")
    if parts.scheme == "file":
        dev = unquote(parts.path)
        if parts.netloc or parts.query or not re.fullmatch(r"/dev/[A-Za-z0-9_.:/-]{1,200}", dev) or ".." in dev:
            raise InvalidArgument(f"invalid volume URI {uri[:120]!r}: expected file:///dev/<device>")
        return VolumeUri("file", device=dev)
    if parts.scheme not in NVMF_SCHEMES:
        raise InvalidArgument(f"unsupported volume URI scheme {parts.scheme!r} (nvmf, nvmf+tcp or file)")
    host = parts.hostname or ""
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        if not _HOST.fullmatch(host):
            raise InvalidArgument(f"invalid host in volume URI {uri[:120]!r}") from None
    nqn = unquote(parts.path[1:])
    if not is_valid_nqn(nqn):
        raise InvalidArgument(f"invalid subsystem NQN in volume URI {uri[:120]!r}")
    if volume_of_nqn(nqn) != volume:
        raise InvalidArgument(f"volume URI names subsystem {nqn}, not volume {volume}'s {subsystem_nqn(volume)}")
    hostnqn, options = "", {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "hostnqn":
            if not is_valid_nqn(value):
                raise InvalidArgument(f"invalid hostnqn {value[:80]!r} in volume URI")
            hostnqn = value
        elif key in NVMF_INT_KEYS:
            if not value.isdigit() or int(value) > 1 << 20:
                raise InvalidArgument(f"{key} in volume URI must be a small non-negative integer")
            options[key] = int(value)
        elif key != "uuid":  # io-engine adds the nexus uuid; the NQN already says which volume
            raise InvalidArgument(f"unknown parameter {key[:40]!r} in volume URI")
    return VolumeUri("nvmf", nqn, host, port or 4420, hostnqn=hostnqn, options=options)
