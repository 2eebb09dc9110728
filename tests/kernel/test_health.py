"""Health scans in the VM: TestRpc WipeReplica (CRC-32C checksum, write zeroes, unmap) and a
nexus verify over a local replica, a replica of node 2 over nvme-tcp (its digests served by node
2) and a malloc child: a segment corrupted behind the nexus is found, named by offset, confirmed
by md's own check, repaired through md; a verify during writes reports no false mismatch."""

from __future__ import annotations

import json
import os
import subprocess

import grpc
import pytest
from google.protobuf.empty_pb2 import Empty

from mayastor._native.scan import crc32c, digest_bytes
from mayastor.grpc import protos as P

from .test_nexus import wait_for
from .test_nexus_two_nodes import U, data_legs, nodes, replica  # noqa: F401  (nodes: the fixture)
from .util import code_of, pattern, read_direct, replica_dev, write_direct

MiB = 1 << 20
META = 0  # the raid metadata lives on the nexus's node: nexus offset x is child offset x
SIZE = 64 * MiB
NONE, WRITE_ZEROES, UNMAP, WRITE_PATTERN, CHECKSUM = 0, 1, 2, 3, 4


def jrpc(c, method: str, **params) -> dict:
    return json.loads(c.json.JsonRpcCall(P.json.JsonRpcRequest(method=method, params=json.dumps(params))).result)


def wipe(c, uuid: str, method: int, chunk: int = 0, **pool):
    req = P.test.WipeReplicaRequest(uuid=uuid, wipe_options=P.test.StreamWipeOptions(
        options=P.test.WipeOptions(wipe_method=method), chunk_size=chunk), **pool)
    return list(c.test.WipeReplica(req))


def writes_done(dev: str) -> int:
    """Writes completed by a block device (/sys/class/block/<dev>/stat, field 5)."""
    with open(f"/sys/class/block/{os.path.basename(os.path.realpath(dev))}/stat") as f:
        return int(f.read().split()[4])


def read_all(dev: str, size: int) -> bytes:
    return b"".join(read_direct(dev, off, min(8 * MiB, size - off)) for off in range(0, size, 8 * MiB))


@pytest.mark.timeout(600)
def test_wipe_replica_checksum_zeroes_unmap(nodes, tmp_path):
    _, n2 = nodes
    c = n2.client
    r = replica(c, tmp_path, "nx2", "wipe-r", 24 * MiB)
    dev = replica_dev("nx2", r.uuid)
    for i in range(0, 24, 3):
        write_direct(dev, i * MiB, os.urandom(MiB))
    feats = c.test.GetFeatures(Empty())
    assert CHECKSUM in feats.wipe_methods and list(feats.cksum_algs) == [0]

    # CHECKSUM: one CRC-32C over the whole replica, running after each chunk, final at the end
    data = read_all(dev, 24 * MiB)
    out = wipe(c, r.uuid, CHECKSUM, chunk=8 * MiB, pool_name="nx2-pool")
    assert [m.wiped_chunks for m in out] == [0, 1, 2, 3]
    assert out[0].total_bytes == 24 * MiB and out[0].total_chunks == 3 and out[-1].remaining_bytes == 0
    assert out[1].crc32 == crc32c(data[:8 * MiB])  # running, not finalized
    assert out[-1].crc32 == digest_bytes(data, "crc32c") != 0
    assert read_all(dev, 24 * MiB) == data  # a checksum writes nothing

    # bad requests change nothing
    assert code_of(wipe, c, r.uuid, CHECKSUM, 1000) == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(wipe, c, r.uuid, CHECKSUM, 48 * MiB) == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(wipe, c, r.uuid, CHECKSUM, 16 * 1024) == grpc.StatusCode.INVALID_ARGUMENT  # 1536 chunks
    assert code_of(wipe, c, r.uuid, WRITE_PATTERN) == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(wipe, c, U(), CHECKSUM) == grpc.StatusCode.NOT_FOUND
    assert code_of(wipe, c, r.uuid, CHECKSUM, 0, pool_name="nopool") == grpc.StatusCode.NOT_FOUND
    assert code_of(wipe, c, "not-a-uuid", CHECKSUM) == grpc.StatusCode.INVALID_ARGUMENT
    assert read_all(dev, 24 * MiB) == data

    # WRITE_ZEROES, then the checksum is that of zeros
    out = wipe(c, r.uuid, WRITE_ZEROES, chunk=4 * MiB)
    assert out[-1].wiped_bytes == 24 * MiB and out[-1].wiped_chunks == 6
    assert read_all(dev, 24 * MiB) == bytes(24 * MiB)
    assert wipe(c, r.uuid, CHECKSUM)[-1].crc32 == digest_bytes(bytes(24 * MiB), "crc32c")

    # UNMAP gives the thin pool its blocks back
    write_direct(dev, 0, os.urandom(8 * MiB))
    before = c.replica.ListReplicas(P.replica.ListReplicaOptions(uuid={"value": r.uuid})).replicas[0].usage.allocated_bytes
    wipe(c, r.uuid, UNMAP)
    after = c.replica.ListReplicas(P.replica.ListReplicaOptions(uuid={"value": r.uuid})).replicas[0].usage.allocated_bytes
    assert after < before and read_direct(dev, 0, MiB) == bytes(MiB)


@pytest.mark.timeout(900)
def test_verify_finds_names_and_repairs_a_corrupted_segment(nodes, tmp_path):
    n1, n2 = nodes
    c1, c2 = n1.client, n2.client
    local = replica(c1, tmp_path, "nx1", "hv-r1", SIZE)  # exactly the nexus size
    remote = replica(c2, tmp_path, "nx2", "hv-r2", SIZE, share=1)
    children = [f"bdev:///hv-r1?uuid={local.uuid}", remote.uri, f"malloc:///hv-m?size_mb={SIZE >> 20}"]
    nu = U()
    c1.nexus.CreateNexus(P.nexus.CreateNexusRequest(name="hv", uuid=nu, size=SIZE, children=children))
    dev = c1.nexus.PublishNexus(P.nexus.PublishNexusRequest(uuid=nu, share=0)).nexus.device_uri[len("file://"):]
    for i in range(0, SIZE // MiB, 4):
        write_direct(dev, i * MiB, pattern(i, MiB))
    peers = {"127.0.0.3": "127.0.0.1:10125"}  # node 2's gRPC (the default is <child host>:<our port>)

    clean = jrpc(c1, "nexus_verify", uuid=nu, peers=peers)
    assert clean["mismatches"] == [] and clean["segments"] == SIZE // MiB
    assert [ch["via"] for ch in clean["children"]] == ["local", "peer 127.0.0.1:10125", "local"]

    # corrupt 4 KiB of node 2's replica behind the nexus (nexus offset 20 MiB + 8 KiB)
    rdev = replica_dev("nx2", remote.uuid)
    good = read_direct(rdev, META + 20 * MiB, MiB)
    write_direct(rdev, META + 20 * MiB + 8192, b"\xa5" * 4096)

    found = jrpc(c1, "nexus_verify", uuid=nu, peers=peers)
    assert [(m["offset"], m["length"]) for m in found["mismatches"]] == [(20 * MiB, MiB)]
    m = found["mismatches"][0]
    assert m["source"] == children[0] and "majority (2 of 3)" in m["decision"] and not m["repaired"]
    assert m["digests"][children[0]] == m["digests"][children[2]] != m["digests"][remote.uri]
    # without the peer map node 1 reads the remote child through its own nvme-tcp connection
    via_path = jrpc(c1, "nexus_verify", uuid=nu, segment=256 * 1024, algorithm="crc32c")
    assert via_path["children"][1]["via"] == "nexus path"
    assert [(x["offset"], x["length"]) for x in via_path["mismatches"]] == [(20 * MiB, 256 * 1024)]

    # md's own check sees it too (mismatch_cnt in the nexus's health)
    assert jrpc(c1, "nexus_check", uuid=nu, start=True)["sync_action"] in ("check", "idle")
    chk = wait_for(lambda: (lambda s: s if s["sync_action"] == "idle" else None)(jrpc(c1, "nexus_check", uuid=nu)),
                   120, "md check finished")
    assert chk["mismatch_cnt"] > 0

    fixed = jrpc(c1, "nexus_verify", uuid=nu, peers=peers, repair=True)
    assert fixed["repaired"] == 1 and fixed["mismatches"][0]["repaired"]
    assert read_direct(rdev, META + 20 * MiB, MiB) == good == pattern(20, MiB)
    assert jrpc(c1, "nexus_verify", uuid=nu, peers=peers)["mismatches"] == []
    legs = data_legs(nu)
    assert len({digest_bytes(read_all(x, SIZE)) for x in legs}) == 1

    # a verify while fio writes: writes reach the legs one after the other, so the first pass sees
    # segments that differ for a moment; confirmed with I/O held, none of them is reported
    fio = subprocess.Popen(
        ["fio", "--name=busy", f"--filename={dev}", "--rw=randwrite", "--bs=64k", "--direct=1",
         "--ioengine=psync", f"--size={SIZE}", "--time_based", "--runtime=600"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    runs = []
    try:
        w0 = writes_done(dev)
        wait_for(lambda: writes_done(dev) > w0 + 100, 60, "fio writing")  # fio starts slowly under TCG
        while len(runs) < 5 and not any(r["transient"] for r in runs):
            runs.append(jrpc(c1, "nexus_verify", uuid=nu, peers=peers, segment=256 * 1024))
    finally:
        fio.terminate()
        fio.communicate(timeout=60)
    print("verify under writes (transient, seconds):", [(r["transient"], r["seconds"]) for r in runs])
    assert all(r["mismatches"] == [] for r in runs)
    assert any(r["transient"] for r in runs)  # the confirmation step did run

    # bad requests
    assert code_of(jrpc, c1, "nexus_verify", uuid=U()) == grpc.StatusCode.NOT_FOUND
    assert code_of(jrpc, c1, "nexus_verify", uuid=nu, segment=1000) == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(jrpc, c1, "nexus_verify", uuid=nu, peers={"x": "no port"}) == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(jrpc, c2, "replica_digests", uuid=remote.uuid, offset=0, length=SIZE * 2) == \
        grpc.StatusCode.INVALID_ARGUMENT
    c1.nexus.ChildOperation(P.nexus.ChildOperationRequest(nexus_uuid=nu, uri=children[2], action=0))  # offline
    assert code_of(jrpc, c1, "nexus_verify", uuid=nu) == grpc.StatusCode.FAILED_PRECONDITION
