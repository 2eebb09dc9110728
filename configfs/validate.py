"""Checks applied before any user string becomes a configfs path component."""

from __future__ import annotations

import re
import uuid as _uuid

# NVMe base spec: NQN is at most 223 bytes, "nqn.yyyy-mm.reverse.domain[:anything]" or the UUID form.
NQN_MAX = 223
_NQN_DATE = re.compile(r"nqn\.\d{4}-\d{2}\.[A-Za-z0-9][A-Za-z0-9.-]*(:[\x21-\x7e]+)?")
_NQN_UUID = re.compile(r"nqn\.2014-08\.org\.nvmexpress:uuid:[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
DISCOVERY_NQN = "nqn.2014-08.org.nvmexpress.discovery"


def is_valid_nqn(nqn: str) -> bool:
    if not isinstance(nqn, str) or not nqn or len(nqn.encode()) > NQN_MAX:
        return False
    if "/" in nqn or "\0" in nqn:
        return False
    return bool(_NQN_UUID.fullmatch(nqn) or _NQN_DATE.fullmatch(nqn))


def check_nqn(nqn: str) -> str:
    if not is_valid_nqn(nqn):
        raise ValueError(f"invalid NQN {nqn!r}: expected nqn.yyyy-mm.domain[:name], at most {NQN_MAX} bytes, no '/'")
    return nqn


def check_subsystem_nqn(nqn: str) -> str:
    check_nqn(nqn)
    if nqn == DISCOVERY_NQN:
        raise ValueError("the discovery NQN cannot be a subsystem")
    return nqn


def check_portid(portid: int) -> int:
    if isinstance(portid, bool) or not isinstance(portid, int) or not 0 <= portid <= 0xFFFE:
        raise ValueError(f"invalid nvmet port id {portid!r}: expected an integer 0..65534")
    return portid


def check_nsid(nsid: int) -> int:
    if isinstance(nsid, bool) or not isinstance(nsid, int) or not 1 <= nsid < 0xFFFFFFFF:
        raise ValueError(f"invalid namespace id {nsid!r}: expected 1..4294967294")
    return nsid


def check_ana_grpid(grpid: int) -> int:
    if isinstance(grpid, bool) or not isinstance(grpid, int) or not 1 <= grpid <= 128:
        raise ValueError(f"invalid ANA group id {grpid!r}: expected 1..128")
    return grpid


_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def check_plain_name(name: str, what: str = "name") -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in (".", ".."):
        raise ValueError(f"invalid {what} {name!r}: 1-64 of [A-Za-z0-9_.:-], not '.' or '..'")
    return name


def check_uuid(value: str) -> str:
    try:
        return str(_uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        raise ValueError(f"invalid UUID {value!r}") from None


def check_nguid(value: str) -> str:
    text = value.replace("-", "") if isinstance(value, str) else ""
    if not re.fullmatch(r"[0-9a-fA-F]{32}", text):
        raise ValueError(f"invalid NGUID {value!r}: expected 32 hex digits")
    return str(_uuid.UUID(text))
