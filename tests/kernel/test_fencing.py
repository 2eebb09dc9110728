"""Fencing with NVMe reservations (contract §6): a volume's nexus moves from node 1 to node 2 the
way the control plane republishes it (a new key, ExclusiveAccess, the Holder policy; then back
with ArgKey and the old key as preempt key), and the old nexus is locked out of both replicas:
its legs fail with RESERVATION CONFLICT (its local replica it uses through that replica's share,
for the reservation to hold there too), it shuts itself down without retiring or rebuilding
anything, the fio --verify writing through it fails, and its late write is never acknowledged
and reaches neither replica.

Needs nvmet reservations (``resv_enable``, Linux 6.13+) and, because both "nodes" share one
kernel here, native multipath off (``nvme_core.multipath=N``): with it on, both hosts' controllers
of a replica would join one namespace head and the kernel would pick the path, not the host.
scripts/test runs this file on the newest kernel with that setting.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from urllib.parse import urlparse

import pytest

import configfs
from mayastor.grpc import protos as P
from mayastor.kernel import nvme_fabrics, nvme_pr

from .daemon import Daemon
from .util import destroy_all_and_stop, read_direct, replica_dev, run, wait_for

MiB = 1 << 20
SIZE = 64 * MiB
RESULTS = os.path.join(os.path.dirname(__file__), "..", "..", "test-results")
APP_ID = "aaaaaaaa-0000-4000-8000-00000000000a"
APP = f"nqn.2014-08.org.nvmexpress:uuid:{APP_ID}"
CHECK_ID = "cccccccc-0000-4000-8000-00000000000c"
CHECK = f"nqn.2014-08.org.nvmexpress:uuid:{CHECK_ID}"
EXCLUSIVE_ACCESS, ARG_KEY, HOLDER = 2, 0, 1
SHUTDOWN = 5
K1, K2, K3 = 0x1111000000000001, 0xFFFF000000000002, 0x3333000000000003  # uint64, one at the top
ENV = {"NEXUS_NVMF_RESV_ENABLE": "1"}


def U() -> str:
    return str(uuid.uuid4())


def kernel_has_reservations() -> bool:
    """Probe nvmet (not the version): does a namespace offer resv_enable?"""
    nqn = "nqn.2019-05.io.openebs.test:resv-probe"
    sub = configfs.Subsystem(nqn, "create")
    try:
        return os.path.exists(os.path.join(sub.namespace(1, "create").path, "resv_enable"))
    finally:
        sub.delete()


@pytest.fixture
def nodes(tmp_path, request):
    if not kernel_has_reservations():
        pytest.skip("nvmet has no reservations on this kernel (resv_enable appeared in 6.13)")
    if nvme_fabrics.multipath_enabled():
        pytest.skip("two nodes in one kernel need nvme_core.multipath=N (scripts/test boots it so)")
    made = []
    for name, addr in (("fn1", "127.0.0.2"), ("fn2", "127.0.0.3")):
        log = os.path.join(RESULTS, f"daemon-{request.node.name}-{name}.log")
        if os.path.exists(log):
            os.unlink(log)
        d = Daemon(str(tmp_path / f"{name}.db"), log, node=name, port=10124, target=addr, grpc_host=addr)
        d.start(env=ENV)
        made.append(d)
    yield made
    try:
        for c in nvme_fabrics.list_controllers():
            if c.attr("hostnqn") in (APP, CHECK):
                nvme_fabrics.disconnect(c)
        for d in made:
            if d.proc is None or d.proc.poll() is not None:
                d.start(env=ENV)
        destroy_all_and_stop(made, "MAYASTOR-fn")
    except BaseException:
        for d in made:
            d.kill9()
        from .util import force_cleanup
        force_cleanup()
        raise


def connect(uri: str, hostnqn: str, hostid: str) -> tuple[nvme_fabrics.Controller, str]:
    """A controller of ``hostnqn`` to the target of ``uri`` and its namespace 1 (multipath off:
    the node is the controller's own)."""
    u = urlparse(uri)
    ctrl = nvme_fabrics.connect(nvme_fabrics.ConnectOptions(
        nqn=u.path.lstrip("/"), traddr=u.hostname, trsvcid=u.port, hostnqn=hostnqn, hostid=hostid))
    dev = f"/dev/{ctrl.name}n1"
    wait_for(lambda: os.path.exists(dev), 60, f"namespace of {ctrl.name}")
    return ctrl, dev


def report(uri: str) -> nvme_pr.ReservationStatus:
    """Who holds the reservation on a replica's share, as a third host sees it."""
    ctrl, dev = connect(uri, CHECK, CHECK_ID)
    try:
        with nvme_pr.Namespace(dev) as ns:
            return ns.report()
    finally:
        nvme_fabrics.disconnect(ctrl)


def hostid_of(node: str) -> bytes:
    from mayastor.host_identity import host_identity
    return uuid.UUID(host_identity(node).hostid).bytes


def assert_held(uri: str, node: str, key: int) -> None:
    st = report(uri)
    holder = st.holder()
    assert st.rtype == EXCLUSIVE_ACCESS, st
    assert holder is not None and (holder.hostid, holder.key) == (hostid_of(node), key), st


def pwrite_direct(dev: str, offset: int, data: bytes, out: dict) -> None:
    """One O_DIRECT write through ``dev`` and no flush (util.write_direct's fsync could wait on a
    nexus that holds I/O); ``out`` says whether it returned and how."""
    import mmap
    buf = mmap.mmap(-1, len(data))
    buf.write(data)
    try:
        fd = os.open(dev, os.O_WRONLY | os.O_DIRECT)
        try:
            os.pwritev(fd, [buf], offset)
            out["ok"] = True
        finally:
            os.close(fd)
    except OSError as exc:
        out["error"] = exc.errno


def nexus_of(c, nu: str):
    return next((n for n in c.nexus.ListNexus(P.nexus.ListNexusOptions()).nexus_list if n.uuid == nu), None)


def fio_verify(dev: str) -> subprocess.CompletedProcess:
    return run("fio", "--name=v", f"--filename={dev}", "--rw=randwrite", "--bs=4k", "--size=16M", "--direct=1",
               "--ioengine=psync", "--verify=crc32c", "--do_verify=1", "--verify_fatal=1", timeout=900)


def create(c, vol: str, nu: str, children: list[str], key: int, policy: int, preempt: int = 0):
    return c.nexus.CreateNexus(P.nexus.CreateNexusRequest(
        name=vol, uuid=nu, size=SIZE, children=children, minCntlId=1, maxCntlId=0xFFEF,
        resvKey=key, preemptKey=preempt, resvType=EXCLUSIVE_ACCESS, preemptPolicy=policy)).nexus


def pool(c, tmp_path, name: str) -> str:
    c.pool.CreatePool(P.pool.CreatePoolRequest(name=name, disks=[f"aio://{tmp_path}/{name}.img?size_mb=256"]))
    return name


def replica(c, pool_name: str, share: int):
    return c.replica.CreateReplica(P.replica.CreateReplicaRequest(
        name=U(), uuid=U(), pooluuid=pool_name, size=SIZE, thin=True, share=share))


def write_in_background(dev: str, offset: int) -> tuple[threading.Thread, bytes, dict]:
    """A 64 KiB write through ``dev`` in a thread of its own (a fenced nexus may hold it): the
    thread, the data, and its outcome as pwrite_direct records it."""
    data, out = os.urandom(64 * 1024), {}
    writer = threading.Thread(target=pwrite_direct, args=(dev, offset, data, out), daemon=True)
    writer.start()
    return writer, data, out


@pytest.mark.timeout(2400)
def test_a_moved_nexus_fences_the_old_one(nodes, tmp_path):
    n1, n2 = nodes
    c1, c2 = n1.client, n2.client
    r1 = replica(c1, pool(c1, tmp_path, "fp1"), share=1)
    r2 = replica(c2, pool(c2, tmp_path, "fp2"), share=1)
    local = {r.uuid: f"bdev:///{r.name}?uuid={r.uuid}" for r in (r1, r2)}
    vol = U()

    # node 1's nexus: its own replica locally, node 2's over NVMe-oF; both reserved with K1
    na = U()
    create(c1, vol, na, [local[r1.uuid], r2.uri], K1, HOLDER)
    assert_held(r2.uri, "fn1", K1)
    assert_held(r1.uri, "fn1", K1)  # taken on the local replica's share through a loopback controller
    uri_a = c1.nexus.PublishNexus(P.nexus.PublishNexusRequest(uuid=na, share=1)).nexus.device_uri
    app_a, dev_a = connect(uri_a, APP, APP_ID)
    before = os.urandom(MiB)
    out: dict = {}
    pwrite_direct(dev_a, 0, before, out)
    assert out == {"ok": True}

    # an application keeps writing through it with fio --verify (a region of its own)
    app_fio = subprocess.Popen(
        ["fio", "--name=app", f"--filename={dev_a}", "--rw=randwrite", "--bs=4k", "--direct=1", "--ioengine=psync",
         "--offset=32M", "--size=8M", "--verify=crc32c", "--verify_backlog=64", "--verify_fatal=1",
         "--time_based", "--runtime=3600"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(2)
    assert app_fio.poll() is None, app_fio.communicate()[0]

    # the agent republishes on node 2: new key, no preempt key, ExclusiveAccess, Holder
    nb = U()
    create(c2, vol, nb, [r1.uri, local[r2.uuid]], K2, HOLDER)
    assert_held(r1.uri, "fn2", K2)
    assert_held(r2.uri, "fn2", K2)  # node 2's own replica, through its share

    # the old nexus writes once more: the remote leg is refused, the nexus stops by itself
    writer, late, out = write_in_background(dev_a, 4 * MiB)
    try:
        wait_for(lambda: nexus_of(c1, na).state == SHUTDOWN, 180, "the fenced nexus shutting itself down")
    except BaseException:
        os.kill(n1.proc.pid, signal.SIGUSR1)  # the daemon's threads into its log
        time.sleep(3)
        raise
    assert "reservation conflict" in n1.log()
    a = nexus_of(c1, na)
    history = c1.nexus.ListRebuildHistory(P.nexus.ListRebuildHistoryRequest()).histories
    assert na not in history or not history[na].records
    assert all(ch.rebuild_progress in (0, -1) for ch in a.children)
    # nothing of it reached either replica: node 2's (the new nexus uses it without nvmet) nor
    # node 1's own, which the old nexus used through its share, so the preempt locked it out too
    assert read_direct(replica_dev("fn2", r2.uuid), 4 * MiB, len(late)) != late
    assert read_direct(replica_dev("fn2", r2.uuid), 0, MiB) == before
    assert read_direct(replica_dev("fn1", r1.uuid), 4 * MiB, len(late)) != late
    assert read_direct(replica_dev("fn1", r1.uuid), 0, MiB) == before
    assert not out.get("ok"), out  # failed, or still held by the stopped nexus

    # the old nexus goes (its held I/O fails, it never reaches a replica); in one kernel its
    # target must go before the new nexus can publish under the same NQN (the volume's)
    nvme_fabrics.disconnect(app_a)
    c1.nexus.DestroyNexus(P.nexus.DestroyNexusRequest(uuid=na))
    writer.join(timeout=120)
    assert not writer.is_alive()
    assert out.get("error"), out  # the held write failed at destroy: never acknowledged
    assert read_direct(replica_dev("fn1", r1.uuid), 4 * MiB, len(late)) != late
    fio_out = app_fio.communicate(timeout=300)[0]
    assert app_fio.returncode != 0, fio_out  # the application saw its writes fail, none lost silently

    # the new nexus serves: fio --verify, no error
    uri_b = c2.nexus.PublishNexus(P.nexus.PublishNexusRequest(uuid=nb, share=1)).nexus.device_uri
    app_b, dev_b = connect(uri_b, APP, APP_ID)
    fio_verify(dev_b)
    assert read_direct(replica_dev("fn2", r2.uuid), 4 * MiB, len(late)) != late

    # and back to node 1 the other way: ArgKey with the holder's key to preempt
    nc = U()
    create(c1, vol, nc, [local[r1.uuid], r2.uri], K3, ARG_KEY, preempt=K2)
    assert_held(r1.uri, "fn1", K3)
    assert_held(r2.uri, "fn1", K3)
    writer, late, out = write_in_background(dev_b, 8 * MiB)  # B's first write after: refused on both legs
    wait_for(lambda: nexus_of(c2, nb).state == SHUTDOWN, 120, "nexus B shutting itself down")
    for node, r in (("fn1", r1), ("fn2", r2)):
        assert read_direct(replica_dev(node, r.uuid), 8 * MiB, len(late)) != late
    history = c2.nexus.ListRebuildHistory(P.nexus.ListRebuildHistoryRequest()).histories
    assert nb not in history or not history[nb].records
    nvme_fabrics.disconnect(app_b)
    c2.nexus.DestroyNexus(P.nexus.DestroyNexusRequest(uuid=nb))
    writer.join(timeout=120)
    assert not writer.is_alive() and out.get("error"), out
    uri_c = c1.nexus.PublishNexus(P.nexus.PublishNexusRequest(uuid=nc, share=1)).nexus.device_uri
    app_c, dev_c = connect(uri_c, APP, APP_ID)
    fio_verify(dev_c)

    # node 2 "reboots": nvmet forgets every registration (no persistence through power loss);
    # once its share is back, the child is brought online and the nexus registers again
    n2.kill9()
    configfs.Subsystem(urlparse(r2.uri).path.lstrip("/"), "lookup").delete()
    out = {}
    pwrite_direct(dev_c, 12 * MiB, os.urandom(64 * 1024), out)  # the write that finds the leg gone
    assert out == {"ok": True}  # on the local leg
    wait_for(lambda: any(ch.state != 1 for ch in nexus_of(c1, nc).children), 120, "the lost leg faulted")
    n2.start(env=ENV)
    st = report(r2.uri)
    assert st.rtype == 0 and not st.registrants, st  # a fresh namespace: nobody registered
    c1.nexus.ChildOperation(P.nexus.ChildOperationRequest(nexus_uuid=nc, uri=r2.uri, action=1))  # online
    assert_held(r2.uri, "fn1", K3)
    nvme_fabrics.disconnect(app_c)


@pytest.mark.timeout(1800)
def test_a_local_replica_shared_while_in_use_moves_the_leg_onto_its_share(nodes, tmp_path):
    """The agent's switchover shares the old node's replica (unshared while its nexus was local)
    for the new node: the old nexus moves its leg onto that share before ShareReplica returns, so
    the new nexus's preempt holds it off there too. Unsharing moves a leg back onto the replica's
    own device, and the nexus keeps serving."""
    from mayastor.host_identity import host_identity
    n1, n2 = nodes
    c1, c2 = n1.client, n2.client
    r1 = replica(c1, pool(c1, tmp_path, "fs1"), share=0)
    r2 = replica(c2, pool(c2, tmp_path, "fs2"), share=1)
    vol, na = U(), U()
    create(c1, vol, na, [f"bdev:///{r1.name}?uuid={r1.uuid}", r2.uri], K1, HOLDER)
    uri_a = c1.nexus.PublishNexus(P.nexus.PublishNexusRequest(uuid=na, share=1)).nexus.device_uri
    app_a, dev_a = connect(uri_a, APP, APP_ID)
    before = os.urandom(MiB)
    out: dict = {}
    pwrite_direct(dev_a, 0, before, out)
    assert out == {"ok": True}

    # switchover: node 1's replica shared for node 2 only (and the checking host)
    hosts = [host_identity("fn2").hostnqn, CHECK]
    shared = c1.replica.ShareReplica(P.replica.ShareReplicaRequest(uuid=r1.uuid, share=1, allowed_hosts=hosts))
    assert "now through its share" in n1.log()
    assert_held(shared.uri, "fn1", K1)  # taken on the new share, before anyone else could
    assert nexus_of(c1, na).state == 1
    nb = U()
    create(c2, vol, nb, [shared.uri, f"bdev:///{r2.name}?uuid={r2.uuid}"], K2, HOLDER)
    assert_held(shared.uri, "fn2", K2)
    writer, late, out = write_in_background(dev_a, 4 * MiB)
    wait_for(lambda: nexus_of(c1, na).state == SHUTDOWN, 180, "the fenced nexus shutting itself down")
    for node, r in (("fn1", r1), ("fn2", r2)):
        assert read_direct(replica_dev(node, r.uuid), 4 * MiB, len(late)) != late
        assert read_direct(replica_dev(node, r.uuid), 0, MiB) == before
    nvme_fabrics.disconnect(app_a)
    c1.nexus.DestroyNexus(P.nexus.DestroyNexusRequest(uuid=na))
    writer.join(timeout=120)
    assert not writer.is_alive() and out.get("error"), out

    # node 2's nexus uses its own replica through its share; unsharing it moves the leg back
    c2.replica.UnshareReplica(P.replica.UnshareReplicaRequest(uuid=r2.uuid))  # the agent, for a local one
    assert "now through its own device" in n2.log()
    b = nexus_of(c2, nb)
    assert b.state == 1 and all(ch.state == 1 for ch in b.children), b
    uri_b = c2.nexus.PublishNexus(P.nexus.PublishNexusRequest(uuid=nb, share=1)).nexus.device_uri
    app_b, dev_b = connect(uri_b, APP, APP_ID)
    fio_verify(dev_b)
    nvme_fabrics.disconnect(app_b)


@pytest.fixture
def one_node(tmp_path, request):
    log = os.path.join(RESULTS, f"daemon-{request.node.name}.log")
    if os.path.exists(log):
        os.unlink(log)
    d = Daemon(str(tmp_path / "fo.db"), log, node="fo1")
    d.start(env=ENV)
    yield d
    try:
        destroy_all_and_stop((d,), "MAYASTOR-fo1")
    except BaseException:
        d.kill9()
        from .util import force_cleanup
        force_cleanup()
        raise


@pytest.mark.timeout(900)
def test_reservations_asked_for_work_on_every_kernel(one_node, tmp_path):
    """The control plane always asks for a reservation (HA on). Where nvmet has them the nexus
    holds them on every child; where it has none (before 6.13) the nexus is made all the same,
    fenced only by re-sharing, and the log says so."""
    c = one_node.client
    fo = pool(c, tmp_path, "fo")
    ra, rb = replica(c, fo, share=1), replica(c, fo, share=1)
    nu = U()
    create(c, U(), nu, [f"bdev:///{ra.name}?uuid={ra.uuid}", rb.uri], K2, HOLDER)
    assert nexus_of(c, nu).state == 1
    if kernel_has_reservations():
        for r in (ra, rb):
            assert report(r.uri).holder().key == K2
    else:
        assert "the target has no NVMe reservations; not fenced" in one_node.log()
        assert "no NVMe reservations in nvmet" in one_node.log()  # said at start-up too
    out: dict = {}
    dev = c.nexus.PublishNexus(P.nexus.PublishNexusRequest(uuid=nu, share=0)).nexus.device_uri
    pwrite_direct(dev.replace("file://", ""), 0, os.urandom(MiB), out)
    assert out == {"ok": True}
