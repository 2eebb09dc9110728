"""Safety under bad input and a second daemon: no export taken over by another object, no host
file opened for writing, one daemon per node, a broken pool listed rather than fatal."""

from __future__ import annotations

import ctypes
import hashlib
import os
import select
import socket
import struct
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

import configfs
from mayastor.grpc import protos as P

from .daemon import Daemon, serve
from .test_nbd import start_nbdkit, wait_tcp
from .util import code_of, run

MiB = 1 << 20
NODE = "safe1"
INVALID, PRECONDITION, EXISTS = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION,
                                 grpc.StatusCode.ALREADY_EXISTS)
POOL_ONLINE, POOL_FAULTED = 1, 3


def U() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def daemon(tmp_path, request):
    yield from serve(tmp_path, request, NODE)


def nqn(name: str) -> str:
    return f"nqn.2019-05.io.openebs:{name}"


def exported_device(name: str) -> str | None:
    sub = configfs.Subsystem(nqn(name), "lookup")
    return sub.namespace(1, "lookup").device_path


# -- exports ---------------------------------------------------------------------------------------

def test_an_object_never_takes_over_another_objects_export(make_loop, daemon, tmp_path):
    c = daemon.client
    c.pool.CreatePool(P.pool.CreatePoolRequest(name="sp", disks=[f"aio://{tmp_path}/sp.img?size_mb=256"]))
    r2 = c.replica.CreateReplica(P.replica.CreateReplicaRequest(name="r2", uuid=U(), pooluuid="sp", size=32 * MiB,
                                                                 thin=True, share=1))
    device = exported_device("r2")

    # a nexus named like the shared replica: refused, the replica's export untouched
    child = "malloc:///hj?size_mb=40"
    assert code_of(c.nexus.CreateNexus, P.nexus.CreateNexusRequest(
        name="r2", uuid=U(), size=32 * MiB, children=[child])) == EXISTS
    assert exported_device("r2") == device
    listed = c.replica.ListReplicas(P.replica.ListReplicaOptions()).replicas
    assert [(r.name, r.share, r.uri) for r in listed] == [("r2", 1, r2.uri)]

    # a replica named like a nexus: refused too
    # (with the control plane's kind of keys: uint64s above 2**63 once overflowed SQLite)
    n = c.nexus.CreateNexus(P.nexus.CreateNexusRequest(name="vol1", uuid=U(), size=32 * MiB, children=[child],
                                                       resvKey=0xFEDCBA9876543210, preemptKey=(1 << 64) - 1)).nexus
    assert code_of(c.replica.CreateReplica, P.replica.CreateReplicaRequest(
        name="vol1", uuid=U(), pooluuid="sp", size=32 * MiB, thin=True, share=1)) == EXISTS

    # a subsystem somebody else made with our prefix: publish refuses it and leaves it as it was
    lo = make_loop(64)
    foreign = configfs.Subsystem(nqn("vol1"), "create")
    ns = foreign.namespace(1, "create")
    ns.set_device(lo.path)
    ns.enable()
    try:
        assert code_of(c.nexus.PublishNexus, P.nexus.PublishNexusRequest(uuid=n.uuid, share=1)) == EXISTS
        assert exported_device("vol1") == lo.path and ns.enabled
        assert c.nexus.ListNexus(P.nexus.ListNexusOptions()).nexus_list[0].device_uri == ""
        # and destroying the nexus does not delete it
        c.nexus.DestroyNexus(P.nexus.DestroyNexusRequest(uuid=n.uuid))
        assert exported_device("vol1") == lo.path
    finally:
        foreign.delete()

    # the replica's share still works end to end: unshare removes exactly its subsystem
    c.replica.UnshareReplica(P.replica.UnshareReplicaRequest(uuid=r2.uuid))
    assert not os.path.isdir(f"/sys/kernel/config/nvmet/subsystems/{nqn('r2')}")
    # the replica subsystem carries io-engine's serial for its uuid
    c.replica.ShareReplica(P.replica.ShareReplicaRequest(uuid=r2.uuid, share=1))
    serial = configfs.Subsystem(nqn("r2"), "lookup").serial
    assert serial == "DCS" + hashlib.sha256(r2.uuid.encode()).hexdigest()[:17].upper()


# -- host files --------------------------------------------------------------------------------------

IN_MODIFY, IN_CLOSE_WRITE, IN_OPEN = 0x2, 0x8, 0x20
_EVENT = struct.Struct("iIII")


class Inotify:
    """Which watched files were opened, and whether any was written or closed after writing."""

    def __init__(self, paths: list[str]):
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0
        self.names = {}
        for p in paths:
            wd = libc.inotify_add_watch(self.fd, p.encode(), IN_MODIFY | IN_CLOSE_WRITE | IN_OPEN)
            assert wd >= 0, f"cannot watch {p}: errno {ctypes.get_errno()}"
            self.names[wd] = p

    def events(self) -> list[tuple[str, int]]:
        out = []
        while select.select([self.fd], [], [], 0.5)[0]:
            data = os.read(self.fd, 65536)
            off = 0
            while off < len(data):
                wd, mask, _, length = _EVENT.unpack_from(data, off)
                off += _EVENT.size + length
                out.append((self.names[wd], mask))
        return out

    def close(self) -> None:
        os.close(self.fd)


def _sha(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_host_files_are_never_opened_for_writing(daemon, tmp_path):
    c = daemon.client
    outside = tmp_path.parent / f"{tmp_path.name}-outside"  # beside the daemon's --disk-dir, not in it
    outside.mkdir()
    victim = outside / "victim.img"
    with open(victim, "wb") as f:
        f.truncate(64 * MiB)
    tiny = tmp_path / "tiny.img"
    tiny.write_bytes(b"x" * 1000)
    (tmp_path / "to-passwd").symlink_to("/etc/passwd")
    os.link(victim, tmp_path / "hardlink.img")
    watched = ["/etc/passwd", str(victim), str(tiny)]
    before = {p: _sha(p) for p in watched}
    core_pattern = open("/proc/sys/kernel/core_pattern").read()
    ino = Inotify(watched)
    try:
        bad_disks = {
            "aio:///etc/passwd": INVALID, "/etc/passwd": INVALID, "uring:///etc/passwd": INVALID,
            "aio:///proc/sys/kernel/core_pattern": INVALID, "/dev/mem": INVALID, "/dev/null": INVALID,
            f"aio://{tmp_path}/to-passwd": INVALID, f"aio://{tmp_path}/hardlink.img": INVALID,
            f"aio://{tiny}": INVALID, f"aio://{victim}": INVALID,
            f"aio://{outside}/new.img?size_mb=64": INVALID,
        }
        for disk, want in bad_disks.items():
            got = code_of(c.pool.CreatePool, P.pool.CreatePoolRequest(name="hp", disks=[disk]))
            assert got == want, f"CreatePool {disk}: {got}"
            got = code_of(c.pool.ImportPool, P.pool.ImportPoolRequest(name="hp", disks=[disk]))
            assert got in (INVALID, PRECONDITION), f"ImportPool {disk}: {got}"
        assert not (outside / "new.img").exists()
        children = ["aio:///etc/passwd", f"aio://{victim}", f"aio://{tmp_path}/to-passwd", "aio:///dev/mem"]
        for child in children:
            got = code_of(c.nexus.CreateNexus, P.nexus.CreateNexusRequest(
                name="hn", uuid=U(), size=16 * MiB, children=[child]))
            assert got == INVALID, f"CreateNexus child {child}: {got}"
        n = c.nexus.CreateNexus(P.nexus.CreateNexusRequest(name="hn", uuid=U(), size=16 * MiB,
                                                           children=["malloc:///hm?size_mb=24"])).nexus
        for child in children:
            got = code_of(c.nexus.AddChildNexus, P.nexus.AddChildNexusRequest(uuid=n.uuid, uri=child, norebuild=True))
            assert got == INVALID, f"AddChildNexus {child}: {got}"
        assert [len(x.children) for x in c.nexus.ListNexus(P.nexus.ListNexusOptions()).nexus_list] == [1]
        events = ino.events()
    finally:
        ino.close()
    written = [(p, m) for p, m in events if m & (IN_MODIFY | IN_CLOSE_WRITE)]
    assert written == [], f"host files opened for writing: {written}"
    assert {p: _sha(p) for p in watched} == before
    assert open("/proc/sys/kernel/core_pattern").read() == core_pattern
    assert c.pool.ListPools(P.pool.ListPoolOptions()).pools == []


def test_devices_in_use_or_formatted_are_refused(make_loop, daemon, tmp_path):
    c = daemon.client
    formatted = make_loop(64)
    run("mkfs.ext4", "-q", "-F", formatted.path)
    assert code_of(c.pool.CreatePool, P.pool.CreatePoolRequest(name="fp", disks=[formatted.path])) == PRECONDITION
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    run("mount", formatted.path, str(mnt))
    try:
        got = code_of(c.pool.CreatePool, P.pool.CreatePoolRequest(name="fp", disks=[f"aio://{formatted.path}"]))
        assert got == PRECONDITION
        got = code_of(c.nexus.CreateNexus, P.nexus.CreateNexusRequest(
            name="fn", uuid=U(), size=16 * MiB, children=[f"aio://{formatted.path}"]))
        assert got == PRECONDITION
    finally:
        run("umount", str(mnt))
    blank = make_loop(64)  # an empty device is fine, and so is re-creating a pool of ours on it
    pool = c.pool.CreatePool(P.pool.CreatePoolRequest(name="bp", disks=[blank.path]))
    assert pool.state == POOL_ONLINE
    c.pool.ExportPool(P.pool.ExportPoolRequest(name="bp"))
    assert c.pool.CreatePool(P.pool.CreatePoolRequest(name="bp", disks=[blank.path])).uuid == pool.uuid


# -- one daemon per node -------------------------------------------------------------------------------

def test_a_second_daemon_for_the_same_node_exits_at_once(daemon, tmp_path):
    c = daemon.client
    c.pool.CreatePool(P.pool.CreatePoolRequest(name="dp", disks=[f"aio://{tmp_path}/dp.img?size_mb=128"]))
    pid = daemon.proc.pid
    attempts = {
        "same state file": dict(state_db=daemon.state_db, node="other", port=10131),
        "same node": dict(state_db=str(tmp_path / "second.db"), node=NODE, port=10132),
        "same port": dict(state_db=str(tmp_path / "third.db"), node="third", port=daemon.port),
    }
    for what, kw in attempts.items():
        log = str(tmp_path / f"second-{kw['port']}.log")
        second = Daemon(kw["state_db"], log, node=kw["node"], port=kw["port"])
        second.spawn()
        try:
            rc = second.wait_exit(timeout=600)
        finally:
            second.kill9()  # one that did not exit must not stay behind
        assert rc != 0, f"{what}: the second daemon exited {rc}"
        text = open(log).read()
        if what != "same port":
            assert f"pid {pid}" in text, f"{what}: the holder is not named:\n{text[-2000:]}"
        else:
            assert "cannot serve gRPC" in text, text[-2000:]
    # the first one still serves, and still owns its pool
    assert [p.name for p in c.pool.ListPools(P.pool.ListPoolOptions()).pools] == ["dp"]
    assert daemon.proc.poll() is None


# -- degraded, not fatal ---------------------------------------------------------------------------------

def test_a_pool_whose_device_vanished_is_listed_faulted(daemon, tmp_path):
    c = daemon.client
    good = c.pool.CreatePool(P.pool.CreatePoolRequest(name="good", disks=[f"aio://{tmp_path}/g.img?size_mb=128"]))
    bad = c.pool.CreatePool(P.pool.CreatePoolRequest(name="bad", disks=[f"aio://{tmp_path}/b.img?size_mb=128"]))
    c.replica.CreateReplica(P.replica.CreateReplicaRequest(name="keep", uuid=U(), pooluuid="good", size=16 * MiB,
                                                           thin=True))
    tpool = f"MAYASTOR-{NODE}-pool-{bad.uuid}-tpool"
    run("dmsetup", "remove", tpool)
    pools = {p.name: p for p in c.pool.ListPools(P.pool.ListPoolOptions()).pools}
    assert pools["good"].state == POOL_ONLINE and pools["good"].uuid == good.uuid
    assert pools["bad"].state == POOL_FAULTED and pools["bad"].used == 0
    assert [r.name for r in c.replica.ListReplicas(P.replica.ListReplicaOptions()).replicas] == ["keep"]
    assert "thin-pool device" in daemon.log()
    # the faulted pool can still be destroyed, and nothing of it stays behind
    c.pool.DestroyPool(P.pool.DestroyPoolRequest(name="bad"))
    assert [p.name for p in c.pool.ListPools(P.pool.ListPoolOptions()).pools] == ["good"]


# -- load ------------------------------------------------------------------------------------------------

def _all_at_once(calls, n: int = 50) -> list[str]:
    """Each call n times (with 0..n-1), all side by side; the errors they got."""
    errors = []
    with ThreadPoolExecutor(max_workers=n * len(calls)) as ex:
        for f in [ex.submit(call, i) for call in calls for i in range(n)]:
            try:
                f.result()
            except grpc.RpcError as exc:
                errors.append(f"{exc.code()}: {exc.details()}")
    return errors


@pytest.mark.timeout(1200)
def test_fifty_concurrent_creates_lists_and_destroys_on_one_pool(daemon, tmp_path):
    c = daemon.client
    c.pool.CreatePool(P.pool.CreatePoolRequest(name="busy", disks=[f"aio://{tmp_path}/busy.img?size_mb=1024"]))
    uuids = [U() for _ in range(50)]

    def create(i: int):
        return c.replica.CreateReplica(P.replica.CreateReplicaRequest(
            name=f"c{i}", uuid=uuids[i], pooluuid="busy", size=4 * MiB, thin=i % 2 == 0, share=1))

    def listing(_):
        return len(c.replica.ListReplicas(P.replica.ListReplicaOptions()).replicas)

    def destroy(i: int):
        return c.replica.DestroyReplica(P.replica.DestroyReplicaRequest(uuid=uuids[i]))

    assert _all_at_once([create, listing]) == []
    listed = c.replica.ListReplicas(P.replica.ListReplicaOptions()).replicas
    assert sorted(r.uuid for r in listed) == sorted(uuids)
    assert all(r.share == 1 and r.uri.startswith("nvmf://") for r in listed)
    subsystems = {s.nqn for s in configfs.Root().subsystems}
    assert {nqn(f"c{i}") for i in range(50)} <= subsystems
    assert _all_at_once([destroy, listing]) == []
    assert c.replica.ListReplicas(P.replica.ListReplicaOptions()).replicas == []
    assert not any(s.nqn.startswith(nqn("c")) for s in configfs.Root().subsystems)


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return port


def test_a_silent_nbd_child_holds_up_no_other_create(daemon):
    c = daemon.client
    closed_port = _free_port()
    assert code_of(c.nexus.CreateNexus, P.nexus.CreateNexusRequest(
        name="nb0", uuid=U(), size=16 * MiB, children=[f"nbd://127.0.0.1:{closed_port}/x"])) == PRECONDITION
    # a server that accepts, then trickles its greeting a byte a second: the handshake hangs for as
    # long as the test likes (each byte restarts the daemon's socket timeout)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    stop = threading.Event()

    def trickle(conn):
        for b in b"NBDMAGIC" * 100:
            if stop.wait(1):
                break
            conn.sendall(bytes([b]))
        conn.close()
    try:
        with ThreadPoolExecutor(max_workers=3) as ex:
            slow = ex.submit(code_of, c.nexus.CreateNexus, P.nexus.CreateNexusRequest(
                name="nb1", uuid=U(), size=16 * MiB, children=[f"nbd://127.0.0.1:{silent.getsockname()[1]}/x"]))
            conn, _ = silent.accept()  # the daemon is now inside the handshake
            ex.submit(trickle, conn)
            fast = c.nexus.CreateNexus(P.nexus.CreateNexusRequest(name="nb2", uuid=U(), size=16 * MiB,
                                                                  children=["malloc:///nbm?size_mb=24"])).nexus
            assert fast.state == 1
            assert not slow.done()
            stop.set()  # the server hangs up: the slow create fails cleanly
            assert slow.result() == PRECONDITION
    finally:
        stop.set()
        silent.close()
    # and over a server that answers, the nexus comes up (and its nbd connection goes with it)
    port = _free_port()
    server = start_nbdkit("-i", "127.0.0.1", "-p", str(port), "memory", "64M")
    try:
        wait_tcp(port)
        n3 = c.nexus.CreateNexus(P.nexus.CreateNexusRequest(name="nb3", uuid=U(), size=16 * MiB,
                                                            children=[f"nbd://127.0.0.1:{port}/x"])).nexus
        assert n3.state == 1
        c.nexus.DestroyNexus(P.nexus.DestroyNexusRequest(uuid=n3.uuid))
    finally:
        server.terminate()
        server.wait(60)
    assert [n.name for n in c.nexus.ListNexus(P.nexus.ListNexusOptions()).nexus_list] == ["nb2"]
