"""The kernel NVMe-oF host: connect by writing /dev/nvme-fabrics, find namespaces, disconnect.

A connect writes one option string and reads the *same* fd back for ``instance=N,cntlid=M``.
Failure reasons are only in the kernel log ("Connect for subsystem ... is not allowed", ...).
"""

from __future__ import annotations

import errno
import os
import re
import time
import uuid as _uuid
from dataclasses import dataclass

from .errors import KernelError, NotSupportedError
from .kmsg import KmsgCursor

FABRICS = "/dev/nvme-fabrics"
SYS_NVME = "/sys/class/nvme"
SYS_SUBSYS = "/sys/class/nvme-subsystem"
SYS_BLOCK = "/sys/block"
HOSTNQN_FILE = "/etc/nvme/hostnqn"
HOSTID_FILE = "/etc/nvme/hostid"
UUID_NQN_PREFIX = "nqn.2014-08.org.nvmexpress:uuid:"


class FabricsError(KernelError):
    pass


class AlreadyConnectedError(FabricsError):
    """EALREADY: a controller to the same subsystem/address/host exists."""


# identity ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class HostIdentity:
    hostnqn: str
    hostid: str

    @classmethod
    def generate(cls) -> HostIdentity:
        hostid = str(_uuid.uuid4())
        return cls(UUID_NQN_PREFIX + hostid, hostid)

    @classmethod
    def load_or_create(cls, nqn_file: str = HOSTNQN_FILE, id_file: str = HOSTID_FILE) -> HostIdentity:
        """Read nvme-cli's files; create both (paired) when missing so the identity survives restarts."""
        try:
            with open(nqn_file) as f:
                nqn = f.read().strip()
            with open(id_file) as f:
                hostid = f.read().strip()
            if nqn and hostid:
                return cls(nqn, hostid)
        except FileNotFoundError:
            pass
        ident = cls.generate()
        os.makedirs(os.path.dirname(nqn_file), exist_ok=True)
        for path, value in ((nqn_file, ident.hostnqn), (id_file, ident.hostid)):
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                f.write(value + "\n")
            os.replace(tmp, path)
        return ident


# connect ------------------------------------------------------------------------------------
_SAFE = re.compile(r"[^,=\s\0]+")


@dataclass
class ConnectOptions:
    nqn: str
    traddr: str
    trsvcid: int | str = 4420
    transport: str = "tcp"
    hostnqn: str | None = None
    hostid: str | None = None
    nr_io_queues: int | None = None
    queue_size: int | None = None
    keep_alive_tmo: int | None = None
    reconnect_delay: int | None = None
    ctrl_loss_tmo: int | None = None
    fast_io_fail_tmo: int | None = None
    host_traddr: str | None = None
    duplicate_connect: bool = False
    hdr_digest: bool = False
    data_digest: bool = False

    def option_string(self) -> str:
        """The comma-separated string written to /dev/nvme-fabrics (values validated, no injection)."""
        if (self.hostnqn is None) != (self.hostid is None):
            raise ValueError("hostnqn and hostid must be given together")
        pairs: list[tuple[str, object]] = [
            ("transport", self.transport),
            ("traddr", self.traddr),
            ("trsvcid", self.trsvcid),
            ("nqn", self.nqn),
        ]
        for key in (
            "hostnqn",
            "hostid",
            "nr_io_queues",
            "queue_size",
            "keep_alive_tmo",
            "reconnect_delay",
            "ctrl_loss_tmo",
            "fast_io_fail_tmo",
            "host_traddr",
        ):
            value = getattr(self, key)
            if value is not None:
                pairs.append((key, value))
        parts = []
        for key, value in pairs:
            text = str(value)
            if not _SAFE.fullmatch(text):
                raise ValueError(f"invalid value for {key}: {text!r}")
            parts.append(f"{key}={text}")
        for flag in ("duplicate_connect", "hdr_digest", "data_digest"):
            if getattr(self, flag):
                parts.append(flag)
        return ",".join(parts)


def parse_connect_reply(text: str) -> dict[str, int]:
    """``instance=0,cntlid=1`` -> {'instance': 0, 'cntlid': 1}."""
    out = {}
    for item in text.strip().strip("\0").split(","):
        if "=" in item:
            k, v = item.split("=", 1)
            out[k.strip()] = int(v.strip())
    if "instance" not in out:
        raise ValueError(f"unexpected connect reply {text!r}")
    return out


def parse_address(text: str) -> dict[str, str]:
    """sysfs ``address``: ``traddr=127.0.0.1,trsvcid=4420[,src_addr=...]``."""
    out = {}
    for item in text.strip().split(","):
        if "=" in item:
            k, v = item.split("=", 1)
            out[k] = v
    return out


def parse_wwid(wwid: str) -> tuple[str, str]:
    """Split a namespace wwid into (kind, value): uuid.<uuid>, eui.<hex>, or nvme.<...>."""
    kind, _, value = wwid.strip().partition(".")
    return kind, value


@dataclass(frozen=True)
class Controller:
    instance: int
    cntlid: int

    @property
    def name(self) -> str:
        return f"nvme{self.instance}"

    @property
    def sysfs(self) -> str:
        return os.path.join(SYS_NVME, self.name)

    def attr(self, name: str) -> str:
        with open(os.path.join(self.sysfs, name)) as f:
            return f.read().strip()

    @property
    def state(self) -> str:
        return self.attr("state")

    @property
    def subsysnqn(self) -> str:
        return self.attr("subsysnqn")

    @property
    def address(self) -> dict[str, str]:
        return parse_address(self.attr("address"))

    @property
    def exists(self) -> bool:
        return os.path.isdir(self.sysfs)


def connect(opts: ConnectOptions) -> Controller:
    text = opts.option_string()
    try:
        fd = os.open(FABRICS, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotSupportedError("nvme connect", f"{FABRICS} missing; run: modprobe nvme-tcp", FABRICS) from None
    cursor = KmsgCursor()
    try:
        try:
            os.write(fd, text.encode())
            reply = os.read(fd, 4096).decode()
        except OSError as exc:
            reason = cursor.reason("nvme", "nvmet")
            err = exc.errno or errno.EIO
            what = f"nvme connect to {opts.nqn} at {opts.traddr}:{opts.trsvcid}"
            if err == errno.EALREADY:
                existing = find_controllers(opts.nqn, opts.traddr, str(opts.trsvcid), opts.hostnqn)
                names = ", ".join(c.name for c in existing) or "unknown"
                raise AlreadyConnectedError(err, what, reason or f"already connected as {names}", opts.nqn) from None
            raise FabricsError(err, what, reason, opts.nqn) from None
    finally:
        cursor.close()
        os.close(fd)
    info = parse_connect_reply(reply)
    return Controller(info["instance"], info.get("cntlid", 0))


def disconnect(ctrl: Controller | str) -> None:
    name = ctrl.name if isinstance(ctrl, Controller) else ctrl
    if not re.fullmatch(r"nvme\d+", name):
        raise ValueError(f"invalid controller name {name!r}")
    path = os.path.join(SYS_NVME, name, "delete_controller")
    try:
        with open(path, "w") as f:
            f.write("1")
    except FileNotFoundError:
        return  # already gone: disconnect is idempotent


def list_controllers() -> list[Controller]:
    out: list[Controller] = []
    if not os.path.isdir(SYS_NVME):
        return out
    for name in os.listdir(SYS_NVME):
        m = re.fullmatch(r"nvme(\d+)", name)
        if not m:
            continue
        c = Controller(int(m.group(1)), 0)
        try:
            out.append(Controller(c.instance, int(c.attr("cntlid"))))
        except (FileNotFoundError, ValueError):
            continue  # being deleted
    return sorted(out, key=lambda c: c.instance)


def find_controllers(
    nqn: str, traddr: str | None = None, trsvcid: str | None = None, hostnqn: str | None = None
) -> list[Controller]:
    found = []
    for c in list_controllers():
        try:
            if c.subsysnqn != nqn:
                continue
            addr = c.address
            if traddr and addr.get("traddr") != traddr:
                continue
            if trsvcid and addr.get("trsvcid") != str(trsvcid):
                continue
            if hostnqn and c.attr("hostnqn") != hostnqn:
                continue
        except FileNotFoundError:
            continue
        found.append(c)
    return found


def multipath_enabled() -> bool:
    try:
        with open("/sys/module/nvme_core/parameters/multipath") as f:
            return f.read().strip() in ("Y", "1")
    except FileNotFoundError:
        return False


@dataclass(frozen=True)
class NamespaceDevice:
    name: str  # e.g. nvme0n1 (the head node when multipath is on)
    nsid: int
    uuid: str | None
    wwid: str

    @property
    def path(self) -> str:
        return f"/dev/{self.name}"


def _ns_attr(name: str, attr: str) -> str | None:
    try:
        with open(os.path.join(SYS_BLOCK, name, attr)) as f:
            return f.read().strip()
    except (FileNotFoundError, OSError):
        return None


def list_namespaces() -> list[NamespaceDevice]:
    out: list[NamespaceDevice] = []
    if not os.path.isdir(SYS_BLOCK):
        return out
    for name in sorted(os.listdir(SYS_BLOCK)):
        if not re.fullmatch(r"nvme\d+n\d+", name):  # skip hidden per-path nvmeXcYnZ nodes
            continue
        wwid = _ns_attr(name, "wwid") or ""
        nsid = _ns_attr(name, "nsid")
        out.append(NamespaceDevice(name, int(nsid) if nsid else 0, _ns_attr(name, "uuid"), wwid))
    return out


def find_namespace(ns_uuid: str, hostnqn: str | None = None) -> NamespaceDevice | None:
    """The namespace with ``ns_uuid``; with ``hostnqn``, seen through a controller of that host
    (with multipath off every controller has its own node, and one kernel may connect as several
    hosts; a multipath head belongs to the subsystem, not to a host, and always matches)."""
    want = str(_uuid.UUID(ns_uuid))
    for ns in list_namespaces():
        kind, value = parse_wwid(ns.wwid)
        if not ((ns.uuid and ns.uuid == want) or (kind == "uuid" and value == want)):
            continue
        seen_as = _ns_attr(ns.name, "device/hostnqn")
        if hostnqn is None or seen_as is None or seen_as == hostnqn:
            return ns
    return None


def wait_for_namespace(ns_uuid: str, timeout: float = 10.0, hostnqn: str | None = None) -> NamespaceDevice:
    """The block device of the namespace with ``ns_uuid``, once the host's scan has created it."""
    deadline = time.monotonic() + timeout
    while True:
        ns = find_namespace(ns_uuid, hostnqn)
        if ns is not None and os.path.exists(ns.path):
            return ns
        if time.monotonic() > deadline:
            raise FabricsError(
                errno.ETIMEDOUT, f"wait for namespace {ns_uuid}", "no block device with that uuid appeared", ns_uuid
            )
        time.sleep(0.05)


def subsysnqn_of(block_name: str) -> str | None:
    """The subsystem NQN of a namespace block device (``device`` is its controller, or with
    native multipath its subsystem; both carry ``subsysnqn``), None for other devices."""
    if not re.fullmatch(r"nvme\d+(c\d+)?n\d+", block_name):
        return None
    return _ns_attr(block_name, "device/subsysnqn")


def namespaces_of(nqn: str) -> list[NamespaceDevice]:
    return [ns for ns in list_namespaces() if subsysnqn_of(ns.name) == nqn]


def wait_for_subsystem_namespace(nqn: str, timeout: float = 10.0) -> NamespaceDevice:
    """The (first) namespace block device of subsystem ``nqn`` once the host's scan made it."""
    deadline = time.monotonic() + timeout
    while True:
        found = [ns for ns in namespaces_of(nqn) if os.path.exists(ns.path)]
        if found:
            return min(found, key=lambda ns: ns.nsid)
        if time.monotonic() > deadline:
            raise FabricsError(
                errno.ETIMEDOUT, f"wait for a namespace of {nqn}", "no block device of that subsystem appeared", nqn
            )
        time.sleep(0.05)


def rescan(ctrl: Controller) -> None:
    """Ask the host to re-read the controller's namespaces (sizes included)."""
    try:
        with open(os.path.join(ctrl.sysfs, "rescan_controller"), "w") as f:
            f.write("1")
    except FileNotFoundError:
        pass  # controller gone meanwhile
