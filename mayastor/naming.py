"""The kernel names this daemon gives its objects, in one place: device-mapper names (every one
starts with MAYASTOR-<node>-, so reconcile knows its own), subsystem NQNs and serial numbers.
Nothing else builds a dm name or an NQN from a user's string."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .validate import NQN_PREFIX


def nqn_for(name: str) -> str:
    """The NQN of a replica's, bdev's or nexus's share (one name space: io-engine's)."""
    return NQN_PREFIX + name


def serial_for(uuid: str) -> str:
    return "DCS" + hashlib.sha256(uuid.encode()).hexdigest()[:17].upper()


@dataclass(frozen=True)
class Tags:
    node: str

    @property
    def prefix(self) -> str:
        return f"MAYASTOR-{self.node}-"

    @property
    def pool_prefix(self) -> str:
        return f"{self.prefix}pool-"

    @property
    def nexus_prefix(self) -> str:
        return f"{self.prefix}nexus-"

    def pool(self, pool_uuid: str, part: str) -> str:
        return f"{self.pool_prefix}{pool_uuid}-{part}"

    def pool_devices(self, pool_uuid: str) -> tuple[str, str, str]:
        """The thin-pool and the linear data and metadata areas under it, in teardown order."""
        return self.pool(pool_uuid, "tpool"), self.pool(pool_uuid, "data"), self.pool(pool_uuid, "meta")

    def thin(self, uuid: str) -> str:
        return f"{self.prefix}thin-{uuid}"

    def nexus(self, uuid: str, part: str = "") -> str:
        """The published nexus device (part ""), its raid1 ("raid") or a leg ("<child id>-meta|data")."""
        return f"{self.nexus_prefix}{uuid}" + (f"-{part}" if part else "")

    def owns(self, dm_name: str) -> bool:
        return dm_name.startswith(self.prefix)

    def parse(self, dm_name: str) -> tuple[str, str, str] | None:
        """('pool', uuid, part), ('thin', uuid, '') or ('nexus', uuid, part) for our names; None otherwise."""
        if not self.owns(dm_name):
            return None
        rest = dm_name[len(self.prefix) :]
        if rest.startswith("pool-") and len(rest) > 42:
            return "pool", rest[5:41], rest[42:]
        if rest.startswith("thin-"):
            return "thin", rest[5:], ""
        if rest.startswith("nexus-") and len(rest) >= 42:
            return "nexus", rest[6:42], rest[43:]
        return None
