"""Two nodes in one VM (two daemons: own node names, state files, target addresses 127.0.0.2 and
127.0.0.3). A 3-way nexus on node 1 over a local replica, a replica of node 2 reached over
nvme-tcp and a malloc child, published and used with nvme-cli and fio --verify while the remote
child fails (its nvmet port link removed), is faulted by the watcher, comes back and is resynced
partially; both daemons restart and the nexus is back without a resync; fencing by re-share."""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid

import pytest

from mayastor.grpc import protos as P
from mayastor.kernel import dm, nvme_fabrics

from .daemon import Daemon
from .test_nexus import leg_digest, wait_for
from .util import destroy_all_and_stop, pattern, read_direct, run

MiB = 1 << 20
RESULTS = os.path.join(os.path.dirname(__file__), "..", "..", "test-results")
HOST = "nqn.2014-08.org.nvmexpress:uuid:cccccccc-0000-4000-8000-000000000003"
HOST_ID = "cccccccc-0000-4000-8000-000000000003"
ONLINE, DEGRADED, FAULTED = 1, 2, 3
R_IO_FAILURE = 6
SIZE = 128 * MiB
CFS = "/sys/kernel/config/nvmet"


def U() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def nodes(tmp_path, request):
    made = []
    for name, port, addr in (("nx2", 10125, "127.0.0.3"), ("nx1", 10124, "127.0.0.2")):
        log = os.path.join(RESULTS, f"daemon-{request.node.name}-{name}.log")
        if os.path.exists(log):
            os.unlink(log)
        d = Daemon(str(tmp_path / f"{name}.db"), log, node=name, port=port, target=addr)
        d.start()
        made.append(d)
    n2, n1 = made
    yield n1, n2
    run("nvme", "disconnect-all", check=False)
    for d in (n1, n2):
        if d.proc is None:
            d.start()
    destroy_all_and_stop((n1, n2), "MAYASTOR-nx")


def replica(c, tmp_path, node: str, name: str, size: int, share: int = 0):
    pools = c.pool.ListPools(P.pool.ListPoolOptions()).pools
    if not pools:
        c.pool.CreatePool(P.pool.CreatePoolRequest(name=f"{node}-pool",
                                                   disks=[f"aio://{tmp_path}/{node}-pool.img?size_mb=1024"]))
    return c.replica.CreateReplica(P.replica.CreateReplicaRequest(
        name=name, uuid=U(), pooluuid=f"{node}-pool", size=size, thin=True, share=share))


def get(c, u):
    return c.nexus.ListNexus(P.nexus.ListNexusOptions(uuid={"value": u})).nexus_list[0]


def raid(u: str, node: str = "nx1"):
    from mayastor.kernel.dm_targets import RaidStatus
    with dm.DeviceMapper() as ctl:
        return RaidStatus.parse(ctl.status(f"MAYASTOR-{node}-nexus-{u}-raid")[0].params)


def data_legs(u: str, node: str = "nx1") -> list[str]:
    with dm.DeviceMapper() as ctl:
        prefix = f"MAYASTOR-{node}-nexus-{u}-"
        return [ctl.info(d.name).devnode for d in sorted(ctl.list_devices(), key=lambda d: d.name)
                if d.name.startswith(prefix) and d.name.endswith("-data")]


def port_of(nqn: str, addr: str) -> str:
    for pid in os.listdir(f"{CFS}/ports"):
        with open(f"{CFS}/ports/{pid}/addr_traddr") as f:
            if f.read().strip() == addr and os.path.islink(f"{CFS}/ports/{pid}/subsystems/{nqn}"):
                return pid
    raise AssertionError(f"{nqn} not linked on {addr}")


def connect_nexus(nexus_uuid: str, nqn: str) -> str:
    run("nvme", "connect", "-t", "tcp", "-a", "127.0.0.2", "-s", "4421", "-n", nqn, "-q", HOST, "-I", HOST_ID)
    return wait_for(lambda: (lambda ns: ns.path if ns and os.path.exists(ns.path) else None)(
        nvme_fabrics.find_namespace(nexus_uuid)), 20, "nexus namespace")


@pytest.mark.timeout(900)
def test_three_way_nexus_remote_child_fails_and_comes_back(nodes, tmp_path):
    n1, n2 = nodes
    c1, c2 = n1.client, n2.client
    local = replica(c1, tmp_path, "nx1", "vol-r1", SIZE + 4 * MiB)
    remote = replica(c2, tmp_path, "nx2", "vol-r2", SIZE + 4 * MiB, share=1)
    assert remote.uri.startswith("nvmf://127.0.0.3:8420/nqn.2019-05.io.openebs:vol-r2?uuid=")
    remote_uri = remote.uri
    children = [f"bdev:///vol-r1?uuid={local.uuid}", remote_uri, f"malloc:///vol-m?size_mb={(SIZE >> 20) + 4}"]
    nu = U()
    n = c1.nexus.CreateNexus(P.nexus.CreateNexusRequest(name="vol", uuid=nu, size=SIZE, children=children)).nexus
    assert [ch.state for ch in n.children] == [ONLINE] * 3
    nexus_nqn = "nqn.2019-05.io.openebs:vol"
    pub = c1.nexus.PublishNexus(P.nexus.PublishNexusRequest(uuid=nu, share=1, allowed_hosts=[HOST])).nexus
    assert pub.device_uri == f"nvmf://127.0.0.2:8420/{nexus_nqn}"
    dev = connect_nexus(nu, nexus_nqn)

    # fio writes and verifies (crc32c) on the first 32 MiB for the whole test
    fio = subprocess.Popen(
        ["fio", "--name=nexus", f"--filename={dev}", "--rw=randwrite", "--bs=4k", "--direct=1", "--ioengine=psync",
         "--size=16M", "--verify=crc32c", "--verify_backlog=64", "--rate_iops=100", "--time_based",
         "--runtime=35", "--do_verify=1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(5)
        # the remote child's target goes away: its nvmet port link is removed on node 2
        rnqn = "nqn.2019-05.io.openebs:vol-r2"
        pid = port_of(rnqn, "127.0.0.3")
        os.unlink(f"{CFS}/ports/{pid}/subsystems/{rnqn}")
        t0 = time.monotonic()
        n = wait_for(lambda: (lambda x: x if [c for c in x.children if c.uri == remote_uri][0].state == FAULTED
                              else None)(get(c1, nu)), 30, "remote child faulted")
        faulted_after = time.monotonic() - t0
        ch = [c for c in n.children if c.uri == remote_uri][0]
        assert ch.state_reason == R_IO_FAILURE and ch.fault_timestamp.seconds > 0
        assert n.state == DEGRADED
        assert "D" in raid(nu).health
        time.sleep(5)  # writes go on without the remote child: its regions get dirty
        os.symlink(f"{CFS}/subsystems/{rnqn}", f"{CFS}/ports/{pid}/subsystems/{rnqn}")
        wait_for(lambda: any(c.attr("state") == "live" for c in nvme_fabrics.find_controllers(rnqn)), 30,
                 "remote controller live again")
        c1.nexus.ChildOperation(P.nexus.ChildOperationRequest(nexus_uuid=nu, uri=remote_uri, action=1))
        wait_for(lambda: get(c1, nu).state == ONLINE, 120, "nexus online again")
        out, _ = fio.communicate(timeout=120)
    finally:
        if fio.poll() is None:
            fio.kill()
    assert fio.returncode == 0, out
    assert re.search(r"err=\s*0", out), out
    hist = c1.nexus.GetRebuildHistory(P.nexus.RebuildHistoryRequest(uuid=nu)).records
    rec = [h for h in hist if h.child_uri == remote_uri][-1]
    resynced = rec.blocks_transferred * rec.block_size
    print(f"fault seen after {faulted_after:.1f}s; resynced {resynced >> 20} MiB of {SIZE >> 20} MiB")
    assert rec.is_partial and rec.state == 5 and 0 < resynced < SIZE // 2
    digests = {leg_digest(x, SIZE) for x in data_legs(nu)}
    assert len(digests) == 1

    # restart both daemons (kill -9, kernel state stays): the nexus is back, published, no resync
    before = read_direct(dev, 0, 64 * 1024)
    n1.kill9()
    n2.kill9()
    n2.start()
    n1.start()
    c1, c2 = n1.client, n2.client
    n = get(c1, nu)
    assert n.state == ONLINE and n.device_uri == pub.device_uri
    assert [c.state for c in n.children] == [ONLINE] * 3
    st = raid(nu)
    assert st.health == "AAA" and st.sync_action == "idle" and st.sync_current == st.sync_total
    assert read_direct(dev, 0, 64 * 1024) == before
    assert c2.replica.ListReplicas(P.replica.ListReplicaOptions()).replicas[0].uri == remote_uri
    run("nvme", "disconnect", "-n", nexus_nqn)


@pytest.mark.timeout(600)
def test_fencing_by_reshare_stops_the_old_nexus(nodes, tmp_path):
    n1, n2 = nodes
    c1, c2 = n1.client, n2.client
    r = replica(c2, tmp_path, "nx2", "fence-r", 36 * MiB, share=1)
    nu = U()
    c1.nexus.CreateNexus(P.nexus.CreateNexusRequest(name="fence", uuid=nu, size=32 * MiB, children=[r.uri]))
    n = c1.nexus.PublishNexus(P.nexus.PublishNexusRequest(uuid=nu, share=0)).nexus
    dev = n.device_uri[len("file://"):]
    with open(dev, "r+b", buffering=0) as f:
        os.write(f.fileno(), pattern(7, 4096))
        os.fsync(f.fileno())
    # a host that is not allowed is refused by nvme-cli
    other = "nqn.2014-08.org.nvmexpress:uuid:dddddddd-0000-4000-8000-000000000004"
    c2.replica.ShareReplica(P.replica.ShareReplicaRequest(uuid=r.uuid, share=1, allowed_hosts=[other]))
    refused = run("nvme", "connect", "-t", "tcp", "-a", "127.0.0.3", "-s", "8420", "-n",
                  "nqn.2019-05.io.openebs:fence-r", "-q", HOST, "-I", HOST_ID, check=False)
    assert refused.returncode != 0
    # fenced: node 1's nexus lost its only child; its next write fails there, the nexus faults
    # and holds the write (queued, not failed) -- it never reaches the replica
    writer = subprocess.Popen(["dd", f"of={dev}", "if=/dev/urandom", "bs=4k", "count=1", "oflag=direct"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: get(c1, nu).state == FAULTED, 30, "old nexus faulted")
    time.sleep(2)
    assert writer.poll() is None  # held, not failed and not written
    with dm.DeviceMapper() as ctl:
        thin = ctl.info(f"MAYASTOR-nx2-thin-{r.uuid}").devnode
    assert read_direct(thin, 0, 4096) == pattern(7, 4096)
    c1.nexus.DestroyNexus(P.nexus.DestroyNexusRequest(uuid=nu))  # fails the held write, then tears down
    writer.wait(timeout=30)
    assert writer.returncode != 0
    assert read_direct(thin, 0, 4096) == pattern(7, 4096)


def allocated(c, name: str) -> int:
    return next(r for r in c.replica.ListReplicas(P.replica.ListReplicaOptions()).replicas if r.name == name).usage.allocated_bytes


@pytest.mark.timeout(600)
def test_fstrim_through_the_nexus_gives_space_back_on_a_local_and_a_remote_leg(nodes, tmp_path):
    n1, n2 = nodes
    c1, c2 = n1.client, n2.client
    size = 256 * MiB
    local = replica(c1, tmp_path, "nx1", "trim-r1", size)
    remote = replica(c2, tmp_path, "nx2", "trim-r2", size, share=1)
    nu = U()
    children = [f"bdev:///trim-r1?uuid={local.uuid}", remote.uri]
    c1.nexus.CreateNexus(P.nexus.CreateNexusRequest(name="trimvol", uuid=nu, size=size, children=children))
    nqn = "nqn.2019-05.io.openebs:trimvol"
    c1.nexus.PublishNexus(P.nexus.PublishNexusRequest(uuid=nu, share=1, allowed_hosts=[HOST]))
    dev = connect_nexus(nu, nqn)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    try:
        # 4 KiB blocks, as ext4 picks for any volume above 512 MiB (with the 1 KiB blocks of a small
        # one, backup superblocks every 8 MiB pin thin blocks that no trim can free)
        run("mkfs.ext4", "-q", "-F", "-b", "4096", "-E", "nodiscard,lazy_itable_init=0,lazy_journal_init=0", dev,
            timeout=300)
        run("mount", "-o", "nodiscard", dev, str(mnt))
        try:
            empty = {"local": allocated(c1, "trim-r1"), "remote": allocated(c2, "trim-r2")}
            run("dd", "if=/dev/urandom", f"of={mnt}/data", "bs=1M", "count=64", "conv=fsync", timeout=300)
            full = {"local": allocated(c1, "trim-r1"), "remote": allocated(c2, "trim-r2")}
            written = 64 * MiB
            for leg in full:  # the file's blocks reached each leg's pool (some share thin blocks with ext4's metadata)
                assert full[leg] - empty[leg] >= written // 2, (leg, empty, full)
            os.unlink(mnt / "data")
            run("sync")
            out = run("fstrim", "-v", str(mnt), timeout=300).stdout
            after = {"local": allocated(c1, "trim-r1"), "remote": allocated(c2, "trim-r2")}
        finally:
            run("umount", str(mnt))
    finally:
        run("nvme", "disconnect", "-n", nqn, check=False)
    print(f"fstrim: {out.strip()}; allocated empty {empty}, with the file {full}, after fstrim {after}")
    for leg in full:  # the thin pool on each leg gets back at least 90 % of what the file took
        assert full[leg] - after[leg] >= 0.9 * (full[leg] - empty[leg]), (leg, empty, full, after)
