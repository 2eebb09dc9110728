"""Fixtures for tests that drive the real kernel. They run only inside the test VM
(scripts/test kernel); anywhere else collection stops with an error instead of skipping."""

from __future__ import annotations

import os
import time

import pytest

if os.environ.get("MAYASTOR_IN_VM") != "1":
    pytest.exit("tests/kernel must run inside the test VM: use `scripts/test kernel`", returncode=4)

from mayastor.kernel import dm, loop, nbd, nvme_fabrics  # noqa: E402

import configfs  # noqa: E402

from .util import force_cleanup  # noqa: E402

DM_PREFIX = "mstest-"


@pytest.fixture
def dmc():
    with dm.DeviceMapper() as d:
        yield d


@pytest.fixture
def make_loop(tmp_path):
    """make_loop(size_mb) -> LoopDevice backed by a sparse file; detached at teardown."""
    made: list[loop.LoopDevice] = []

    def make(size_mb: int = 64) -> loop.LoopDevice:
        path = tmp_path / f"disk{len(made)}.img"
        with open(path, "wb") as f:
            f.truncate(size_mb << 20)
        dev = loop.attach(str(path))
        made.append(dev)
        return dev

    yield make
    for dev in reversed(made):
        loop.detach(dev)


@pytest.fixture
def make_dm(dmc):
    """make_dm(name, targets) -> DeviceInfo of a live device named mstest-<name>; removed at teardown."""
    made: list[str] = []

    def make(name: str, targets: list[dm.Target], uuid_: str = "") -> dm.DeviceInfo:
        full = DM_PREFIX + name
        dmc.create(full, uuid=uuid_)
        made.append(full)
        dmc.load(full, targets)
        info = dmc.resume(full)
        dm.devnode(info.minor)
        return info

    yield make
    for name in reversed(made):
        if dmc.exists(name):
            dmc.remove(name)


@pytest.fixture
def nvmet():
    root = configfs.Root()
    yield root
    root.clear()


@pytest.fixture
def host_identity():
    return nvme_fabrics.HostIdentity.generate()


@pytest.fixture(autouse=True)
def no_leaks():
    """Every test must leave the kernel as it found it: no dm device, nvmet object, controller,
    nbd connection or loop device."""
    yield
    problems = []
    deadline = time.monotonic() + 5  # controller deletion and loop autoclear are asynchronous
    while True:
        problems = []
        with dm.DeviceMapper() as d:
            left = [x.name for x in d.list_devices()]
        if left:
            problems.append(f"dm devices: {left}")
        root = configfs.Root()
        dump = root.dump()
        if any(dump.values()):
            problems.append(f"nvmet objects: {dump}")
        ctrls = nvme_fabrics.list_controllers()
        if ctrls:
            problems.append(f"nvme controllers: {[c.name for c in ctrls]}")
        loops = loop.list_attached()
        if loops:
            problems.append(f"loop devices: {[(d.name, d.backing_file) for d in loops]}")
        if os.path.isdir("/sys/module/nbd"):
            connected = [i for i in nbd.status() if nbd.is_connected(i)]
            if connected:
                problems.append(f"nbd devices connected: {connected}")
        if not problems or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if problems:
        # Clean up so one leak does not fail every later test, then fail this one.
        force_cleanup()
        pytest.fail("kernel objects leaked: " + "; ".join(problems))
