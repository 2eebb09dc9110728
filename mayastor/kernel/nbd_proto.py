"""NBD fixed-newstyle handshake (NetworkBlockDevice/nbd doc/proto.md), client side.

The kernel only speaks the transmission phase: userspace negotiates with NBD_OPT_GO, then hands the
connected socket to the kernel. Pure socket work, so it is tested on the host against nbdkit.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from urllib.parse import unquote

NBDMAGIC = b"NBDMAGIC"
IHAVEOPT = b"IHAVEOPT"
REPLY_MAGIC = 0x3E889045565A9

FLAG_FIXED_NEWSTYLE = 1 << 0
FLAG_NO_ZEROES = 1 << 1

OPT_EXPORT_NAME = 1
OPT_ABORT = 2
OPT_LIST = 3
OPT_INFO = 6
OPT_GO = 7

REP_ACK = 1
REP_SERVER = 2
REP_INFO = 3
REP_FLAG_ERROR = 1 << 31
REP_ERRORS = {
    REP_FLAG_ERROR | 1: "unsupported option",
    REP_FLAG_ERROR | 2: "policy: access denied",
    REP_FLAG_ERROR | 3: "invalid option",
    REP_FLAG_ERROR | 4: "platform",
    REP_FLAG_ERROR | 5: "TLS required",
    REP_FLAG_ERROR | 6: "unknown export",
    REP_FLAG_ERROR | 7: "server shutting down",
    REP_FLAG_ERROR | 8: "block size required",
    REP_FLAG_ERROR | 9: "too big",
}

INFO_EXPORT = 0
INFO_BLOCK_SIZE = 3

# transmission flags
TF_HAS_FLAGS = 1 << 0
TF_READ_ONLY = 1 << 1
TF_SEND_FLUSH = 1 << 2
TF_SEND_FUA = 1 << 3
TF_SEND_TRIM = 1 << 5
TF_CAN_MULTI_CONN = 1 << 8


class NbdProtocolError(Exception):
    pass


@dataclass(frozen=True)
class ExportInfo:
    size: int
    flags: int
    min_block: int = 512
    preferred_block: int = 4096
    max_block: int = 32 * 1024 * 1024

    @property
    def read_only(self) -> bool:
        return bool(self.flags & TF_READ_ONLY)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise NbdProtocolError(f"server closed the connection (wanted {n - len(buf)} more bytes)")
        buf += chunk
    return bytes(buf)


def negotiate(sock: socket.socket, export_name: str = "") -> ExportInfo:
    """Run the fixed-newstyle handshake with NBD_OPT_GO; the socket is then in transmission phase."""
    name = export_name.encode()
    if len(name) > 4096:
        raise ValueError("export name longer than 4096 bytes")
    hello = _recv_exact(sock, 18)
    if hello[:8] != NBDMAGIC:
        raise NbdProtocolError("not an NBD server (bad magic)")
    if hello[8:16] != IHAVEOPT:
        raise NbdProtocolError("server speaks oldstyle NBD only; newstyle is required")
    (hflags,) = struct.unpack(">H", hello[16:18])
    if not hflags & FLAG_FIXED_NEWSTYLE:
        raise NbdProtocolError("server does not support fixed newstyle negotiation")
    cflags = FLAG_FIXED_NEWSTYLE | (hflags & FLAG_NO_ZEROES)
    sock.sendall(struct.pack(">I", cflags))
    # NBD_OPT_GO data: u32 name length, name, u16 number of info requests, requests
    data = struct.pack(">I", len(name)) + name + struct.pack(">HH", 1, INFO_BLOCK_SIZE)
    sock.sendall(IHAVEOPT + struct.pack(">II", OPT_GO, len(data)) + data)
    export: tuple[int, int] | None = None  # size, transmission flags
    blocks = (512, 4096, 32 * 1024 * 1024)
    while True:
        magic, _opt, rtype, length = struct.unpack(">QIII", _recv_exact(sock, 20))
        if magic != REPLY_MAGIC:
            raise NbdProtocolError(f"bad option reply magic {magic:#x}")
        payload = _recv_exact(sock, length) if length else b""
        if rtype & REP_FLAG_ERROR:
            text = REP_ERRORS.get(rtype, f"error {rtype & ~REP_FLAG_ERROR}")
            detail = payload.decode("utf-8", "replace")
            raise NbdProtocolError(f"export {export_name!r}: {text}" + (f": {detail}" if detail else ""))
        if rtype == REP_INFO and len(payload) >= 2:
            (itype,) = struct.unpack(">H", payload[:2])
            if itype == INFO_EXPORT:
                export = struct.unpack(">QH", payload[2:12])
            elif itype == INFO_BLOCK_SIZE:
                blocks = struct.unpack(">III", payload[2:14])
        elif rtype == REP_ACK:
            break
    if export is None:
        raise NbdProtocolError("server acknowledged NBD_OPT_GO without NBD_INFO_EXPORT")
    return ExportInfo(*export, *blocks)


@dataclass(frozen=True)
class NbdAddress:
    """``nbd://host[:port]/export`` or ``nbd+unix:///export?socket=/path``."""

    host: str | None
    port: int
    export: str
    unix_path: str | None = None

    def open(self, timeout: float = 10.0) -> socket.socket:
        if self.unix_path:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(self.unix_path)
        else:
            sock = socket.create_connection((self.host, self.port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


def handshake(addr: NbdAddress) -> tuple[socket.socket, ExportInfo]:
    """Connect and negotiate: the socket, ready for the kernel, and what the server exports. The
    socket is closed when either step fails (OSError, NbdProtocolError)."""
    sock = addr.open()
    try:
        return sock, negotiate(sock, addr.export)
    except BaseException:
        sock.close()
        raise


def parse_uri(uri: str) -> NbdAddress:
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(uri)
    export = unquote(parts.path[1:]) if parts.path.startswith("/") else unquote(parts.path)
    query = parse_qs(parts.query, strict_parsing=False)
    if parts.scheme == "nbd":
        unknown = set(query) - {"uuid"}
        if unknown:
            raise ValueError(f"unknown nbd URI parameters: {', '.join(sorted(unknown))}")
        if not parts.hostname:
            raise ValueError(f"nbd URI needs a host: {uri!r}")
        return NbdAddress(parts.hostname, parts.port or 10809, export)
    if parts.scheme == "nbd+unix":
        unknown = set(query) - {"socket", "uuid"}
        if unknown:
            raise ValueError(f"unknown nbd URI parameters: {', '.join(sorted(unknown))}")
        if "socket" not in query or parts.netloc:
            raise ValueError(f"nbd+unix URI needs ?socket=/path and no host: {uri!r}")
        return NbdAddress(None, 0, export, query["socket"][0])
    raise ValueError(f"not an nbd URI: {uri!r}")
