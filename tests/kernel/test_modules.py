"""The capability probe and the daemon's startup report, on the real kernel."""

from __future__ import annotations

import subprocess
import sys

from mayastor.kernel import modules


def test_probe_finds_everything_in_the_vm():
    caps = {c.name: c for c in modules.probe()}
    for name in ("configfs", "nvmet", "nvmet-tcp", "nvme-tcp", "device-mapper", "dm-raid", "dm-thin",
                 "dm-era", "nbd", "io_uring"):
        assert caps[name].present, caps[name]
    # Debian builds native NVMe multipath in and on; the newest-kernel run boots with it off
    with open("/proc/cmdline") as f:
        multipath_off = "nvme_core.multipath=N" in f.read().split()
    assert caps["nvme-multipath"].present is not multipath_off, caps["nvme-multipath"]


def test_daemon_logs_probe_and_ignores_spdk_flags():
    res = subprocess.run([sys.executable, "-m", "mayastor", "--probe-only", "-N", "node-a", "-m", "0x3",
                          "-s", "2048", "--huge-dir", "/dev/hugepages", "--reactor-freeze-detection",
                          "--tgt-crdt=30", "--ptpl-dir=/var/local/ms/ptpl/"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert "kernel: dm-raid" in res.stderr and "MISSING" not in res.stderr
    assert "ignoring SPDK-only option" in res.stderr and "reactor_freeze_detection=on" in res.stderr
    assert "option --tgt-crdt=30 has no effect here" in res.stderr


def test_reservation_probe_matches_a_namespace_and_leaves_nothing_behind():
    import os

    import configfs
    caps = {c.name: c for c in modules.probe()}
    sub = configfs.Subsystem("nqn.2019-05.io.openebs.test:resv-check", "create")
    try:
        have = os.path.exists(os.path.join(sub.namespace(1, "create").path, "resv_enable"))
    finally:
        sub.delete()
    assert caps["nvmet-resv"].present == have
    assert not os.path.exists(f"/sys/kernel/config/nvmet/subsystems/{modules.PROBE_NQN}")
