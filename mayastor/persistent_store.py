"""io-engine's persistent store: the etcd the control plane reads NexusInfo from (``-p``).

The engine only ever *puts* (the control plane reads and deletes). As io-engine does:
``-p host[:port]`` (port 2379 by default); start-up waits, retrying every second, until etcd
answers; each put has ``--ps-timeout`` (10 s, clamped to 1..60 s) and is tried ``--ps-retries``
times (30) one second apart. Without ``-p`` nothing is written anywhere: SQLite stays our own state
either way, etcd only mirrors what the control plane needs.

The client is etcd3gw (OpenStack's, maintained): etcd's own v3 API through the JSON gateway every
etcd 3.4+ serves on its client port, over plain HTTP, with no protobuf runtime of its own to clash
with grpcio's.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time

from .errors import MayastorError
from .netaddr import host_port

log = logging.getLogger(__name__)

DEFAULT_PORT = 2379
DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRIES = 30
RETRY_INTERVAL = 1.0
_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "mins": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
}
_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zµ]+)")
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$")


class StoreUnavailable(MayastorError):
    code = "INTERNAL"  # io-engine: SaveStateFailed -> Code::Internal


def parse_timeout(text: str) -> float:
    """--ps-timeout as io-engine reads it (a humantime duration: "10s", "1m30s", "500ms"),
    clamped to 1..60 s."""
    rest, total = text.strip(), 0.0
    if not rest:
        raise ValueError("--ps-timeout: empty duration")
    while rest:
        m = _PART.match(rest)
        if m is None or m.group(2) not in _UNITS:
            raise ValueError(f"--ps-timeout: invalid duration {text!r} (e.g. 10s, 500ms, 1m)")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        rest = rest[m.end() :].lstrip()
    return min(max(total, 1.0), 60.0)


def parse_retries(text: str) -> int:
    """--ps-retries: a u8, as io-engine's."""
    try:
        n = int(text, 10)
    except ValueError:
        raise ValueError(f"--ps-retries: {text!r} is not a number") from None
    if not 0 <= n <= 255:
        raise ValueError(f"--ps-retries: {n} is out of range 0..255")
    return n


def parse_endpoint(text: str) -> tuple[str, int]:
    """``host[:port]``, ``[v6]:port`` or an ``http://`` URL (as the etcd client accepts it)."""
    ep = text.strip()
    if ep.startswith("http://"):
        ep = ep[len("http://") :].rstrip("/")
    if ep.startswith("["):
        host, _, rest = ep[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise ValueError(f"-p: invalid endpoint {text!r}")
    elif ep.count(":") == 1:
        host, port_text = ep.split(":")
        if not port_text:
            raise ValueError(f"-p: no port after the colon in {text!r}")
    elif ":" in ep:  # a bare IPv6 address
        host, port_text = ep, ""
    else:
        host, port_text = ep, ""
    if not host or not (_HOST.match(host) or _is_ipv6(host)):
        raise ValueError(f"-p: invalid etcd host in {text!r}")
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"-p: invalid etcd port in {text!r}")
        return host, int(port_text)
    return host, DEFAULT_PORT


def _is_ipv6(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


class PersistentStore:
    """Puts JSON values into etcd (thread-safe: one HTTP session behind a lock)."""

    enabled = True

    def __init__(
        self,
        host: str,
        port: int = DEFAULT_PORT,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        interval: float = RETRY_INTERVAL,
    ):
        import etcd3gw

        self.endpoint = host_port(host, port)
        self.timeout, self.retries, self.interval = timeout, max(retries, 1), interval
        self._client = etcd3gw.client(host=host, port=port, timeout=timeout)
        self._lock = threading.Lock()
        self.puts = 0  # successful puts

    def reachable(self) -> bool:
        try:
            with self._lock:
                self._client.status()
            return True
        except Exception:  # noqa: BLE001 - etcd3gw raises requests' and its own exceptions alike
            return False

    def wait_until_reachable(self, stop: threading.Event) -> bool:
        """Block, trying every second, until etcd answers (False if ``stop`` was set first)."""
        said = False
        while not stop.is_set():
            if self.reachable():
                log.info(
                    "connected to etcd on endpoint %s (put timeout %.0f s, %d tries)",
                    self.endpoint,
                    self.timeout,
                    self.retries,
                )
                return True
            if not said:  # once, not every second
                log.error(
                    "failed to connect to etcd on endpoint %s; retrying every %.0f s", self.endpoint, self.interval
                )
                said = True
            stop.wait(self.interval)
        return False

    def put(self, key: str, value: dict) -> None:
        """Put ``value`` as JSON at ``key``, retrying; StoreUnavailable when every try failed."""
        text = json.dumps(value, separators=(",", ":"))
        last = None
        for attempt in range(self.retries):
            try:
                with self._lock:
                    self._client.put(key, text)
                self.puts += 1
                log.info("put key %s, value %s in the persistent store", key, text)
                return
            except Exception as exc:  # noqa: BLE001 - connection refused, timeouts, gateway errors
                last = exc
                left = self.retries - attempt - 1
                if left:
                    log.error("persistent store put of %s failed, will retry (%d left): %s", key, left, exc)
                    time.sleep(self.interval)
        raise StoreUnavailable(
            f"failed to put {key} in the persistent store at {self.endpoint} after {self.retries} tries: {last}"
        )


class NoStore:
    """No ``-p``: nothing is persisted outside SQLite."""

    enabled = False

    def put(self, key: str, value: dict) -> None:
        return None


def settings(endpoint: str | None, timeout: str, retries: str) -> tuple[str, int, float, int] | None:
    """The daemon's -p/--ps-timeout/--ps-retries, checked (ValueError); None without -p."""
    t, r = parse_timeout(timeout), parse_retries(retries)
    if endpoint is None:
        return None
    host, port = parse_endpoint(endpoint)
    return host, port, t, r
