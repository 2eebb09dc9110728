"""The real daemon speaks systemd's notify protocol: READY=1 only once it is reconciled and
serving gRPC, WATCHDOG=1 pings at half of WatchdogSec, STOPPING=1 on SIGTERM."""

from __future__ import annotations

import os
import socket
import time

import pytest

from mayastor.grpc import protos as P

from .daemon import RESULTS, Daemon


@pytest.mark.timeout(300)
def test_ready_watchdog_stopping(tmp_path, request):
    path = str(tmp_path / "notify")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    log = os.path.join(RESULTS, f"daemon-{request.node.name}.log")
    d = Daemon(str(tmp_path / "state.db"), log, node="sdnode", port=10126)
    try:
        d.start(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"})
        s.settimeout(60)
        got: list[str] = []
        while not any(m.startswith("READY=1") for m in got):
            got.append(s.recv(4096).decode())
        # READY came after the reconcile and with the gRPC server up: it answers now
        assert d.client.pool.ListPools(P.pool.ListPoolOptions()).pools == []
        assert any("STATUS=serving gRPC" in m for m in got), got
        t0 = time.monotonic()
        s.settimeout(5)
        while s.recv(4096) != b"WATCHDOG=1":
            pass
        assert time.monotonic() - t0 < 3
    finally:
        rc = d.stop()
    msgs = []
    s.settimeout(1)
    try:
        while True:
            msgs.append(s.recv(4096))
    except socket.timeout:
        pass
    s.close()
    assert rc == 0 and b"STOPPING=1" in msgs
