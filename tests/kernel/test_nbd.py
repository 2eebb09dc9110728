"""Kernel nbd client over netlink against nbdkit (memory plugin) on a UNIX socket and on TCP."""

from __future__ import annotations

import os
import socket
import subprocess
import time

import pytest

from mayastor.kernel import block, nbd

from .util import pattern, read_direct, write_direct


def start_nbdkit(*args: str) -> subprocess.Popen:
    proc = subprocess.Popen(["nbdkit", "-f", "--exit-with-parent", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return proc


def wait_unix(path: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"nbdkit did not create {path}"
        time.sleep(0.05)


def wait_tcp(port: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"nbdkit not listening on {port}"
            time.sleep(0.05)


@pytest.fixture
def nbdkit_unix(tmp_path):
    sock = str(tmp_path / "nbd.sock")
    proc = start_nbdkit("--unix", sock, "memory", "64M")
    wait_unix(sock)
    yield sock
    proc.terminate()
    proc.wait(10)


def test_attach_read_write_detach_unix(nbdkit_unix):
    dev = nbd.connect(f"nbd+unix:///?socket={nbdkit_unix}", backend="mstest")
    try:
        assert dev.export.size == 64 << 20
        assert block.size_bytes(dev.path) == 64 << 20
        assert nbd.status(dev.index) == {dev.index: True}
        assert nbd.is_connected(dev.index)
        assert dev.backend() == "mstest"
        data = pattern(11, 1 << 16)
        write_direct(dev.path, 1 << 20, data)
        assert read_direct(dev.path, 1 << 20, len(data)) == data
    finally:
        nbd.disconnect(dev)
    assert not nbd.is_connected(dev.index)


def test_attach_over_tcp_with_named_export(tmp_path):
    proc = start_nbdkit("--port", "10899", "-i", "127.0.0.1", "memory", "32M")
    try:
        wait_tcp(10899)
        dev = nbd.connect("nbd://127.0.0.1:10899/anything")
        try:
            data = pattern(12, 4096)
            write_direct(dev.path, 0, data)
            assert read_direct(dev.path, 0, 4096) == data
        finally:
            nbd.disconnect(dev)
    finally:
        proc.terminate()
        proc.wait(10)


def test_refused_server_is_a_clear_error(tmp_path):
    with pytest.raises(OSError):
        nbd.connect(f"nbd+unix:///?socket={tmp_path}/absent.sock")
    with pytest.raises(ValueError):
        nbd.connect("nbd://127.0.0.1:10809/x?bogus=1")
