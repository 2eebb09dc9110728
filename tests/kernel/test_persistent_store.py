"""NexusInfo in a real etcd (Debian's etcd-server, started here) with the daemon's ``-p``: start-up
waits for etcd; the value at the control plane's key after every event of the contract (create,
fault, add child, rebuild done, remove child, shutdown, destroy); I/O held while a put is in
flight; a put that cannot be made shuts the nexus down."""

from __future__ import annotations

import os
import threading
import uuid

import grpc
import pytest

from mayastor.grpc import protos as P
from mayastor.kernel import dm
from tests.etcd_server import EtcdServer

from .daemon import RESULTS, serve
from .util import code_of, wait_for

MiB = 1 << 20
NODE = "ps1"
SIZE = 64 * MiB
SHUTDOWN = 5  # NexusState
KEY = "/openebs.io/mayastor/apis/v0/clusters/bdd/namespaces/default/volume/{v}/nexus/{n}/info"


def U() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def etcd(tmp_path, request):
    log = os.path.join(RESULTS, f"etcd-{request.node.name}.log")
    if os.path.exists(log):
        os.unlink(log)
    e = EtcdServer(str(tmp_path / "etcd"), log)  # started by the test
    yield e
    e.stop()


@pytest.fixture
def daemon(etcd, tmp_path, request):
    # five tries of 2 s: a paused etcd holds a put for ~15 s, long enough to look at the nexus
    yield from serve(tmp_path, request, NODE, start=False,
                     extra_args=("-p", etcd.endpoint, "--ps-timeout", "2s", "--ps-retries", "5"))


def top_suspended(nexus_uuid: str) -> bool:
    with dm.DeviceMapper() as ctl:
        return ctl.info(f"MAYASTOR-{NODE}-nexus-{nexus_uuid}").suspended


def in_background(call, *args):
    out: dict = {}

    def run():
        try:
            out["reply"] = call(*args, timeout=600)
        except grpc.RpcError as exc:
            out["code"] = exc.code()
    t = threading.Thread(target=run)
    t.start()
    return t, out


@pytest.mark.timeout(1500)
def test_nexus_info_in_etcd_at_every_event(etcd, daemon, tmp_path):
    # start-up waits for etcd, as io-engine's: no gRPC until it answers, said once
    daemon.spawn()
    wait_for(lambda: "failed to connect to etcd" in daemon.log(), 120, "the daemon waiting for etcd")
    ch = grpc.insecure_channel(f"127.0.0.1:{daemon.port}")
    with pytest.raises(grpc.FutureTimeoutError):
        grpc.channel_ready_future(ch).result(timeout=3)
    ch.close()
    etcd.start()
    c = daemon.wait_serving()
    assert daemon.log().count("failed to connect to etcd") == 1

    c.pool.CreatePool(P.pool.CreatePoolRequest(name="pspool", disks=[f"aio://{tmp_path}/pool.img?size_mb=600"]))
    reps = [c.replica.CreateReplica(P.replica.CreateReplicaRequest(
        name=U(), uuid=U(), pooluuid="pspool", size=SIZE, thin=True)) for _ in range(4)]  # the agent's size
    r0, r1, r2, r3 = reps
    uri = {r.uuid: f"bdev:///{r.name}?uuid={r.uuid}" for r in reps}
    vol, nu = U(), U()
    key = KEY.format(v=vol, n=nu)

    # create: every child healthy, no clean shutdown, before the nexus is listed
    c.nexus.CreateNexus(P.nexus.CreateNexusRequest(
        name=vol, uuid=nu, size=SIZE, children=[uri[r0.uuid], uri[r1.uuid]], nexusInfoKey=key,
        resvKey=(1 << 64) - 1, minCntlId=1, maxCntlId=2, resvType=2, preemptPolicy=1))
    assert etcd.get_json(key) == {"clean_shutdown": False, "children": [
        {"uuid": r0.uuid, "healthy": True}, {"uuid": r1.uuid, "healthy": True}]}

    # published: the namespace carries the volume's uuid (the CSI node plugin's uuid.<volume>)
    c.nexus.PublishNexus(P.nexus.PublishNexusRequest(uuid=nu, share=1, allowed_hosts=[]))
    ns = f"/sys/kernel/config/nvmet/subsystems/nqn.2019-05.io.openebs:{vol}/namespaces/1"
    assert open(f"{ns}/device_uuid").read().strip() == vol
    assert open(f"{ns}/device_nguid").read().strip() == vol

    # a fault while etcd hangs: I/O is held (the top device suspended) until the put lands
    etcd.pause()
    try:
        t, out = in_background(c.nexus.FaultNexusChild, P.nexus.FaultNexusChildRequest(uuid=nu, uri=uri[r1.uuid]))
        wait_for(lambda: top_suspended(nu), 30, "I/O held during the put")
        assert t.is_alive()
    finally:
        etcd.resume()
    t.join(timeout=600)
    assert "reply" in out, out
    assert not top_suspended(nu)
    assert etcd.get_json(key)["children"] == [{"uuid": r0.uuid, "healthy": True},
                                              {"uuid": r1.uuid, "healthy": False}]
    # the last healthy child cannot be faulted: nothing changes in etcd
    assert code_of(c.nexus.FaultNexusChild, P.nexus.FaultNexusChildRequest(uuid=nu, uri=uri[r0.uuid])) == \
        grpc.StatusCode.FAILED_PRECONDITION
    assert etcd.get_json(key)["children"][0] == {"uuid": r0.uuid, "healthy": True}

    # add a child: upserted unhealthy at once, healthy when its rebuild completes
    c.nexus.AddChildNexus(P.nexus.AddChildNexusRequest(uuid=nu, uri=uri[r2.uuid], norebuild=False))
    seen = etcd.get_json(key)["children"]
    assert seen[:2] == [{"uuid": r0.uuid, "healthy": True}, {"uuid": r1.uuid, "healthy": False}]
    assert seen[2]["uuid"] == r2.uuid
    wait_for(lambda: etcd.get_json(key)["children"][2]["healthy"], 300, "rebuilt child healthy in etcd")

    # remove the faulted child: dropped
    c.nexus.RemoveChildNexus(P.nexus.RemoveChildNexusRequest(uuid=nu, uri=uri[r1.uuid]))
    assert etcd.get_json(key) == {"clean_shutdown": False, "children": [
        {"uuid": r0.uuid, "healthy": True}, {"uuid": r2.uuid, "healthy": True}]}

    # shutdown and destroy: clean
    c.nexus.ShutdownNexus(P.nexus.ShutdownNexusRequest(uuid=nu))
    assert etcd.get_json(key)["clean_shutdown"] is True
    c.nexus.DestroyNexus(P.nexus.DestroyNexusRequest(uuid=nu))
    assert etcd.get_json(key) == {"clean_shutdown": True, "children": [
        {"uuid": r0.uuid, "healthy": True}, {"uuid": r2.uuid, "healthy": True}]}

    # no key given: the nexus uuid is the key. A put that cannot be made (etcd gone: a put to a
    # hung etcd may still land once it wakes) fails the call and the nexus shuts itself down, its
    # I/O held; etcd keeps the last value it had
    n2 = U()
    c.nexus.CreateNexus(P.nexus.CreateNexusRequest(name=U(), uuid=n2, size=SIZE,
                                                   children=[uri[r0.uuid], uri[r3.uuid]]))
    assert etcd.get_json(n2) == {"clean_shutdown": False, "children": [
        {"uuid": r0.uuid, "healthy": True}, {"uuid": r3.uuid, "healthy": True}]}
    before = etcd.get_json(n2)
    etcd.stop()
    try:
        assert code_of(c.nexus.FaultNexusChild, P.nexus.FaultNexusChildRequest(uuid=n2, uri=uri[r3.uuid])) == \
            grpc.StatusCode.INTERNAL
        assert top_suspended(n2)
        n = wait_for(lambda: (lambda x: x if x.state == SHUTDOWN else None)(
            c.nexus.ListNexus(P.nexus.ListNexusOptions(uuid={"value": n2})).nexus_list[0]), 300,
            "the nexus shut down after the failed put")
        assert n.state == SHUTDOWN and top_suspended(n2)
        # a create whose put fails leaves nothing behind
        n3 = U()
        assert code_of(c.nexus.CreateNexus, P.nexus.CreateNexusRequest(
            name=U(), uuid=n3, size=SIZE, children=[f"malloc:///ps3?size_mb=64&uuid={U()}"])) == \
            grpc.StatusCode.INTERNAL
        assert [n.uuid for n in c.nexus.ListNexus(P.nexus.ListNexusOptions()).nexus_list] == [n2]
        with dm.DeviceMapper() as ctl:
            assert not [d.name for d in ctl.list_devices() if n3 in d.name]
    finally:
        etcd.start()
    assert etcd.get_json(n2) == before
    assert etcd.get_json(n3) is None
