"""A small client for the device-mapper ioctl interface (/dev/mapper/control).

Layout follows include/uapi/linux/dm-ioctl.h (interface major version 4). `dmsetup` is the test
oracle, never the implementation. There is no udev in the test VM, so devices are addressed as
/dev/dm-N (minor N), found through sysfs.
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import struct
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from .errors import KernelError, NotSupportedError
from .kmsg import KmsgCursor

CONTROL = "/dev/mapper/control"

# struct dm_ioctl: version[3] data_size data_start target_count open_count flags event_nr padding dev name uuid data
_HDR = struct.Struct("<3IIIIiIIIQ128s129s7s")
HEADER_SIZE = _HDR.size  # 312
_SPEC = struct.Struct("<QQiI16s")  # dm_target_spec: sector_start length status next target_type
NAME_LEN = 128
UUID_LEN = 129
TYPE_NAME_LEN = 16

# commands (enum in dm-ioctl.h)
VERSION, REMOVE_ALL, LIST_DEVICES = 0, 1, 2
DEV_CREATE, DEV_REMOVE, DEV_RENAME, DEV_SUSPEND, DEV_STATUS, DEV_WAIT = 3, 4, 5, 6, 7, 8
TABLE_LOAD, TABLE_CLEAR, TABLE_DEPS, TABLE_STATUS = 9, 10, 11, 12
LIST_VERSIONS, TARGET_MSG, DEV_SET_GEOMETRY, DEV_ARM_POLL, GET_TARGET_VERSION = 13, 14, 15, 16, 17

# flags
READONLY_FLAG = 1 << 0
SUSPEND_FLAG = 1 << 1
PERSISTENT_DEV_FLAG = 1 << 3
STATUS_TABLE_FLAG = 1 << 4
ACTIVE_PRESENT_FLAG = 1 << 5
INACTIVE_PRESENT_FLAG = 1 << 6
BUFFER_FULL_FLAG = 1 << 8
SKIP_LOCKFS_FLAG = 1 << 10
NOFLUSH_FLAG = 1 << 11
QUERY_INACTIVE_TABLE_FLAG = 1 << 12
UUID_FLAG = 1 << 14
DATA_OUT_FLAG = 1 << 16
DEFERRED_REMOVE = 1 << 17
NAME_LIST_FLAG_HAS_UUID = 1

_IOC_READWRITE = 3


def _request(cmd: int) -> int:
    return (_IOC_READWRITE << 30) | (HEADER_SIZE << 16) | (0xFD << 8) | cmd


_libc = ctypes.CDLL(None, use_errno=True)
_libc.ioctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)
_libc.ioctl.restype = ctypes.c_int


def _raw_ioctl(fd: int, request: int, buf: bytearray) -> None:
    """ioctl through ctypes, which drops the GIL: DM_DEV_WAIT blocks in the kernel for as long as
    it takes, and fcntl.ioctl with a mutable buffer would stall every other thread meanwhile."""
    cbuf = (ctypes.c_char * len(buf)).from_buffer(buf)
    if _libc.ioctl(fd, request, ctypes.addressof(cbuf)) < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _align8(n: int) -> int:
    return (n + 7) & ~7


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


class DmError(KernelError):
    """A device-mapper ioctl failed; ``reason`` holds the kernel's ``device-mapper:`` log line."""


@dataclass(frozen=True)
class Target:
    """One table line: ``start length type params`` (sectors of 512 bytes)."""

    start: int
    length: int
    type: str
    params: str

    def line(self) -> str:
        return f"{self.start} {self.length} {self.type} {self.params}".rstrip()

    @classmethod
    def parse(cls, line: str) -> Target:
        start, length, ttype, *rest = line.split(None, 3)
        return cls(int(start), int(length), ttype, rest[0] if rest else "")


@dataclass(frozen=True)
class DeviceInfo:
    name: str
    uuid: str
    major: int
    minor: int
    open_count: int
    event_nr: int
    target_count: int
    flags: int

    @property
    def suspended(self) -> bool:
        return bool(self.flags & SUSPEND_FLAG)

    @property
    def readonly(self) -> bool:
        return bool(self.flags & READONLY_FLAG)

    @property
    def active_table(self) -> bool:
        return bool(self.flags & ACTIVE_PRESENT_FLAG)

    @property
    def inactive_table(self) -> bool:
        return bool(self.flags & INACTIVE_PRESENT_FLAG)

    @property
    def devnum(self) -> str:
        return f"{self.major}:{self.minor}"

    @property
    def devnode(self) -> str:
        return f"/dev/dm-{self.minor}"


@dataclass(frozen=True)
class ListedDevice:
    name: str
    major: int
    minor: int
    uuid: str | None = None  # filled when the kernel reports it in the name list
    event_nr: int | None = None


@dataclass
class _Reply:
    header: tuple
    buf: bytearray
    info: DeviceInfo = field(init=False)

    def __post_init__(self) -> None:
        h = self.header
        dev = h[10]
        # kernel dev_t encoding (huge_encode_dev): minor low 8 bits | major << 8 | minor high bits << 12
        major = (dev >> 8) & 0xFFF
        minor = (dev & 0xFF) | ((dev >> 12) & 0xFFFFF00)
        self.info = DeviceInfo(_cstr(h[11]), _cstr(h[12]), major, minor, h[6], h[8], h[5], h[7])

    @property
    def data_start(self) -> int:
        return self.header[4]

    @property
    def data_size(self) -> int:
        return self.header[3]

    @property
    def flags(self) -> int:
        return self.header[7]


def _encode_dev(major: int, minor: int) -> int:
    return (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)


class DeviceMapper:
    """Open /dev/mapper/control once; each method is one ioctl."""

    def __init__(self, control: str = CONTROL):
        try:
            self._fd = os.open(control, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotSupportedError(
                "open device-mapper control", f"{control} missing; run: modprobe dm-mod", control
            ) from None

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> DeviceMapper:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def fileno(self) -> int:
        return self._fd

    # core -------------------------------------------------------------------------
    def _ioctl(
        self,
        cmd: int,
        name: str = "",
        uuid: str = "",
        flags: int = 0,
        event_nr: int = 0,
        payload: bytes = b"",
        target_count: int = 0,
        out_size: int = 16 * 1024,
        what: str = "",
    ) -> _Reply:
        _check_name(name)
        _check_uuid(uuid)
        size = HEADER_SIZE + max(len(payload), out_size)
        while True:
            buf = bytearray(size)
            _HDR.pack_into(
                buf,
                0,
                4,
                0,
                0,
                size,
                HEADER_SIZE,
                target_count,
                0,
                flags,
                event_nr,
                0,
                0,
                name.encode(),
                uuid.encode(),
                b"",
            )
            buf[HEADER_SIZE : HEADER_SIZE + len(payload)] = payload
            cursor = KmsgCursor()
            try:
                _raw_ioctl(self._fd, _request(cmd), buf)
            except OSError as exc:
                reason = cursor.reason("device-mapper")
                raise DmError(exc.errno or errno.EIO, what or f"dm ioctl {cmd}", reason, name or uuid) from None
            finally:
                cursor.close()
            reply = _Reply(_HDR.unpack_from(buf, 0), buf)
            if reply.flags & BUFFER_FULL_FLAG:
                size *= 4
                continue
            return reply

    # commands ---------------------------------------------------------------------
    def version(self) -> tuple[int, int, int]:
        h = self._ioctl(VERSION, what="dm version").header
        return h[0], h[1], h[2]

    def list_devices(self) -> list[ListedDevice]:
        reply = self._ioctl(LIST_DEVICES, flags=UUID_FLAG, what="dm list devices")  # UUID_FLAG: include uuids
        out: list[ListedDevice] = []
        pos = reply.data_start
        end = reply.data_size
        if end - pos < 12:
            return out
        while True:
            dev, nxt = struct.unpack_from("<QI", reply.buf, pos)
            if dev == 0 and nxt == 0 and not reply.buf[pos + 12]:
                break  # empty list: a zeroed record
            name_start = pos + 12
            name_end = reply.buf.index(0, name_start)
            name = reply.buf[name_start:name_end].decode()
            uuid = event_nr = None
            # Since interface 4.45 the record continues (8-aligned) with event_nr, flags, uuid.
            extra = _align8(name_end + 1)
            limit = pos + nxt if nxt else end
            if extra + 8 <= limit:
                event_nr, lflags = struct.unpack_from("<II", reply.buf, extra)
                if lflags & NAME_LIST_FLAG_HAS_UUID:
                    uuid = _cstr(bytes(reply.buf[extra + 8 : limit]))
            major = (dev >> 8) & 0xFFF
            minor = (dev & 0xFF) | ((dev >> 12) & 0xFFFFF00)
            out.append(ListedDevice(name, major, minor, uuid, event_nr))
            if not nxt:
                break
            pos += nxt
        return out

    def target_versions(self) -> dict[str, tuple[int, int, int]]:
        reply = self._ioctl(LIST_VERSIONS, what="dm list target versions")
        out = {}
        pos = reply.data_start
        while pos + 16 <= reply.data_size:
            nxt, a, b, c = struct.unpack_from("<4I", reply.buf, pos)
            name = _cstr(bytes(reply.buf[pos + 16 : pos + 16 + TYPE_NAME_LEN + 1]))
            out[name] = (a, b, c)
            if not nxt:
                break
            pos += nxt
        return out

    def create(self, name: str, uuid: str = "", readonly: bool = False) -> DeviceInfo:
        flags = READONLY_FLAG if readonly else 0
        return self._ioctl(DEV_CREATE, name=name, uuid=uuid, flags=flags, what="dm create").info

    def info(self, name: str = "", uuid: str = "") -> DeviceInfo:
        return self._ioctl(DEV_STATUS, name=name if not uuid else "", uuid=uuid, what="dm info").info

    def exists(self, name: str) -> bool:
        try:
            self.info(name)
            return True
        except DmError as exc:
            if exc.errno == errno.ENXIO:
                return False
            raise

    def load(self, name: str, targets: list[Target], readonly: bool = False) -> DeviceInfo:
        """Load a table into the inactive slot; it goes live at the next resume."""
        payload = bytearray()
        for t in targets:
            if len(t.type) >= TYPE_NAME_LEN:
                raise ValueError(f"target type too long: {t.type!r}")
            params = t.params.encode() + b"\0"
            size = _align8(_SPEC.size + len(params))
            spec = bytearray(size)
            _SPEC.pack_into(spec, 0, t.start, t.length, 0, size, t.type.encode())
            spec[_SPEC.size : _SPEC.size + len(params)] = params
            payload += spec
        flags = READONLY_FLAG if readonly else 0
        return self._ioctl(
            TABLE_LOAD,
            name=name,
            flags=flags,
            payload=bytes(payload),
            target_count=len(targets),
            out_size=0,
            what="dm load table",
        ).info

    def clear(self, name: str) -> DeviceInfo:
        """Drop the inactive table."""
        return self._ioctl(TABLE_CLEAR, name=name, what="dm clear table").info

    def suspend(self, name: str, noflush: bool = False, skip_lockfs: bool = False) -> DeviceInfo:
        flags = SUSPEND_FLAG | (NOFLUSH_FLAG if noflush else 0) | (SKIP_LOCKFS_FLAG if skip_lockfs else 0)
        return self._ioctl(DEV_SUSPEND, name=name, flags=flags, what="dm suspend").info

    def resume(self, name: str) -> DeviceInfo:
        """Resume; swaps in the inactive table if one was loaded."""
        return self._ioctl(DEV_SUSPEND, name=name, flags=0, what="dm resume").info

    def remove(self, name: str, deferred: bool = False) -> None:
        self._ioctl(DEV_REMOVE, name=name, flags=DEFERRED_REMOVE if deferred else 0, what="dm remove")

    def _targets(self, reply: _Reply) -> list[Target]:
        out = []
        pos = reply.data_start
        base = reply.data_start
        for _ in range(reply.info.target_count):
            start, length, _status, nxt, ttype = _SPEC.unpack_from(reply.buf, pos)
            params = _cstr(bytes(reply.buf[pos + _SPEC.size : reply.data_size]))
            out.append(Target(start, length, _cstr(ttype), params))
            pos = base + nxt  # on retrieval `next` is relative to the first spec
        return out

    def status(self, name: str, noflush: bool = False) -> list[Target]:
        """STATUSTYPE_INFO lines (``dmsetup status``). noflush: don't commit thin metadata first."""
        flags = NOFLUSH_FLAG if noflush else 0
        return self._targets(self._ioctl(TABLE_STATUS, name=name, flags=flags, what="dm status"))

    def table(self, name: str, inactive: bool = False) -> list[Target]:
        """STATUSTYPE_TABLE lines (``dmsetup table``): the canonical constructor line of each target."""
        flags = STATUS_TABLE_FLAG | (QUERY_INACTIVE_TABLE_FLAG if inactive else 0)
        return self._targets(self._ioctl(TABLE_STATUS, name=name, flags=flags, what="dm table"))

    def deps(self, name: str) -> list[tuple[int, int]]:
        reply = self._ioctl(TABLE_DEPS, name=name, what="dm deps")
        count = struct.unpack_from("<I", reply.buf, reply.data_start)[0]
        devs = struct.unpack_from(f"<{count}Q", reply.buf, reply.data_start + 8)
        return [((d >> 8) & 0xFFF, (d & 0xFF) | ((d >> 12) & 0xFFFFF00)) for d in devs]

    def message(self, name: str, message: str, sector: int = 0) -> str:
        """Send a target message (e.g. raid ``check``); returns the target's reply text, if any."""
        msg = message.encode() + b"\0"
        payload = struct.pack("<Q", sector) + msg
        reply = self._ioctl(TARGET_MSG, name=name, payload=payload, out_size=4096, what=f"dm message {message!r}")
        if reply.flags & DATA_OUT_FLAG:
            return _cstr(bytes(reply.buf[reply.data_start : reply.data_size]))
        return ""

    def wait(self, name: str, event_nr: int) -> DeviceInfo:
        """Block until the device's event counter moves past ``event_nr`` (DM_DEV_WAIT)."""
        return self._ioctl(DEV_WAIT, name=name, event_nr=event_nr, what="dm wait").info

    def arm_poll(self) -> None:
        """Arm the control fd: poll() on `fileno()` turns readable at the next event of any device."""
        self._ioctl(DEV_ARM_POLL, what="dm arm poll")

    def poll_event(self, timeout: float | None) -> bool:
        """After `arm_poll`, wait up to ``timeout`` seconds for any dm event; True if one arrived."""
        p = select.poll()
        p.register(self._fd, select.POLLIN)
        return bool(p.poll(None if timeout is None else int(timeout * 1000)))


def _check_name(name: str) -> None:
    if len(name.encode()) >= NAME_LEN or "/" in name or "\0" in name or name in (".", ".."):
        raise ValueError(f"invalid device-mapper name {name!r}")


def _check_uuid(uuid: str) -> None:
    if len(uuid.encode()) >= UUID_LEN or "\0" in uuid:
        raise ValueError(f"invalid device-mapper uuid {uuid!r}")


def devnode(minor: int) -> str:
    """Path of /dev/dm-<minor>, created with mknod when devtmpfs lacks it."""
    path = f"/dev/dm-{minor}"
    if not os.path.exists(path):
        with open(f"/sys/block/dm-{minor}/dev") as f:
            major, mnr = (int(x) for x in f.read().split(":"))
        os.mknod(path, 0o600 | 0o060000, os.makedev(major, mnr))
    return path


def name_of(minor: int) -> str:
    with open(f"/sys/block/dm-{minor}/dm/name") as f:
        return f.read().strip()


def xml_int_attr(el: ET.Element, name: str, tool: str) -> int:
    """An integer attribute of a metadata tool's XML (thin_dump, era_invalidate); ValueError
    naming the tool when it is missing."""
    value = el.get(name)
    if value is None:
        raise ValueError(f"{tool}: <{el.tag}> has no {name}")
    return int(value)


def run_on_metadata_snapshot(
    ctl: DeviceMapper, name: str, take: str, drop: str, argv: list[str]
) -> subprocess.CompletedProcess:
    """Run a metadata tool (thin_dump, era_invalidate) against a userspace-readable snapshot of a
    live target's metadata: ``take`` it (renewing one a killed daemon left held: EINVAL), run
    ``argv``, ``drop`` it again whatever happened."""
    try:
        ctl.message(name, take)
    except DmError as exc:
        if exc.errno != errno.EINVAL:
            raise
        ctl.message(name, drop)
        ctl.message(name, take)
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    finally:
        try:
            ctl.message(name, drop)
        except DmError:
            pass


def ensure(ctl: DeviceMapper, name: str, targets: list[Target], readonly: bool = False) -> DeviceInfo:
    """Create the device with this table, or make an existing one carry it (reload + resume)."""
    if not ctl.exists(name):
        ctl.create(name, uuid=name, readonly=readonly)
        try:
            ctl.load(name, targets, readonly=readonly)
            info = ctl.resume(name)
        except Exception:
            ctl.remove(name)
            raise
        devnode(info.minor)
        return info
    live = ctl.table(name)
    if [t.line() for t in live] != [t.line() for t in targets]:
        ctl.load(name, targets, readonly=readonly)
        ctl.suspend(name)
        ctl.resume(name)
    info = ctl.info(name)
    if info.suspended:
        info = ctl.resume(name)
    devnode(info.minor)
    return info


def remove(ctl: DeviceMapper, name: str) -> None:
    """Remove a device if present; a suspended one is resumed first (removal of a suspended device
    with queued I/O would hang)."""
    try:
        info = ctl.info(name)
    except DmError as exc:
        if exc.errno == errno.ENXIO:
            return
        raise
    if info.suspended:
        ctl.resume(name)
    ctl.remove(name)
