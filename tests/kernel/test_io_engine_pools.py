"""Pools as Mayastor's own v1 pool and replica scenarios make them: RAM disks
(`malloc:///disk0?size_mb=100`), capacity and `used` as io-engine reports them, block sizes,
export/import, and a restart; a RAM disk's memory is given back when its pool goes."""

from __future__ import annotations

import glob
import os
import uuid

import grpc
import pytest

from mayastor.grpc import protos as P
from mayastor.kernel import block, dm

from .daemon import serve
from .util import code_of

MiB = 1 << 20
NODE = "iopools"
RAM_DIR = "/run/mayastor/malloc"


@pytest.fixture
def daemon(tmp_path, request):
    yield from serve(tmp_path, request, NODE)


def U() -> str:
    return str(uuid.uuid4())


def ram_files() -> list[str]:
    return sorted(glob.glob(f"{RAM_DIR}/**/*{NODE}*", recursive=True))


def pool_named(c, name):
    return [p for p in c.pool.ListPools(P.pool.ListPoolOptions()).pools if p.name == name]


@pytest.mark.timeout(900)
def test_ram_disk_pools_as_io_engine_makes_them(daemon, tmp_path):
    c = daemon.client
    p0 = c.pool.CreatePool(P.pool.CreatePoolRequest(name="p0", disks=["malloc:///disk0?size_mb=100"]))
    assert p0.state == 1 and p0.capacity == 96 * MiB and p0.used == 0  # io-engine: one 4 MiB cluster of overhead
    assert p0.disks[0].startswith("malloc:///disk0?size_mb=100&uuid=")
    assert len(ram_files()) == 1
    # the same again: ALREADY_EXISTS; another block size than io-engine's two: INVALID_ARGUMENT
    assert code_of(c.pool.CreatePool, P.pool.CreatePoolRequest(name="p0", disks=["malloc:///disk0?size_mb=100"])) \
        == grpc.StatusCode.ALREADY_EXISTS
    assert code_of(c.pool.CreatePool, P.pool.CreatePoolRequest(
        name="p9", disks=["malloc:///disk9?size_mb=100&blk_size=1024"])) == grpc.StatusCode.INVALID_ARGUMENT
    assert len(ram_files()) == 1
    p1 = c.pool.CreatePool(P.pool.CreatePoolRequest(name="p1", disks=["malloc:///disk1?size_mb=64&blk_size=4096"]))
    with dm.DeviceMapper() as ctl:
        data = [d.name for d in ctl.list_devices() if d.name.startswith(f"MAYASTOR-{NODE}-pool-{p1.uuid}-tpool")]
        assert block.logical_block_size(ctl.info(data[0]).devnode) == 4096

    # a nexus child named like the pool's disk is another RAM disk (gone with its nexus): the pool stays
    nu = U()
    c.nexus.CreateNexus(P.nexus.CreateNexusRequest(name=nu, uuid=nu, size=8 * MiB,
                                                   children=["malloc:///disk0?size_mb=8"]))
    c.nexus.DestroyNexus(P.nexus.DestroyNexusRequest(uuid=nu))
    assert pool_named(c, "p0")[0].state == 1 and len(ram_files()) == 2

    # a thick replica counts in full at once, a thin one as it is written
    thick = c.replica.CreateReplica(P.replica.CreateReplicaRequest(name="r1", uuid=U(), pooluuid="p0",
                                                                   size=40 * MiB, thin=False))
    c.replica.CreateReplica(P.replica.CreateReplicaRequest(name="r2", uuid=U(), pooluuid="p0", size=40 * MiB,
                                                           thin=True))
    assert pool_named(c, "p0")[0].used == 40 * MiB
    assert code_of(c.replica.CreateReplica, P.replica.CreateReplicaRequest(
        name="r3", uuid=U(), pooluuid="p0", size=60 * MiB, thin=False)) == grpc.StatusCode.RESOURCE_EXHAUSTED

    # export keeps the RAM disk (and its label): import brings the pool and its replicas back
    c.pool.ExportPool(P.pool.ExportPoolRequest(name="p0"))
    assert pool_named(c, "p0") == []
    back = c.pool.ImportPool(P.pool.ImportPoolRequest(name="p0", disks=["malloc:///disk0?size_mb=100"]))
    assert back.uuid == p0.uuid and back.used == 40 * MiB
    assert {r.name for r in c.replica.ListReplicas(P.replica.ListReplicaOptions()).replicas} == {"r1", "r2"}

    # a restart of the daemon finds the RAM disk again
    daemon.stop()
    daemon.start()
    c = daemon.client
    assert pool_named(c, "p0")[0].state == 1 and pool_named(c, "p0")[0].used == 40 * MiB
    c.replica.DestroyReplica(P.replica.DestroyReplicaRequest(uuid=thick.uuid))

    # destroy gives the memory back
    c.pool.DestroyPool(P.pool.DestroyPoolRequest(name="p0"))
    c.pool.DestroyPool(P.pool.DestroyPoolRequest(name="p1"))
    assert ram_files() == []


@pytest.mark.timeout(600)
def test_a_64_mib_aio_pool_reports_io_engines_capacity(daemon, tmp_path):
    img = tmp_path / "disk0.img"
    with open(img, "wb") as f:
        f.truncate(64 * MiB)
    p = daemon.client.pool.CreatePool(P.pool.CreatePoolRequest(name="p0", disks=[f"aio://{img}"]))
    assert p.capacity == 62914560 and p.disk_capacity == 64 * MiB
    assert os.path.getsize(img) == 64 * MiB
