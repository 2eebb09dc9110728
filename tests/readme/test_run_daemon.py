"""The README's first command on a machine without the kernel modules: `scripts/run-daemon` boots
the test VM with the daemon inside, and io-engine-client on the host answers through the forwarded
gRPC port. Runs on the host (it starts its own VM), after the kernel tests in `scripts/test`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CLIENT = os.path.join(os.path.dirname(sys.executable), "io-engine-client")
RESULTS = os.path.join(ROOT, "test-results", "run-daemon")


def client(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLIENT, "-b", "127.0.0.1:10124", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def vm_daemon():
    os.makedirs(RESULTS, exist_ok=True)
    log = open(os.path.join(RESULTS, "console.log"), "w")
    env = {**os.environ, "MAYASTOR_STATE_DB": os.path.join(RESULTS, "state.db")}
    for stale in ("state.db", "state.db-wal", "state.db-shm"):
        if os.path.exists(os.path.join(RESULTS, stale)):
            os.unlink(os.path.join(RESULTS, stale))
    proc = subprocess.Popen([os.path.join(ROOT, "scripts", "run-daemon"), "-N", "readme"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # vm-run takes the VM down with it
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


@pytest.mark.timeout(600)
def test_readme_first_command_serves_grpc_to_the_host(vm_daemon):
    if os.path.exists("/sys/module/nvmet"):
        pytest.skip("this kernel has nvmet: run-daemon starts natively here, not in the VM")
    deadline = time.monotonic() + 420
    while True:
        p = client("pool", "list")
        if p.returncode == 0:
            break
        assert vm_daemon.poll() is None, open(os.path.join(RESULTS, "console.log")).read()[-4000:]
        assert time.monotonic() < deadline, f"no answer from 127.0.0.1:10124: {p.stderr}"
        time.sleep(3)
    with open(os.path.join(RESULTS, "console.log")) as f:
        console = f.read()
    assert "starting mayastor inside the test VM" in console
    # a real round trip: a pool made from the host lives in the VM's kernel
    assert client("pool", "create", "readme", "aio:///tmp/readme.img?size_mb=64").returncode == 0
    pools = json.loads(client("-o", "json", "pool", "list").stdout)["pools"]
    assert [p["name"] for p in pools] == ["readme"] and pools[0]["capacity"] > 32 << 20, pools
    assert client("pool", "destroy", "readme").returncode == 0
    assert client("-q", "pool", "list").stdout == ""
