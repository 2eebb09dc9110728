"""BdevRpc as Mayastor's v1 nexus scenarios use it: RAM and null bdevs made by URI, shared over
NVMe-oF, used as nexus children (by share URI from a nexus, and by name as bdev:///), listed
beside the pools, replicas and nexuses io-engine lists as bdevs, brought back by a restart and
destroyed without leaving anything in the kernel."""

from __future__ import annotations

import glob
import os
import uuid

import grpc
import pytest

from mayastor.grpc import protos as P
from mayastor.kernel import block, dm

from .daemon import serve
from .util import code_of, pattern, read_direct, write_direct

MiB = 1 << 20
NODE = "bdevs"
B = P.bdev


@pytest.fixture
def daemon(tmp_path, request):
    yield from serve(tmp_path, request, NODE)


def U() -> str:
    return str(uuid.uuid4())


def bdevs(c) -> dict:
    return {b.name: b for b in c.bdev.List(B.ListBdevOptions()).bdevs}


def our_dm() -> list[str]:
    with dm.DeviceMapper() as ctl:
        return [d.name for d in ctl.list_devices() if d.name.startswith(f"MAYASTOR-{NODE}-bdev-")]


def ram_files() -> list[str]:
    return glob.glob(f"/run/mayastor/malloc/bdevs/{NODE}-*")


@pytest.mark.timeout(900)
def test_bdev_tour(daemon, tmp_path):
    c = daemon.client
    m = c.bdev.Create(B.CreateBdevRequest(uri="malloc:///m0?size_mb=16")).bdev
    assert (m.name, m.num_blocks, m.blk_size, m.product_name) == ("m0", 16 * MiB // 512, 512, "Malloc disk")
    assert m.uri == f"malloc:///m0?size_mb=16&uuid={m.uuid}" and m.share_uri == "bdev:///m0"
    n = c.bdev.Create(B.CreateBdevRequest(uri="null:///null00?blk_size=512&size_mb=100")).bdev
    assert (n.num_blocks, n.product_name) == (100 * MiB // 512, "Null disk") and len(our_dm()) == 1
    f4k = c.bdev.Create(B.CreateBdevRequest(uri="malloc:///m4k?num_blocks=1024&blk_size=4096")).bdev
    assert (f4k.num_blocks, f4k.blk_size) == (1024, 4096)

    # refused, nothing made
    for uri, code in (("malloc:///m0?size_mb=16", grpc.StatusCode.ALREADY_EXISTS),
                      ("malloc:///mx", grpc.StatusCode.INVALID_ARGUMENT),
                      ("null:///nx?size_mb=8&blk_size=4096", grpc.StatusCode.INVALID_ARGUMENT),
                      ("nvmf://127.0.0.1:8420/nqn.2019-05.io.openebs:x?uuid=" + U(), grpc.StatusCode.INVALID_ARGUMENT),
                      ("pcie:///0000:00:01.0", grpc.StatusCode.INVALID_ARGUMENT),
                      ("malloc:///../x?size_mb=1", grpc.StatusCode.INVALID_ARGUMENT)):
        assert code_of(c.bdev.Create, B.CreateBdevRequest(uri=uri)) == code, uri
    assert sorted(bdevs(c)) == ["m0", "m4k", "null00"] and len(ram_files()) == 2 and len(our_dm()) == 1
    assert code_of(c.bdev.Destroy, B.DestroyBdevRequest(uri="malloc:///nope?size_mb=1")) == grpc.StatusCode.NOT_FOUND
    assert code_of(c.bdev.Share, B.BdevShareRequest(name="nope", protocol=1)) == grpc.StatusCode.NOT_FOUND
    assert code_of(c.bdev.Share, B.BdevShareRequest(name="m0", protocol=2)) == grpc.StatusCode.INVALID_ARGUMENT

    # shared over NVMe-oF; a nexus takes one bdev by its share URI and the other by name
    shared = c.bdev.Share(B.BdevShareRequest(name="null00", protocol=1)).bdev
    assert shared.share_uri.startswith("nvmf://") and shared.share_uri.endswith(
        f"/nqn.2019-05.io.openebs:null00?uuid={n.uuid}")
    assert bdevs(c)["null00"].share_uri == shared.share_uri
    nu = U()
    nx = c.nexus.CreateNexus(P.nexus.CreateNexusRequest(
        name=nu, uuid=nu, size=16 * MiB, children=[f"bdev:///m0?uuid={m.uuid}", shared.share_uri])).nexus
    assert [ch.state for ch in nx.children] == [1, 1]
    listed = bdevs(c)
    assert listed[nu].product_name == "Nexus CAS Driver v0.0.1" and listed[nu].uuid == nu
    dev = c.nexus.PublishNexus(P.nexus.PublishNexusRequest(uuid=nu, share=0)).nexus.device_uri
    path = dev.replace("file://", "")
    data = pattern(7, 64 * 1024)
    write_direct(path, 3 * MiB, data)
    assert read_direct(path, 3 * MiB, len(data)) == data
    ram = [f for f in ram_files() if f.endswith("-m0")][0]
    with open(ram, "rb") as fh:  # the RAM bdev holds the nexus's data (children carry data only)
        fh.seek(3 * MiB)
        assert fh.read(len(data)) == data
    # a bdev a nexus uses as a child is not destroyed under it (io-engine would hot-remove the child)
    assert code_of(c.bdev.Destroy, B.DestroyBdevRequest(uri="malloc:///m0?size_mb=16")) == \
        grpc.StatusCode.FAILED_PRECONDITION
    assert os.path.exists(ram) and read_direct(path, 3 * MiB, len(data)) == data
    c.nexus.DestroyNexus(P.nexus.DestroyNexusRequest(uuid=nu))
    assert os.path.exists(ram)  # a nexus does not own a bdev: it stays

    # listed beside pools and replicas, as io-engine's bdev list
    c.pool.CreatePool(P.pool.CreatePoolRequest(name="p0", disks=["malloc:///disk0?size_mb=64"]))
    ru = U()
    c.replica.CreateReplica(P.replica.CreateReplicaRequest(name="r0", uuid=ru, pooluuid="p0", size=8 * MiB,
                                                           thin=True))
    listed = bdevs(c)
    assert listed["disk0"].claimed and listed["disk0"].claimed_by == "lvol"
    assert listed[ru].aliases == "p0/r0" and listed[ru].product_name == "Logical Volume"
    assert not listed["m0"].claimed and listed["m0"].claimed_by == "Orphaned"
    assert [b.name for b in c.bdev.List(B.ListBdevOptions(name=P.pool.google_dot_protobuf_dot_wrappers__pb2
                                                            .StringValue(value="m0"))).bdevs] == ["m0"]

    # a restart brings them back, the share too, and the RAM bdev's data
    daemon.stop()
    daemon.start()
    c = daemon.client
    assert {"m0", "m4k", "null00"} <= set(bdevs(c)) and bdevs(c)["null00"].share_uri == shared.share_uri
    with open(ram, "rb") as fh:
        fh.seek(3 * MiB)
        assert fh.read(len(data)) == data

    # a null bdev reads zeros
    with dm.DeviceMapper() as ctl:
        null_dev = ctl.info(our_dm()[0]).devnode
    assert block.size_bytes(null_dev) == 100 * MiB and read_direct(null_dev, 0, 4096) == bytes(4096)

    # unshare and destroy: nothing left
    c.bdev.Unshare(B.BdevUnshareRequest(name="null00"))
    assert bdevs(c)["null00"].share_uri == "bdev:///null00"
    assert not os.path.isdir("/sys/kernel/config/nvmet/subsystems/nqn.2019-05.io.openebs:null00")
    c.bdev.Share(B.BdevShareRequest(name="m4k", protocol=1))
    for b in ("malloc:///m0?size_mb=16", "null:///null00?blk_size=512&size_mb=100", "m4k"):
        c.bdev.Destroy(B.DestroyBdevRequest(uri=b))
    assert not os.path.isdir("/sys/kernel/config/nvmet/subsystems/nqn.2019-05.io.openebs:m4k")
    assert ram_files() == [] and our_dm() == []
    assert sorted(bdevs(c)) == sorted(["disk0", ru])
