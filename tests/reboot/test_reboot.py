"""A full VM reboot with the same disk images (two VM boots, run by scripts/test one after the
other). Phase 1 builds two nodes, pools on files, a 3-way nexus (local replica, node 2's replica
over nvme-tcp, a file child) published over NVMf, writes a pattern, and the VM powers off with
the daemons running. Phase 2, in a fresh boot: both daemons start on their old state files and
bring back every pool, replica, share and the nexus, republished, without a full resync."""

from __future__ import annotations

import json
import os
import uuid

import pytest

from mayastor.grpc import protos as P
from mayastor.kernel import block, dm, nvme_fabrics
from tests.kernel.daemon import Daemon
from tests.kernel.test_nexus import wait_for
from tests.kernel.util import pattern, read_direct, run, write_direct

MiB = 1 << 20
ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
# SQLite cannot lock files on the VM's shared host filesystem, so the "disk" that survives the
# reboot is an ext4 image kept in the shared checkout and loop-mounted in each boot.
IMAGE = os.path.abspath(os.path.join(ROOT, "test-results", "reboot-disk.img"))
STATE = "/run/mayastor-reboot-test"
SIZE = 64 * MiB
HOST = "nqn.2014-08.org.nvmexpress:uuid:eeeeeeee-0000-4000-8000-000000000005"
HOST_ID = "eeeeeeee-0000-4000-8000-000000000005"
NODES = (("nx2", 10125, "127.0.0.3"), ("nx1", 10124, "127.0.0.2"))  # node 2 first: it serves node 1


def daemons(fork: bool = True) -> dict[str, Daemon]:
    out = {}
    for name, port, addr in NODES:
        d = Daemon(os.path.join(STATE, f"{name}.db"), os.path.join(STATE, f"{name}.log"), node=name, port=port,
                   target=addr, fork=fork)
        d.start()
        out[name] = d
    return out


def top(u: str) -> str:
    with dm.DeviceMapper() as ctl:
        return ctl.info(f"MAYASTOR-nx1-nexus-{u}").devnode


def mount_disk(fresh: bool) -> None:
    if fresh:
        if os.path.exists(IMAGE):
            os.unlink(IMAGE)
        with open(IMAGE, "wb") as f:
            f.truncate(1 << 30)
        run("mkfs.ext4", "-q", "-F", IMAGE)
    os.makedirs(STATE, exist_ok=True)
    run("mount", "-o", "loop", IMAGE, STATE)


def unmount_disk() -> None:
    run("umount", STATE, check=False)
    os.unlink(IMAGE)


def test_phase1_build_then_power_off():
    mount_disk(fresh=True)
    d = daemons()
    c1, c2 = d["nx1"].client, d["nx2"].client
    for name, c in (("nx1", c1), ("nx2", c2)):
        c.pool.CreatePool(P.pool.CreatePoolRequest(name=f"{name}-pool", disks=[f"aio://{STATE}/{name}.img?size_mb=256"]))
    local = c1.replica.CreateReplica(P.replica.CreateReplicaRequest(
        name="rb-r1", uuid=str(uuid.uuid4()), pooluuid="nx1-pool", size=SIZE + 4 * MiB, thin=True))
    remote = c2.replica.CreateReplica(P.replica.CreateReplicaRequest(
        name="rb-r2", uuid=str(uuid.uuid4()), pooluuid="nx2-pool", size=SIZE + 4 * MiB, thin=True, share=1))
    leg = os.path.join(STATE, "leg3.img")
    with open(leg, "wb") as f:
        f.truncate(SIZE + 4 * MiB)
    nu = str(uuid.uuid4())
    children = [f"bdev:///rb-r1?uuid={local.uuid}", remote.uri, f"aio://{leg}"]
    c1.nexus.CreateNexus(P.nexus.CreateNexusRequest(name="rbvol", uuid=nu, size=SIZE, children=children))
    n = c1.nexus.PublishNexus(P.nexus.PublishNexusRequest(uuid=nu, share=1, allowed_hosts=[HOST])).nexus
    for i in range(8):
        write_direct(top(nu), i * 8 * MiB, pattern(100 + i, 64 * 1024))
    with open(os.path.join(STATE, "nexus.json"), "w") as f:
        json.dump({"uuid": nu, "device_uri": n.device_uri, "remote_uri": remote.uri}, f)
    # no clean stop: the VM powers off under the running daemons


@pytest.mark.timeout(600)
def test_phase2_everything_back_after_reboot():
    mount_disk(fresh=False)
    with open(os.path.join(STATE, "nexus.json")) as f:
        saved = json.load(f)
    nu = saved["uuid"]
    d = daemons(fork=False)  # after the reboot: started the way an operator starts it
    c1, c2 = d["nx1"].client, d["nx2"].client
    try:
        assert {p.name for p in c1.pool.ListPools(P.pool.ListPoolOptions()).pools} == {"nx1-pool"}
        assert c2.replica.ListReplicas(P.replica.ListReplicaOptions()).replicas[0].uri == saved["remote_uri"]
        n = c1.nexus.ListNexus(P.nexus.ListNexusOptions()).nexus_list[0]
        assert n.uuid == nu and n.device_uri == saved["device_uri"]
        n = wait_for(lambda: (lambda x: x if x.state == 1 else None)(
            c1.nexus.ListNexus(P.nexus.ListNexusOptions()).nexus_list[0]), 120, "nexus online")
        assert [ch.state for ch in n.children] == [1, 1, 1]
        # no full resync: md copied at most the regions its bitmaps held dirty at power-off
        with dm.DeviceMapper() as ctl:
            legs = [ctl.info(x.name).devnode for x in ctl.list_devices()
                    if x.name.startswith(f"MAYASTOR-nx1-nexus-{nu}-") and x.name.endswith("-data")]
        written = sum(block.io_stats(x).write_sectors * 512 for x in legs)
        print(f"written to the legs while reassembling: {written} bytes (nexus {SIZE})")
        assert len(legs) == 3 and written < SIZE
        for i in range(8):
            assert read_direct(top(nu), i * 8 * MiB, 64 * 1024) == pattern(100 + i, 64 * 1024)
        # republished: a host reads the same data over NVMe-oF
        run("nvme", "connect", "-t", "tcp", "-a", "127.0.0.2", "-s", "4421", "-n", "nqn.2019-05.io.openebs:rbvol",
            "-q", HOST, "-I", HOST_ID)
        dev = wait_for(lambda: (lambda ns: ns.path if ns and os.path.exists(ns.path) else None)(
            nvme_fabrics.find_namespace(nu)), 20, "nexus namespace")
        assert read_direct(dev, 8 * MiB, 64 * 1024) == pattern(101, 64 * 1024)
        run("nvme", "disconnect", "-n", "nqn.2019-05.io.openebs:rbvol")
    finally:
        c1.nexus.DestroyNexus(P.nexus.DestroyNexusRequest(uuid=nu))
        for c in (c1, c2):
            for p in c.pool.ListPools(P.pool.ListPoolOptions()).pools:
                c.pool.DestroyPool(P.pool.DestroyPoolRequest(name=p.name))
        for x in d.values():
            x.stop()
    unmount_disk()
