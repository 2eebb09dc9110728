"""Checks on user input, applied before anything touches SQLite or the kernel.

Names end up in configfs paths (as part of an NQN) and in dm names, so they are restricted to a
safe alphabet; UUIDs are normalised to the lowercase hyphenated form.
"""

from __future__ import annotations

import re
import uuid as _uuid

from configfs.validate import is_valid_nqn

from .errors import InvalidArgument

NQN_PREFIX = "nqn.2019-05.io.openebs:"
# NQNs are at most 223 bytes; a replica's subsystem NQN is NQN_PREFIX + name.
NAME_MAX = 223 - len(NQN_PREFIX)
# byte sizes we keep: SQLite's INTEGER is signed 64-bit (and no device is 8 EiB)
SIZE_MAX = (1 << 63) - 1
U64_MAX = (1 << 64) - 1
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*")
_NODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def name(value: str, what: str = "name") -> str:
    """Pool, replica, snapshot names: 1..200 of [A-Za-z0-9_.:-], starting alphanumeric."""
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{what} must not be empty")
    if len(value) > NAME_MAX or not _NAME.fullmatch(value):
        raise InvalidArgument(
            f"invalid {what} {value[:80]!r}: 1-{NAME_MAX} of [A-Za-z0-9_.:-], starting with a letter or digit"
        )
    return value


_SNAPSHOT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*(/[A-Za-z0-9][A-Za-z0-9_.:-]*)*")


def snapshot_name(value: str) -> str:
    """As a name, and '/' between parts: the control plane names a snapshot ``<uuid>/<txn id>``.
    A snapshot name never becomes a path or a kernel name."""
    if not isinstance(value, str) or not value:
        raise InvalidArgument("snapshot name must not be empty")
    if len(value) > NAME_MAX or not _SNAPSHOT_NAME.fullmatch(value):
        raise InvalidArgument(
            f"invalid snapshot name {value[:80]!r}: 1-{NAME_MAX} of [A-Za-z0-9_.:-] in "
            "'/'-separated parts, starting with a letter or digit"
        )
    return value


def node_name(value: str) -> str:
    if not isinstance(value, str) or not _NODE.fullmatch(value):
        raise InvalidArgument(f"invalid node name {value!r}: 1-63 of [A-Za-z0-9_.-]")
    return value


def uuid(value: str, what: str = "uuid") -> str:
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        raise InvalidArgument(
            f"invalid {what} {value[:80]!r}: expected a UUID like 01234567-89ab-cdef-0123-456789abcdef"
        )
    return str(_uuid.UUID(value))


def optional_uuid(value: str | None, what: str = "uuid") -> str | None:
    return uuid(value, what) if value else None


def host_nqns(values) -> list[str]:
    out = []
    for v in values:
        if not is_valid_nqn(v):
            raise InvalidArgument(f"invalid host NQN {str(v)[:80]!r}")
        if v not in out:
            out.append(v)
    return out


def entity_id(value: str) -> str:
    # free text in Mayastor (the volume uuid in practice); keep it printable and bounded
    if len(value) > 255 or any(ord(c) < 0x20 for c in value):
        raise InvalidArgument(f"invalid entity id {value[:80]!r}: at most 255 printable characters")
    return value


_ENDPOINT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]{0,252}):([0-9]{1,5})")


def endpoint(value: str) -> str:
    """A gRPC endpoint host:port (IPv6 in brackets)."""
    m = _ENDPOINT.fullmatch(value) if isinstance(value, str) else None
    if m is None or not 0 < int(m.group(2)) < 65536:
        raise InvalidArgument(f"invalid endpoint {str(value)[:80]!r}: expected host:port")
    return value
