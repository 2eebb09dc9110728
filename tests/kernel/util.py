"""Helpers shared by the kernel tests (no fixtures here)."""

from __future__ import annotations

import os
import subprocess
import time
import uuid

from mayastor.kernel import block

TEST_NQN_PREFIX = "nqn.2019-05.io.openebs:test-"


def run(*cmd: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {res.returncode}: {res.stderr.strip()} {res.stdout.strip()}")
    return res


def new_nqn(tag: str = "") -> str:
    return TEST_NQN_PREFIX + (tag + "-" if tag else "") + uuid.uuid4().hex[:8]


def pattern(seed: int, size: int = 4096) -> bytes:
    unit = f"mayastor-test-block-{seed:08d}|".encode()
    return (unit * (size // len(unit) + 1))[:size]


def write_direct(path: str, offset: int, data: bytes) -> None:
    """O_DIRECT write (bypasses the page cache of ``path``)."""
    block.write_direct(path, offset, data)


def read_direct(path: str, offset: int, size: int) -> bytes:
    got = block.read_direct(path, offset, size)
    assert len(got) == size, f"short read of {path}: {len(got)} of {size} bytes"
    return got


# Waits are stretched: a loaded machine (scripts/test loaded) may be several times slower than the
# one a timeout was chosen on, and a longer wait costs nothing when the condition comes true.
SLOWDOWN = float(os.environ.get("MAYASTOR_TEST_SLOWDOWN", "4"))


def wait_for(pred, timeout: float, what: str, interval: float = 0.2):
    """Poll ``pred`` until it returns something true (returned), or fail after ``timeout`` s
    (times SLOWDOWN)."""
    deadline = time.monotonic() + timeout * SLOWDOWN
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def code_of(call, *args, **kwargs):
    """The gRPC status code ``call`` fails with (None when it succeeds)."""
    import grpc
    try:
        call(*args, **kwargs)
    except grpc.RpcError as exc:
        return exc.code()
    return None


def replica_dev(node: str, uuid: str) -> str:
    """The block device of a replica of our label+dm-thin pools on ``node``."""
    from mayastor.kernel import dm
    with dm.DeviceMapper() as ctl:
        return ctl.info(f"MAYASTOR-{node}-thin-{uuid}").devnode


def destroy_all_and_stop(daemons, dm_prefix: str) -> None:
    """A test's teardown of running daemons: every nexus first (on every node: a nexus may use
    another node's replica), then every pool; each daemon exits 0 and no dm device whose name
    starts with ``dm_prefix`` is left."""
    from mayastor.grpc import protos as P
    from mayastor.kernel import dm
    for d in daemons:
        c = d.client
        for n in c.nexus.ListNexus(P.nexus.ListNexusOptions()).nexus_list:
            c.nexus.DestroyNexus(P.nexus.DestroyNexusRequest(uuid=n.uuid))
    for d in daemons:
        c = d.client
        for p in c.pool.ListPools(P.pool.ListPoolOptions()).pools:
            c.pool.DestroyPool(P.pool.DestroyPoolRequest(name=p.name))
        assert d.stop() == 0
    with dm.DeviceMapper() as ctl:
        assert [x.name for x in ctl.list_devices() if x.name.startswith(dm_prefix)] == []


def force_cleanup() -> None:
    """Remove every controller, nvmet object, dm device, nbd connection and loop device (the
    test VM runs nothing else), so that one test's leftovers never fail the next."""
    from mayastor.kernel import dm, loop, nbd, nvme_fabrics

    import configfs
    for c in nvme_fabrics.list_controllers():
        nvme_fabrics.disconnect(c)
    configfs.Root().clear()
    with dm.DeviceMapper() as d:
        for x in reversed(d.list_devices()):
            try:
                d.remove(x.name)
            except OSError:
                pass
    if os.path.isdir("/sys/module/nbd"):
        for i in nbd.status():
            if nbd.is_connected(i):
                nbd.disconnect(i)
    for dev in loop.list_attached():
        try:
            loop.detach(dev)
        except OSError:
            pass
