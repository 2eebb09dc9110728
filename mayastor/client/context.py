"""What every command gets: the gRPC stubs of the daemon at --bind, output format, units, verbosity.

Tables follow io-engine-client: columns padded to their widest cell and joined by one space,
headers starting with '>' right-aligned, no header (and no padding) with -q."""

from __future__ import annotations

import argparse
import json
import re
import sys

import grpc
from google.protobuf.json_format import MessageToDict

from ..grpc.stubs import Stubs
from ..netaddr import host_port

DEFAULT_PORT = 10124
_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
_DECIMAL = ("B", "KB", "MB", "GB", "TB", "PB", "EB")
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGTPE]?)(i?)(B?)\s*", re.IGNORECASE)


class UsageError(argparse.ArgumentTypeError):
    """Bad command-line input (exit status 2, like argparse's own errors)."""


def endpoint(bind: str) -> str:
    """host[:port] from -b (a URL or a bare host); the port defaults to 10124."""
    b = re.sub(r"^[a-z]+://", "", bind.strip()).rstrip("/")
    if not b:
        raise UsageError("empty --bind address")
    if b.startswith("["):  # [v6]:port or [v6]
        host, _, rest = b[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else str(DEFAULT_PORT)
        return host_port(host, port)
    if b.count(":") > 1:  # a bare IPv6 address
        return host_port(b, DEFAULT_PORT)
    host, _, port = b.partition(":")
    return host_port(host, port or DEFAULT_PORT)


def parse_size(text: str) -> int:
    """'64MiB', '1G', '100M', '4096' -> bytes (K/M/G... are binary unless written KB/MB/... as
    decimal, as io-engine-client's byte_unit reads them: '1GB' is 10^9, '1G' and '1GiB' 2^30)."""
    m = _SIZE.fullmatch(str(text))
    if m is None:
        raise UsageError(f"invalid size {text!r}: expected e.g. 4096, 64MiB, 1G")
    num, prefix, i, b = m.groups()
    power = "KMGTPE".find(prefix.upper()) + 1 if prefix else 0
    base = 1000 if (b and not i and prefix) else 1024
    value = float(num) * base**power
    if value != int(value):
        raise UsageError(f"invalid size {text!r}: not a whole number of bytes")
    return int(value)


def human(n: int, units: str) -> str:
    if units not in ("i", "d"):
        return str(n)
    base, names = (1024, _BINARY) if units == "i" else (1000, _DECIMAL)
    v, k = float(n), 0
    while v >= base and k < len(names) - 1:
        v /= base
        k += 1
    return f"{int(v)} B" if k == 0 else f"{v:.2f} {names[k]}"


def add_pool_choice(parser) -> None:
    """--pool-uuid | --pool-name, as io-engine-client takes them for destroy and wipe."""
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--pool-uuid")
    g.add_argument("--pool-name")


def set_pool(req, a) -> None:
    """Fill a request's ``oneof pool`` from --pool-uuid/--pool-name, when given."""
    if a.pool_uuid:
        req.pool_uuid = a.pool_uuid
    elif a.pool_name:
        req.pool_name = a.pool_name


class Context(Stubs):
    def __init__(
        self, bind: str, quiet: bool = False, verbose: int = 0, units: str = "b", output: str = "default", out=None
    ):
        self.target = endpoint(bind)
        self.verbosity = 0 if quiet else verbose + 1
        self.units_kind = units
        self.output = output
        self.out = out or sys.stdout
        super().__init__(grpc.insecure_channel(self.target))
        if self.verbosity > 1:
            self.say(f"Connecting to {self.target}")

    def close(self) -> None:
        self.channel.close()

    # output ----------------------------------------------------------------------------------
    def say(self, line: str) -> None:
        self.out.write(line + "\n")

    def v1(self, line: str) -> None:
        if self.verbosity > 0:
            self.say(line)

    def v2(self, line: str) -> None:
        if self.verbosity > 1:
            self.say(line)

    def units(self, n: int) -> str:
        return human(int(n), self.units_kind)

    @property
    def as_json(self) -> bool:
        return self.output == "json"

    @staticmethod
    def to_dict(message) -> dict:
        # as io-engine-client's serde prints prost structs: snake_case names, enums as numbers
        return MessageToDict(
            message,
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,
            use_integers_for_enums=True,
            unquote_int64_if_possible=True,
        )

    def emit_json(self, message) -> None:
        data = self.to_dict(message) if hasattr(message, "DESCRIPTOR") else message
        self.say(json.dumps(data, indent=2))

    def print_list(self, headers: list[str], rows: list[list[str]]) -> None:
        right = [h.startswith(">") for h in headers]
        names = [h.lstrip(">") for h in headers]
        if self.verbosity == 0:
            for r in rows:
                self.say(" ".join(r))
            return
        table = [names] + rows
        widths = [max(len(r[i]) for r in table) for i in range(len(headers))]
        for r in table:
            cells = [c.rjust(w) if rt else c.ljust(w) for c, w, rt in zip(r, widths, right)]
            self.say(" ".join(cells).rstrip())
