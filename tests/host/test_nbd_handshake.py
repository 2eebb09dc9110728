"""The NBD fixed-newstyle handshake against a real nbdkit on the host (pure userspace), and URIs."""

import os
import shutil
import socket
import struct
import subprocess
import time

import pytest

from mayastor.kernel import nbd_proto as p

NBDKIT = shutil.which("nbdkit")


@pytest.fixture
def nbdkit(tmp_path):
    if NBDKIT is None:
        pytest.fail("nbdkit is not installed: run scripts/setup")
    sock = str(tmp_path / "s.sock")
    proc = subprocess.Popen([NBDKIT, "-f", "--exit-with-parent", "--unix", sock, "memory", "10M"],
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while not os.path.exists(sock):
        assert time.monotonic() < deadline, "nbdkit did not start"
        time.sleep(0.05)
    yield sock
    proc.terminate()
    proc.wait(10)


def test_go_returns_size_and_flags(nbdkit):
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(nbdkit)
        info = p.negotiate(s, "")
        assert info.size == 10 << 20
        assert info.flags & p.TF_HAS_FLAGS and not info.read_only
        assert info.flags & p.TF_SEND_FLUSH
        # the socket is now in transmission phase: a READ of 512 bytes at 0 returns zeros
        s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 0, 7, 0, 512))
        magic, err, handle = struct.unpack(">IIQ", s.recv(16))
        assert (magic, err, handle) == (0x67446698, 0, 7)
        data = b""
        while len(data) < 512:
            data += s.recv(512 - len(data))
        assert data == bytes(512)


def test_not_an_nbd_server():
    a, b = socket.socketpair()
    with a, b:
        b.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        with pytest.raises(p.NbdProtocolError, match="bad magic"):
            p.negotiate(a)


def test_server_error_reply_is_reported():
    a, b = socket.socketpair()
    with a, b:
        b.sendall(p.NBDMAGIC + p.IHAVEOPT + struct.pack(">H", 3))
        reply = struct.pack(">QIII", p.REPLY_MAGIC, p.OPT_GO, p.REP_FLAG_ERROR | 6, 7) + b"no such"
        b.sendall(reply)
        with pytest.raises(p.NbdProtocolError, match="unknown export: no such"):
            p.negotiate(a, "vol1")


def test_uris():
    a = p.parse_uri("nbd://10.1.2.3:10900/exp%201?uuid=5")
    assert (a.host, a.port, a.export, a.unix_path) == ("10.1.2.3", 10900, "exp 1", None)
    assert p.parse_uri("nbd://h/x").port == 10809
    u = p.parse_uri("nbd+unix:///e?socket=/run/nbd.sock")
    assert (u.unix_path, u.export) == ("/run/nbd.sock", "e")
    for bad in ("nbd:///x", "nbd://h/x?bogus=1", "nbd+unix:///x", "http://h/x", "nbd+unix://h/x?socket=/s"):
        with pytest.raises(ValueError):
            p.parse_uri(bad)
