"""NVMe persistent reservations on a namespace block device, through NVMe passthrough
(``NVME_IOCTL_IO_CMD``): Register, Acquire, Release and Report with the extended data structure.

The block layer's generic PR ioctls cannot set IEKEY on a register nor read the holder's host id,
and io-engine's fencing needs both, hence passthrough. The ioctl returns the NVMe status of the
command (positive), or fails with an errno; a status comes back as :class:`NvmeStatusError`.
Only the nvme host driver answers these: other devices fail with ENOTTY.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import struct
from dataclasses import dataclass

from .errors import KernelError

# <linux/nvme_ioctl.h>: struct nvme_passthru_cmd (72 bytes)
_PASSTHRU = struct.Struct("=BBHIIIQQII6III")
NVME_IOCTL_ID = 0x4E40  # _IO('N', 0x40): the namespace id of the fd
NVME_IOCTL_IO_CMD = 0xC0484E43  # _IOWR('N', 0x43, struct nvme_passthru_cmd)

OP_REGISTER, OP_REPORT, OP_ACQUIRE, OP_RELEASE = 0x0D, 0x0E, 0x11, 0x15
# Register actions (RREGA), Acquire actions (RACQA), Release actions (RRELA)
REGISTER, UNREGISTER, REPLACE = 0, 1, 2
ACQUIRE, PREEMPT, PREEMPT_ABORT = 0, 1, 2
RELEASE, CLEAR = 0, 1
CPTPL_NO_CHANGE, CPTPL_CLEAR, CPTPL_PERSIST = 0, 2, 3

# status codes (generic command status, SCT 0)
SC_INVALID_OPCODE = 0x01
SC_INVALID_FIELD = 0x02
SC_RESERVATION_CONFLICT = 0x83
REPORT_BYTES = 4096
_HEADER_EXT = 64  # Reservation Status header with EDS=1
_REGISTRANT_EXT = 64


class NvmeStatusError(KernelError):
    """The device completed the command with an NVMe error status."""

    def __init__(self, status: int, operation: str, target: str):
        self.status = status
        self.sc, self.sct = status & 0xFF, (status >> 8) & 0x7
        err = errno.EBADE if self.conflict else errno.EOPNOTSUPP if self.unsupported else errno.EIO
        super().__init__(err, operation, f"NVMe status {status:#x} ({describe(status)})", target)

    @property
    def conflict(self) -> bool:
        return self.sct == 0 and self.sc == SC_RESERVATION_CONFLICT

    @property
    def unsupported(self) -> bool:
        """The target has no reservations (nvmet before 6.13, or ``resv_enable`` off)."""
        return self.sct == 0 and self.sc in (SC_INVALID_OPCODE, SC_INVALID_FIELD)


def describe(status: int) -> str:
    sc, sct = status & 0xFF, (status >> 8) & 0x7
    if sct == 0:
        return {
            SC_INVALID_OPCODE: "invalid opcode",
            SC_INVALID_FIELD: "invalid field",
            SC_RESERVATION_CONFLICT: "reservation conflict",
        }.get(sc, f"generic status {sc:#x}")
    return f"status type {sct}, code {sc:#x}"


@dataclass(frozen=True)
class Registrant:
    cntlid: int
    holder: bool
    hostid: bytes  # 16 bytes (the connect's host id)
    key: int


@dataclass(frozen=True)
class ReservationStatus:
    generation: int
    rtype: int  # 0: none; 1..6 as NvmeReservation
    ptpls: int
    registrants: tuple[Registrant, ...]

    def holder(self) -> Registrant | None:
        return next((r for r in self.registrants if r.holder), None)

    def registered(self, hostid: bytes, key: int) -> bool:
        return any(r.hostid == hostid and r.key == key for r in self.registrants)


def encode_command(opcode: int, nsid: int, addr: int, data_len: int, cdw10: int, cdw11: int = 0) -> bytearray:
    return bytearray(_PASSTHRU.pack(opcode, 0, 0, nsid, 0, 0, 0, addr, 0, data_len, cdw10, cdw11, 0, 0, 0, 0, 0, 0))


def register_cdw10(action: int, iekey: bool, cptpl: int = CPTPL_NO_CHANGE) -> int:
    return (action & 7) | (int(iekey) << 3) | ((cptpl & 3) << 30)


def acquire_cdw10(action: int, rtype: int, iekey: bool = False) -> int:
    return (action & 7) | (int(iekey) << 3) | ((rtype & 0xFF) << 8)


def parse_report(data: bytes) -> ReservationStatus:
    """The extended Reservation Status data structure (EDS=1): a 64-byte header, then 64 bytes per
    registrant (cntlid, status, key, 128-bit host id)."""
    gen, rtype, regctl = struct.unpack_from("<IBH", data, 0)
    ptpls = data[9]
    count = min(regctl, (len(data) - _HEADER_EXT) // _REGISTRANT_EXT)
    regs = []
    for i in range(count):
        off = _HEADER_EXT + i * _REGISTRANT_EXT
        cntlid, rcsts = struct.unpack_from("<HB", data, off)
        (key,) = struct.unpack_from("<Q", data, off + 8)
        regs.append(Registrant(cntlid, bool(rcsts & 1), bytes(data[off + 16 : off + 32]), key))
    return ReservationStatus(gen, rtype, ptpls, tuple(regs))


class Namespace:
    """An open namespace block device (``/dev/nvmeXnY``)."""

    def __init__(self, path: str):
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)  # passthrough needs no write access
        try:
            self.nsid = fcntl.ioctl(self.fd, NVME_IOCTL_ID)
        except OSError as exc:
            os.close(self.fd)
            raise KernelError(exc.errno or errno.ENOTTY, "NVME_IOCTL_ID", "not an NVMe namespace", path) from None

    def __enter__(self) -> Namespace:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _run(self, what: str, opcode: int, payload: bytearray, cdw10: int, cdw11: int = 0) -> None:
        """Submit one command; the kernel reads or fills ``payload`` in place."""
        cbuf = (ctypes.c_char * len(payload)).from_buffer(payload)  # pinned while it is exported
        cmd = encode_command(opcode, self.nsid, ctypes.addressof(cbuf), len(payload), cdw10, cdw11)
        try:
            status = fcntl.ioctl(self.fd, NVME_IOCTL_IO_CMD, cmd, True)
        except OSError as exc:
            raise KernelError(exc.errno or errno.EIO, f"NVMe {what}", "", self.path) from None
        finally:
            del cbuf
        if status:
            raise NvmeStatusError(status, f"NVMe {what}", self.path)

    def register(
        self,
        new_key: int,
        current_key: int = 0,
        action: int = REGISTER,
        iekey: bool = False,
        cptpl: int = CPTPL_NO_CHANGE,
    ) -> None:
        self._run(
            "reservation register",
            OP_REGISTER,
            bytearray(struct.pack("<QQ", current_key, new_key)),
            register_cdw10(action, iekey, cptpl),
        )

    def acquire(self, key: int, rtype: int, action: int = ACQUIRE, preempt_key: int = 0) -> None:
        self._run(
            "reservation acquire",
            OP_ACQUIRE,
            bytearray(struct.pack("<QQ", key, preempt_key)),
            acquire_cdw10(action, rtype),
        )

    def release(self, key: int, rtype: int, action: int = RELEASE) -> None:
        self._run("reservation release", OP_RELEASE, bytearray(struct.pack("<Q", key)), acquire_cdw10(action, rtype))

    def report(self) -> ReservationStatus:
        buf = bytearray(REPORT_BYTES)
        self._run("reservation report", OP_REPORT, buf, REPORT_BYTES // 4 - 1, 1)  # NUMD, EDS=1
        return parse_report(bytes(buf))
