"""Kernel nbd client over generic netlink (family "nbd"): connect, disconnect, status.

Userspace runs the handshake (nbd_proto), then passes the socket fd in NBD_CMD_CONNECT; the kernel
keeps its own reference, so our copy is closed afterwards. Netlink needs CAP_SYS_ADMIN.
"""

from __future__ import annotations

import errno
import time

from pyroute2.netlink import NLM_F_ACK, NLM_F_REQUEST, genlmsg, nla
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.generic import GenericNetlinkSocket

from .errors import KernelError, NotSupportedError
from .kmsg import KmsgCursor
from .nbd_proto import ExportInfo, NbdAddress, handshake, parse_uri
from .nbd_sysfs import NbdDevice, is_connected

NBD_CMD_CONNECT = 1
NBD_CMD_DISCONNECT = 2
NBD_CMD_RECONFIGURE = 3
NBD_CMD_LINK_DEAD = 4
NBD_CMD_STATUS = 5

NBD_CFLAG_DESTROY_ON_DISCONNECT = 1
NBD_CFLAG_DISCONNECT_ON_CLOSE = 2


class nbdmsg(genlmsg):
    """NBD_ATTR_* layout from include/uapi/linux/nbd-netlink.h."""

    prefix = "NBD_ATTR_"
    nla_map = (
        ("NBD_ATTR_UNSPEC", "none"),
        ("NBD_ATTR_INDEX", "uint32"),
        ("NBD_ATTR_SIZE_BYTES", "uint64"),
        ("NBD_ATTR_BLOCK_SIZE_BYTES", "uint64"),
        ("NBD_ATTR_TIMEOUT", "uint64"),
        ("NBD_ATTR_SERVER_FLAGS", "uint64"),
        ("NBD_ATTR_CLIENT_FLAGS", "uint64"),
        ("NBD_ATTR_SOCKETS", "sockets"),
        ("NBD_ATTR_DEAD_CONN_TIMEOUT", "uint64"),
        ("NBD_ATTR_DEVICE_LIST", "device_list"),
        ("NBD_ATTR_BACKEND_IDENTIFIER", "asciiz"),
    )

    class sockets(nla):
        nla_flags = 0x8000  # NLA_F_NESTED
        nla_map = (("NBD_SOCK_ITEM_UNSPEC", "none"), ("NBD_SOCK_ITEM", "sock_item"))

        class sock_item(nla):
            nla_flags = 0x8000
            nla_map = (("NBD_SOCK_UNSPEC", "none"), ("NBD_SOCK_FD", "uint32"))

    class device_list(nla):
        nla_flags = 0x8000
        nla_map = (("NBD_DEVICE_ITEM_UNSPEC", "none"), ("NBD_DEVICE_ITEM", "device_item"))

        class device_item(nla):
            nla_flags = 0x8000
            nla_map = (("NBD_DEVICE_UNSPEC", "none"), ("NBD_DEVICE_INDEX", "uint32"), ("NBD_DEVICE_CONNECTED", "uint8"))


class NbdError(KernelError):
    pass


def _open() -> GenericNetlinkSocket:
    sock = GenericNetlinkSocket()
    try:
        sock.bind("nbd", nbdmsg)
    except NetlinkError as exc:
        sock.close()
        if exc.code == errno.ENOENT:
            raise NotSupportedError("nbd netlink", "generic netlink family 'nbd' missing; run: modprobe nbd") from None
        raise
    return sock


def _request(cmd: int, attrs: list, what: str, target: str = "") -> list:
    sock = _open()
    cursor = KmsgCursor()
    try:
        msg = nbdmsg()
        msg["cmd"] = cmd
        msg["version"] = 1
        msg["attrs"] = attrs
        return list(sock.nlm_request(msg, msg_type=sock.prid, msg_flags=NLM_F_REQUEST | NLM_F_ACK))
    except NetlinkError as exc:
        raise NbdError(exc.code, what, cursor.reason("nbd"), target) from None
    finally:
        cursor.close()
        sock.close()


def connect(
    uri: str | NbdAddress,
    index: int | None = None,
    timeout: int = 30,
    dead_conn_timeout: int | None = None,
    backend: str | None = None,
) -> NbdDevice:
    """Handshake with the server, then attach the socket to /dev/nbdN (kernel-chosen if index is None)."""
    sock, info = handshake(parse_uri(uri) if isinstance(uri, str) else uri)
    return attach(sock, info, str(uri), index, timeout, dead_conn_timeout, backend)


def attach(
    sock,
    info: ExportInfo,
    uri: str,
    index: int | None = None,
    timeout: int = 30,
    dead_conn_timeout: int | None = None,
    backend: str | None = None,
) -> NbdDevice:
    """Hand a socket that has done the handshake to the kernel as /dev/nbdN; the socket is
    closed here (the kernel holds its own reference)."""
    try:
        sock.settimeout(None)  # the kernel expects a blocking socket
        attrs: list = [
            ("NBD_ATTR_SIZE_BYTES", info.size),
            ("NBD_ATTR_BLOCK_SIZE_BYTES", max(512, min(info.preferred_block, 4096))),
            ("NBD_ATTR_SERVER_FLAGS", info.flags),
            ("NBD_ATTR_TIMEOUT", timeout),
            ("NBD_ATTR_SOCKETS", {"attrs": [("NBD_SOCK_ITEM", {"attrs": [("NBD_SOCK_FD", sock.fileno())]})]}),
        ]
        if index is not None:
            attrs.insert(0, ("NBD_ATTR_INDEX", index))
        if dead_conn_timeout is not None:
            attrs.append(("NBD_ATTR_DEAD_CONN_TIMEOUT", dead_conn_timeout))
        if backend:
            attrs.append(("NBD_ATTR_BACKEND_IDENTIFIER", backend))
        replies = _request(NBD_CMD_CONNECT, attrs, "nbd connect", uri)
    finally:
        sock.close()
    got = index
    for r in replies:
        val = r.get_attr("NBD_ATTR_INDEX")
        if val is not None:
            got = val
    if got is None:
        raise NbdError(errno.EIO, "nbd connect", "kernel reply carried no device index", uri)
    dev = NbdDevice(got, info)
    _wait_size(dev, info.size)
    return dev


def _wait_size(dev: NbdDevice, size: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/sys/block/{dev.name}/size") as f:
                if int(f.read()) * 512 == size:
                    return
        except FileNotFoundError:
            pass
        time.sleep(0.02)


def disconnect(dev: NbdDevice | int, timeout: float = 10.0) -> None:
    """Disconnect and wait until the socket is gone (the sysfs pid file goes with the last
    config reference). Teardown is asynchronous, so the wait matters."""
    index = dev.index if isinstance(dev, NbdDevice) else dev
    _request(NBD_CMD_DISCONNECT, [("NBD_ATTR_INDEX", index)], "nbd disconnect", f"nbd{index}")
    deadline = time.monotonic() + timeout
    while is_connected(index):
        if time.monotonic() > deadline:
            raise NbdError(errno.ETIMEDOUT, "nbd disconnect", "device still configured", f"nbd{index}")
        time.sleep(0.02)


def status(index: int | None = None) -> dict[int, bool]:
    """{index: config held} for one device or all of them, as NBD_CMD_STATUS reports it.

    The kernel counts any opener (udev probing a device that was just disconnected) as a
    config reference, so True here can mean "open", not "has a socket": use is_connected()
    to ask whether a server is attached."""
    attrs = [("NBD_ATTR_INDEX", index)] if index is not None else []
    out: dict[int, bool] = {}
    for r in _request(NBD_CMD_STATUS, attrs, "nbd status"):
        dl = r.get_attr("NBD_ATTR_DEVICE_LIST")
        if dl is None:
            continue
        for item in dl.get_attrs("NBD_DEVICE_ITEM"):
            out[item.get_attr("NBD_DEVICE_INDEX")] = bool(item.get_attr("NBD_DEVICE_CONNECTED"))
    return out
