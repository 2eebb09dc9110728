"""The nexus state machine and child states, as one small table each (pure logic, host-tested).

A nexus row holds exactly one of NEXUS_STATES; every change goes through `transition()`, which
refuses moves the machine does not allow. Children hold the API's ChildState + ChildStateReason
directly (the persisted form is what ListNexus reports), and the nexus state while running is
derived from them (`derive()`), as Mayastor reports it.
"""

from __future__ import annotations

from ..errors import FailedPrecondition

# NexusState wire values
NEXUS_WIRE = {"init": 2, "online": 1, "degraded": 2, "faulted": 3, "shutting_down": 4, "shutdown": 5}
# ChildState wire values
CHILD_UNKNOWN, CHILD_ONLINE, CHILD_DEGRADED, CHILD_FAULTED = 0, 1, 2, 3
CHILD_STATE_NAMES = {0: "unknown", 1: "online", 2: "degraded", 3: "faulted"}
CHILD_STATE_WIRE = {v: k for k, v in CHILD_STATE_NAMES.items()}
# ChildStateReason wire values
(
    R_NONE,
    R_INIT,
    R_CLOSED,
    R_CANNOT_OPEN,
    R_CONFIG_INVALID,
    R_REBUILD_FAILED,
    R_IO_FAILURE,
    R_BY_CLIENT,
    R_OUT_OF_SYNC,
    R_NO_SPACE,
    R_TIMED_OUT,
    R_ADMIN_FAILED,
) = range(12)
REASON_NAMES = dict(
    enumerate(
        (
            "none",
            "init",
            "closed",
            "cannot_open",
            "config_invalid",
            "rebuild_failed",
            "io_failure",
            "by_client",
            "out_of_sync",
            "no_space",
            "timed_out",
            "admin_failed",
        )
    )
)

TRANSITIONS: dict[str, frozenset[str]] = {
    "init": frozenset({"online", "degraded", "faulted", "shutting_down"}),
    "online": frozenset({"degraded", "faulted", "shutting_down"}),
    "degraded": frozenset({"online", "faulted", "shutting_down"}),
    "faulted": frozenset({"online", "degraded", "shutting_down"}),
    "shutting_down": frozenset({"shutdown", "online", "degraded", "faulted"}),  # back on a failed shutdown
    "shutdown": frozenset(),
}


def transition(current: str, new: str) -> str:
    if new == current:
        return current
    if new not in TRANSITIONS.get(current, ()):
        raise FailedPrecondition(f"nexus cannot go from {current} to {new}")
    return new


def derive(child_states: list[tuple[str, int]]) -> str:
    """Running nexus state from (child state, reason): all online -> online, some -> degraded,
    none -> faulted."""
    healthy = sum(1 for st, _ in child_states if st == "online")
    if child_states and healthy == len(child_states):
        return "online"
    return "degraded" if healthy else "faulted"


def is_healthy(state: str) -> bool:
    return state == "online"


def is_permanent_fault(state: str, reason: int) -> bool:
    """Faults an Online request cannot undo (Mayastor: CantOpen and OfflinePermanent)."""
    return state == "faulted" and reason in (R_CANNOT_OPEN, R_BY_CLIENT, R_CONFIG_INVALID)


# child state a leg's dm-raid health character implies, given what we had recorded
def from_health(
    char: str, state: str, reason: int, sync_action: str = "idle", peer_in_sync: bool = True
) -> tuple[str, int] | None:
    """New (state, reason) for a child whose raid slot shows ``char``, or None to keep it.
    'D' faults a child that was serving; 'a' is a leg being recovered; 'A' is in sync. During a
    ``resync`` md shows every leg 'a' (it re-copies the bitmap's dirty regions from the first leg
    after a reload), and so it does just after a reload, before the resync shows (``sync_action``
    still idle or frozen): no leg lost data, so a serving child stays online. A leg being
    recovered has a peer in sync to copy from ('A'); without one (``peer_in_sync`` false) an
    'a' is never a recovery."""
    if char == "D":
        if state in ("online",) or (state == "degraded" and reason == R_OUT_OF_SYNC):
            return "faulted", R_IO_FAILURE
        return None
    if char == "a":
        if state == "online" and sync_action != "resync" and peer_in_sync:
            return "degraded", R_OUT_OF_SYNC
        return None
    if char == "A":
        if state == "degraded" and reason == R_OUT_OF_SYNC:
            return "online", R_NONE
        return None
    return None
