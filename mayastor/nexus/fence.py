"""Fencing through NVMe reservations: what a nexus does on each child that has them, as
io-engine does it (contract §6), so a new nexus of the same volume locks an old one out.

``take`` registers the nexus's key (REPLACE with IEKEY, which nvmet also accepts from a host
that is not registered yet), then by the preempt policy either acquires (ArgKey without a preempt
key), preempts the given key (ArgKey with one), or looks at who holds it and preempts that holder
(Holder); then checks that this host holds it (or, for the all-registrants types, is registered).
A child where that fails is not used.

``fenced`` tells, after a child's I/O failed, whether another host took the reservation: then
the nexus stops (io-engine shuts the nexus down and keeps the replica), never rebuilds onto it.

Only when ``NEXUS_NVMF_RESV_ENABLE`` is set (io-engine's switch; the chart sets it) and the
request asked for a reservation. A target without reservations (nvmet before 6.13, or a namespace
without ``resv_enable``) answers "invalid opcode/field": then nothing is done, as io-engine ignores
a child that does not support them.
"""

from __future__ import annotations

import errno
import logging
import os
import uuid as _uuid

from ..errors import FailedPrecondition
from ..kernel import nvme_pr
from ..kernel.errors import KernelError
from .reservation import EXCLUSIVE_ACCESS_ALL_REGS, HOLDER, WRITE_EXCLUSIVE_ALL_REGS, Reservation

log = logging.getLogger(__name__)

SHARED_TYPES = (WRITE_EXCLUSIVE_ALL_REGS, EXCLUSIVE_ACCESS_ALL_REGS)  # every registrant holds it


def enabled(resv: Reservation, env=os.environ) -> bool:
    return "NEXUS_NVMF_RESV_ENABLE" in env and resv.enabled


def hostid_bytes(hostid: str) -> bytes:
    return _uuid.UUID(hostid).bytes


def take(path: str, hostid: str, resv: Reservation, what: str) -> bool:
    """Take the reservation on the namespace at ``path``; False when the target has none.
    FailedPrecondition when it cannot be taken or is not ours afterwards."""
    me = hostid_bytes(hostid)
    try:
        with nvme_pr.Namespace(path) as ns:
            try:
                ns.register(resv.key, action=nvme_pr.REPLACE, iekey=True, cptpl=nvme_pr.CPTPL_CLEAR)
            except nvme_pr.NvmeStatusError as exc:
                if exc.unsupported:
                    log.info("%s: the target has no NVMe reservations; not fenced", what)
                    return False
                raise
            if resv.policy == HOLDER:
                _preempt_holder(ns, me, resv)
            else:
                status = ns.report()
                if not _holds(status, me, resv):  # else held already: re-opened after a restart
                    # nothing to preempt on a namespace nobody holds (a restarted target)
                    preempt = bool(resv.preempt_key) and status.holder() is not None
                    ns.acquire(
                        resv.key,
                        resv.type,
                        nvme_pr.PREEMPT if preempt else nvme_pr.ACQUIRE,
                        resv.preempt_key if preempt else 0,
                    )
            _check_holder(ns.report(), me, resv)
    except KernelError as exc:
        raise FailedPrecondition(f"{what}: cannot take the NVMe reservation: {exc}") from None
    log.info("%s: holds the NVMe reservation (key %#x, type %d)", what, resv.key, resv.type)
    return True


def _holds(status: nvme_pr.ReservationStatus, me: bytes, resv: Reservation) -> bool:
    holder = status.holder()
    return status.rtype == resv.type and holder is not None and (holder.hostid, holder.key) == (me, resv.key)


def _preempt_holder(ns: nvme_pr.Namespace, me: bytes, resv: Reservation) -> None:
    status = ns.report()
    holder = status.holder()
    if holder is None or status.rtype == 0:
        ns.acquire(resv.key, resv.type)
        return
    if _holds(status, me, resv):
        return
    if status.rtype not in SHARED_TYPES:
        ns.acquire(resv.key, resv.type, nvme_pr.PREEMPT, holder.key)
        if status.rtype != resv.type and holder.hostid == me:
            # we were the holder under our old key: the preempt dropped us, register again
            ns.register(resv.key, action=nvme_pr.REPLACE, iekey=True, cptpl=nvme_pr.CPTPL_CLEAR)
        ns.acquire(resv.key, resv.type)
        return
    if resv.type not in SHARED_TYPES:
        # from a type every registrant holds to a restricted one: release, then acquire
        ns.release(resv.key, status.rtype)
        ns.acquire(resv.key, resv.type)
    # else: registered under a shared type, which is all it takes


def _check_holder(status: nvme_pr.ReservationStatus, me: bytes, resv: Reservation) -> None:
    if status.rtype != resv.type and not (resv.type in SHARED_TYPES and status.rtype in SHARED_TYPES):
        raise KernelError(errno.EBUSY, "reservation check", f"reservation type is {status.rtype}, wanted {resv.type}")
    if resv.type in SHARED_TYPES:
        if not status.registered(me, resv.key):
            raise KernelError(errno.EBUSY, "reservation check", "this host is not registered with its key")
        return
    holder = status.holder()
    if holder is None:
        raise KernelError(errno.EBUSY, "reservation check", "nobody holds the reservation")
    if holder.key != resv.key or holder.hostid != me:
        raise KernelError(
            errno.EBUSY, "reservation check", f"held by host {holder.hostid.hex()} with key {holder.key:#x}"
        )


def fenced(path: str, hostid: str, resv: Reservation) -> bool:
    """After an I/O error on a child we had reserved: does another host hold the reservation now
    (a new nexus of the volume preempted us)? A target that is unreachable, or that lost every
    registration (a restarted replica node: nvmet keeps none through power loss), is not fenced:
    that child faults as any other and registers again when it is brought back."""
    me = hostid_bytes(hostid)
    try:
        with nvme_pr.Namespace(path) as ns:
            status = ns.report()
    except KernelError:
        return False
    if status.rtype == 0:
        return False
    if resv.type in SHARED_TYPES and status.rtype in SHARED_TYPES:
        return not status.registered(me, resv.key)
    holder = status.holder()
    return holder is not None and (holder.hostid != me or holder.key != resv.key)
