"""The systemd unit passes `systemd-analyze verify` with no warning, and the daemon's notify
protocol (READY/STATUS/WATCHDOG datagrams) reaches a socket as systemd would read it."""

import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from mayastor import sdnotify

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def test_unit_verifies_cleanly(tmp_path):
    assert shutil.which("systemd-analyze"), "scripts/setup installs systemd"
    exe = os.path.join(os.path.dirname(sys.executable), "mayastor")
    with open(os.path.join(ROOT, "systemd", "mayastor.service")) as f:
        text = f.read()
    assert "Type=notify" in text and "WatchdogSec=" in text and "Restart=on-failure" in text
    unit = tmp_path / "mayastor.service"
    unit.write_text(text.replace("/usr/local/bin/mayastor", exe))  # verify wants the binary to exist
    p = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert p.returncode == 0 and p.stderr.strip() == "", p.stderr
    with open(os.path.join(ROOT, "systemd", "mayastor-modules.conf")) as f:
        mods = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    assert {"nvmet-tcp", "dm-raid", "dm-thin-pool", "dm-era", "nbd", "nvme-tcp"} <= set(mods)


def test_csi_unit_verifies_cleanly(tmp_path):
    exe = os.path.join(os.path.dirname(sys.executable), "mayastor-csi")
    with open(os.path.join(ROOT, "systemd", "mayastor-csi.service")) as f:
        text = f.read()
    assert "Type=notify" in text and "Restart=on-failure" in text
    # its mounts must reach the host's namespace: nothing that gives the service its own
    for key in ("ProtectSystem=", "ProtectHome=", "PrivateTmp=", "PrivateMounts=", "PrivateDevices=",
                "ProtectKernelModules=", "ProtectKernelTunables=", "ProtectControlGroups=", "ReadOnlyPaths=",
                "InaccessiblePaths=", "TemporaryFileSystem="):
        assert key not in text
    unit = tmp_path / "mayastor-csi.service"
    unit.write_text(text.replace("/usr/local/bin/mayastor-csi", exe))
    p = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert p.returncode == 0 and p.stderr.strip() == "", p.stderr


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    path = str(tmp_path / "notify")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    yield s
    s.close()


def test_notify_and_watchdog(notify_socket, monkeypatch):
    assert sdnotify.notify("READY=1", "STATUS=up")
    assert notify_socket.recv(4096) == b"READY=1\nSTATUS=up"
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    assert sdnotify.watchdog_interval() == pytest.approx(0.1)
    healthy = [True]
    w = sdnotify.Watchdog(alive=lambda: healthy[0])
    w.start()
    try:
        assert notify_socket.recv(4096) == b"WATCHDOG=1"
        healthy[0] = False  # a sick daemon stops pinging: systemd restarts it
        time.sleep(0.3)
        notify_socket.settimeout(0.05)
        while True:  # drain what was sent before
            try:
                notify_socket.recv(4096)
            except socket.timeout:
                break
        notify_socket.settimeout(0.5)
        with pytest.raises(socket.timeout):
            notify_socket.recv(4096)
    finally:
        w.stop()
    monkeypatch.setenv("WATCHDOG_PID", "1")  # meant for another process
    assert sdnotify.watchdog_interval() is None


def test_without_systemd_nothing_happens(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert sdnotify.notify("READY=1") is False
    assert sdnotify.watchdog_interval() is None
