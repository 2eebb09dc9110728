"""Full rebuild by the copier, through the daemon: a new child reached over NVMe-oF TCP is rebuilt
while fio writes and verifies on the published nexus; the copy stays thin; pause, resume, stop and
start work mid-copy; kill -9 mid-copy resumes from the checkpoint; the history tells it all."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import threading
import time
import uuid

import pytest

from mayastor._native._buffer import AlignedBuffer
from mayastor._native.scan import scan_range
from mayastor.grpc import protos as P
from mayastor.kernel import dm, nvme_fabrics
from mayastor.kernel.dm_targets import ThinStatus

from .daemon import Daemon, serve
from .util import run, wait_for

MiB = 1 << 20
NODE = "rb1"
HOST = "nqn.2014-08.org.nvmexpress:uuid:cccccccc-0000-4000-8000-000000000001"
ONLINE, DEGRADED = 1, 2
REPLICA = 132 * MiB
SIZE = 128 * MiB  # the nexus: replica minus the 4 MiB raid metadata area
RUNNING, STOPPED, PAUSED, COMPLETED = 1, 2, 3, 5


def U() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def daemon(tmp_path, request):
    yield from serve(tmp_path, request, NODE, nqns=(f"nqn.2019-05.io.openebs:{NODE}-vol",))


def get(c, nu: str):
    return c.nexus.ListNexus(P.nexus.ListNexusOptions(uuid={"value": nu})).nexus_list[0]


def child(n, uri: str):
    return next(ch for ch in n.children if ch.uri == uri)


def set_rate(c, nu: str, rate: int) -> None:
    c.json.JsonRpcCall(P.json.JsonRpcRequest(method="nexus_set_rebuild_rate",
                                             params=json.dumps({"uuid": nu, "bytes_per_sec": rate})))


def stats(c, nu: str, uri: str):
    return c.nexus.GetRebuildStats(P.nexus.RebuildStatsRequest(nexus_uuid=nu, uri=uri))


def state(c, nu: str, uri: str) -> str:
    return c.nexus.GetRebuildState(P.nexus.RebuildStateRequest(nexus_uuid=nu, uri=uri)).state


def replica(c, name: str):
    return c.replica.CreateReplica(P.replica.CreateReplicaRequest(name=name, uuid=U(), pooluuid="rbpool",
                                                                  size=REPLICA, thin=True))


def legs(nu: str) -> dict[str, str]:
    with dm.DeviceMapper() as ctl:
        prefix = f"MAYASTOR-{NODE}-nexus-{nu}-"
        return {d.name[len(prefix):]: ctl.info(d.name).devnode for d in ctl.list_devices()
                if d.name.startswith(prefix) and d.name.endswith("-data")}


def digests(dev: str) -> bytes:
    fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
    try:
        return scan_range(fd, 0, SIZE, 4 * MiB, AlignedBuffer(MiB))
    finally:
        os.close(fd)


def mapped(name: str) -> int:
    with dm.DeviceMapper() as ctl:
        return ThinStatus.parse(ctl.status(f"MAYASTOR-{NODE}-thin-{name}")[0].params).mapped_sectors * 512


@pytest.mark.timeout(1200)  # a throttled copy under fio on one loaded vCPU
def test_full_rebuild_onto_a_remote_child_under_fio_verify(daemon, tmp_path):
    c = daemon.client
    c.pool.CreatePool(P.pool.CreatePoolRequest(name="rbpool", disks=[f"aio://{tmp_path}/rb.img?size_mb=1024"]))
    src = replica(c, "rb-src")
    nu = U()
    local = f"bdev:///rb-src?uuid={src.uuid}"
    c.nexus.CreateNexus(P.nexus.CreateNexusRequest(name=f"{NODE}-vol", uuid=nu, size=SIZE, children=[local]))
    c.nexus.PublishNexus(P.nexus.PublishNexusRequest(uuid=nu, share=1, allowed_hosts=[HOST]))
    run("nvme", "connect", "-t", "tcp", "-a", "127.0.0.1", "-s", "4421", "-n", f"nqn.2019-05.io.openebs:{NODE}-vol",
        "-q", HOST)
    dev = nvme_fabrics.wait_for_namespace(nu, timeout=120).path
    # 24 MiB of data at the start, the rest of the volume never written
    run("fio", "--name=fill", f"--filename={dev}", "--rw=write", "--bs=1M", "--size=24M", "--direct=1",
        "--ioengine=libaio")
    # the new child: a replica of this node reached over NVMe-oF TCP, like one of another node
    dst = replica(c, "rb-dst")
    remote = c.replica.ShareReplica(P.replica.ShareReplicaRequest(uuid=dst.uuid, share=1)).uri
    assert remote.startswith("nvmf://127.0.0.1:8420/") and f"uuid={dst.uuid}" in remote
    set_rate(c, nu, 8 * MiB)
    # fio writes and reads back (crc32c verify) over and over while the rebuild runs
    done = threading.Event()
    fio_runs: list[tuple[float, float, subprocess.CompletedProcess]] = []  # wall-clock start, end

    def writer():
        k = 0
        while not done.is_set():
            began = time.time()
            res = subprocess.run(
                ["fio", "--name=v", f"--filename={dev}", "--rw=randwrite", "--bs=4k", "--size=8M",
                 "--offset=32M", "--direct=1", "--ioengine=libaio", "--iodepth=4",
                 "--verify=crc32c", "--verify_fatal=1", "--verify_state_save=0", f"--randseed={k + 1}"],
                capture_output=True, text=True, timeout=600)
            fio_runs.append((began, time.time(), res))
            k += 1

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        n = c.nexus.AddChildNexus(P.nexus.AddChildNexusRequest(uuid=nu, uri=remote)).nexus
        assert (child(n, remote).state, get(c, nu).state) == (DEGRADED, DEGRADED)
        wait_for(lambda: stats(c, nu, remote).blocks_recovered > 0, 120, "copy progress")
        # pause: nothing moves; resume: it does again
        c.nexus.PauseRebuild(P.nexus.PauseRebuildRequest(nexus_uuid=nu, uri=remote))
        assert state(c, nu, remote) == "paused"
        time.sleep(1.5)
        at = stats(c, nu, remote).blocks_recovered
        time.sleep(2)
        assert stats(c, nu, remote).blocks_recovered == at
        c.nexus.ResumeRebuild(P.nexus.ResumeRebuildRequest(nexus_uuid=nu, uri=remote))
        assert state(c, nu, remote) == "running"
        set_rate(c, nu, 0)  # applies to the passes after this one
        wait_for(lambda: child(get(c, nu), remote).state == ONLINE, 300, "the new child in sync")
        t_online = time.time()
        wait_for(lambda: any(a > t_online for a, _, _ in fio_runs), 120, "a fio run on the rebuilt nexus")
    finally:
        done.set()
        t.join(600)
    bad = [r for _, _, r in fio_runs if r.returncode != 0]
    assert not bad, bad[0].stdout[-2000:] + bad[0].stderr[-2000:]
    assert get(c, nu).state == ONLINE
    by_leg = legs(nu)
    assert len(by_leg) == 2
    d = {name: digests(path) for name, path in by_leg.items()}
    assert len(set(d.values())) == 1, "legs differ after the rebuild"
    # thin: the copy allocated about what the source holds (data + fio's writes), not the volume
    assert mapped(dst.uuid) <= 1.1 * mapped(src.uuid)
    assert mapped(dst.uuid) < SIZE // 2
    rec = c.nexus.GetRebuildHistory(P.nexus.RebuildHistoryRequest(uuid=nu)).records
    assert [(h.child_uri, h.is_partial, h.state) for h in rec] == [(remote, False, COMPLETED)]
    assert 0 < rec[0].blocks_transferred * 512 < SIZE
    # fio was writing and verifying while the rebuild ran, and once more after it
    began, ended = rec[0].start_time.ToSeconds(), rec[0].end_time.ToSeconds()
    assert any(a < ended and b > began for a, b, _ in fio_runs)
    assert any(a > ended for a, _, _ in fio_runs)
    with dm.DeviceMapper() as ctl:  # the era layer is gone, the top maps the raid again
        assert not ctl.exists(f"MAYASTOR-{NODE}-nexus-{nu}-era")


@pytest.mark.timeout(1200)
def test_stop_start_and_kill9_resume_from_checkpoint(daemon, tmp_path):
    c = daemon.client
    c.pool.CreatePool(P.pool.CreatePoolRequest(name="rbpool", disks=[f"aio://{tmp_path}/rb.img?size_mb=1024"]))
    src = replica(c, "rk-src")
    nu = U()
    local = f"bdev:///rk-src?uuid={src.uuid}"
    c.nexus.CreateNexus(P.nexus.CreateNexusRequest(name="rk", uuid=nu, size=SIZE, children=[local]))
    with dm.DeviceMapper() as ctl:
        top = ctl.info(f"MAYASTOR-{NODE}-nexus-{nu}").devnode
    run("fio", "--name=fill", f"--filename={top}", "--rw=write", "--bs=1M", "--direct=1", "--ioengine=libaio",
        "--buffer_pattern=0x5a")
    set_rate(c, nu, 16 * MiB)
    # stop mid-copy: the child stays out of sync, the history says stopped; start runs it again
    r2 = replica(c, "rk-2")
    uri2 = f"bdev:///rk-2?uuid={r2.uuid}"
    c.nexus.AddChildNexus(P.nexus.AddChildNexusRequest(uuid=nu, uri=uri2))
    wait_for(lambda: stats(c, nu, uri2).blocks_recovered > 0, 120, "copy progress")
    c.nexus.StopRebuild(P.nexus.StopRebuildRequest(nexus_uuid=nu, uri=uri2))
    n = get(c, nu)
    assert (child(n, uri2).state, n.state) == (DEGRADED, DEGRADED)
    rec = c.nexus.GetRebuildHistory(P.nexus.RebuildHistoryRequest(uuid=nu)).records
    assert [(h.child_uri, h.state) for h in rec] == [(uri2, STOPPED)]
    with dm.DeviceMapper() as ctl:
        assert not ctl.exists(f"MAYASTOR-{NODE}-nexus-{nu}-era")
    c.nexus.StartRebuild(P.nexus.StartRebuildRequest(nexus_uuid=nu, uri=uri2))
    wait_for(lambda: stats(c, nu, uri2).blocks_recovered > SIZE // 512 // 8, 120, "an eighth copied")
    # kill -9 mid-copy; the restarted daemon carries on from the checkpoint
    daemon.kill9()
    c = daemon.start(timeout=180)
    wait_for(lambda: child(get(c, nu), uri2).state == ONLINE, 300, "the child in sync after the restart")
    rec = c.nexus.GetRebuildHistory(P.nexus.RebuildHistoryRequest(uuid=nu)).records
    assert [(h.child_uri, h.state) for h in rec] == [(uri2, STOPPED), (uri2, COMPLETED)]
    # one job across the restart: it read the device about once, not twice
    finished = [r for r in rebuild_rows(daemon) if r["state"] == "completed"][0]
    assert finished["bytes_read"] < 1.2 * SIZE and finished["checkpoint"] == SIZE
    assert len({digests(p) for p in legs(nu).values()}) == 1


def rebuild_rows(d: Daemon) -> list[dict]:
    """The daemon's rebuild_jobs rows, read straight from its SQLite file."""
    conn = sqlite3.connect(d.state_db)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM rebuild_jobs ORDER BY id")]
    finally:
        conn.close()
