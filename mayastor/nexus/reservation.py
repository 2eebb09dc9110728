"""A nexus's NVMe reservation parameters (CreateNexus resvKey, preemptKey, resvType, preemptPolicy),
checked by io-engine's rules before anything is recorded."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import InvalidArgument

U64_MAX = (1 << 64) - 1
# NvmeReservation wire values: Reserved .. ExclusiveAccessAllRegs
(
    RESERVED,
    WRITE_EXCLUSIVE,
    EXCLUSIVE_ACCESS,
    WRITE_EXCLUSIVE_REGS_ONLY,
    EXCLUSIVE_ACCESS_REGS_ONLY,
    WRITE_EXCLUSIVE_ALL_REGS,
    EXCLUSIVE_ACCESS_ALL_REGS,
) = range(7)
# NexusNvmePreemption wire values
ARG_KEY, HOLDER = 0, 1


@dataclass(frozen=True)
class Reservation:
    key: int = 0
    preempt_key: int = 0  # 0: none
    type: int = WRITE_EXCLUSIVE_ALL_REGS  # io-engine's default when the request names none
    policy: int = ARG_KEY

    @classmethod
    def from_request(cls, key: int, preempt_key: int, resv_type: int | None, policy: int) -> Reservation:
        for what, v in (("reservation key", key), ("preempt key", preempt_key)):
            if not 0 <= v <= U64_MAX:
                raise InvalidArgument(f"{what} {v} is not a uint64")
        if resv_type is None:
            resv_type = WRITE_EXCLUSIVE_ALL_REGS
        if not RESERVED <= resv_type <= EXCLUSIVE_ACCESS_ALL_REGS:
            raise InvalidArgument(f"Invalid reservation type {resv_type}")
        if policy not in (ARG_KEY, HOLDER):
            raise InvalidArgument(f"Invalid reservation preempt policy {policy}")
        r = cls(key, preempt_key, resv_type, policy)
        if r.enabled and (key == 0 or (policy == HOLDER and preempt_key)):
            # io-engine's rule: a reservation needs a key, and Holder preempts whoever holds it
            raise InvalidArgument("invalid NVMe reservation parameters")
        return r

    def acquire_only(self) -> Reservation:
        """The same key and type, taken without preempting anyone."""
        return replace(self, policy=ARG_KEY, preempt_key=0)

    @property
    def enabled(self) -> bool:
        """io-engine uses reservations only when the request asks for them in some way."""
        return self.key != 0 or self.preempt_key != 0 or self.policy != ARG_KEY


def of_row(row) -> Reservation:
    """The reservation a nexus row was created with (checked when it was recorded)."""
    return Reservation(row.resv_key or 0, row.preempt_key or 0, row.resv_type, row.preempt_policy or ARG_KEY)
