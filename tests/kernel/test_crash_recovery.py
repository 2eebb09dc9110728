"""kill -9 of the daemon in the middle of replica create/share/destroy, then restart: everything
acknowledged is there as it was, nothing unacknowledged is half present, no orphans. And a lost
SQLite file: the pool (and its replicas) come back by ImportPool from the disk's label."""

from __future__ import annotations

import os
import random
import threading
import time

import grpc
import pytest

import configfs
from mayastor.grpc import protos as P
from mayastor.kernel import dm, loop

from .daemon import serve
from .test_node_daemon import U

MiB = 1 << 20
NODE = "crashnode"
PREFIX = f"MAYASTOR-{NODE}-"


@pytest.fixture
def daemon(tmp_path, request):
    yield from serve(tmp_path, request, NODE, start=False)


def check_consistent(c, pool_uuid: str) -> dict[str, P.replica.Replica]:
    """Kernel == API: our dm devices are exactly the pool's and the listed replicas'; our nvmet
    subsystems exactly the shared replicas'. Returns the replicas by uuid."""
    reps = {r.uuid: r for r in c.replica.ListReplicas(P.replica.ListReplicaOptions(
        query=P.replica.ListReplicaOptions.Query(replica=True, snapshot=True, clone=True))).replicas}
    with dm.DeviceMapper() as ctl:
        ours = {d.name for d in ctl.list_devices() if d.name.startswith(PREFIX)}
    expected = {f"{PREFIX}pool-{pool_uuid}-{p}" for p in ("meta", "data", "tpool")}
    expected |= {f"{PREFIX}thin-{u}" for u in reps}
    assert ours == expected
    subs = {s.nqn for s in configfs.Root().subsystems}
    assert subs == {f"nqn.2019-05.io.openebs:{r.name}" for r in reps.values() if r.share == 1}
    for r in reps.values():
        if r.share == 1:
            ns = configfs.Subsystem(f"nqn.2019-05.io.openebs:{r.name}", "lookup").namespace(1, "lookup")
            assert ns.enabled and ns.device_uuid == r.uuid
    return reps


CREATE_POINTS = ["replica.create.intent", "replica.create.device", "replica.create.shared",
                 "replica.create.ready"]
DESTROY_POINTS = ["replica.destroy.intent", "replica.teardown.unshared", "replica.teardown.removed"]


@pytest.mark.slow  # ~5 min under TCG (a daemon restart per crash point): `scripts/test slow`
@pytest.mark.timeout(900)
def test_kill9_at_each_step_of_create_share_destroy(daemon, tmp_path):
    points = CREATE_POINTS + ["replica.share.kernel"] + DESTROY_POINTS
    # Each start arms the next crash point (armed only after start-up reconcile), verifies what the
    # previous crash left, then makes the call that dies.
    c = daemon.start()
    pool = c.pool.CreatePool(P.pool.CreatePoolRequest(name="cp", disks=[f"aio://{tmp_path}/cp.img?size_mb=256"]))
    acked: dict[str, int] = {}  # uuid -> share protocol, for replicas whose create was acknowledged
    for share in (0, 1, 0, 1):
        v = U()
        c.replica.CreateReplica(P.replica.CreateReplicaRequest(
            name=f"r-{v[:8]}", uuid=v, pooluuid="cp", size=8 * MiB, thin=True, share=share))
        acked[v] = share
    daemon.stop()
    c = daemon.start(env={"MAYASTOR_CRASHPOINT": points[0]})
    for i, point in enumerate(points):
        u = U()
        with pytest.raises(grpc.RpcError) as err:
            if point.startswith("replica.create"):
                c.replica.CreateReplica(P.replica.CreateReplicaRequest(
                    name=f"r-{u[:8]}", uuid=u, pooluuid="cp", size=8 * MiB, thin=True, share=1))
            elif point == "replica.share.kernel":
                u = next(k for k, v in acked.items() if v == 0)
                c.replica.ShareReplica(P.replica.ShareReplicaRequest(uuid=u, share=1))
            else:
                u = next(k for k, v in acked.items() if v == 1)
                c.replica.DestroyReplica(P.replica.DestroyReplicaRequest(uuid=u))
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE, point  # the daemon died mid-call
        assert daemon.wait_exit() == -9
        nxt = points[i + 1] if i + 1 < len(points) else ""
        c = daemon.start(env={"MAYASTOR_CRASHPOINT": nxt})
        reps = check_consistent(c, pool.uuid)
        for k, share in acked.items():
            if k != u:
                assert k in reps and reps[k].share == share, (point, k)
        if point == "replica.create.ready":
            # done in SQLite and the kernel, only the reply was lost: it stays, whole (checked above)
            assert u in reps and reps[u].share == 1
            acked[u] = 1
        elif point.startswith("replica.create"):
            assert u not in reps, point  # not finished: rolled back, not half there
        elif point.startswith("replica.share"):
            assert u in reps  # before or after the share, and consistent either way (checked above)
            acked[u] = reps[u].share
        else:
            assert u not in reps, point  # destroy intent recorded: reconcile finishes it
            del acked[u]
        assert set(reps) == set(acked)
    daemon.stop()


@pytest.mark.timeout(600)
def test_kill9_at_random_moments_of_a_busy_loop(daemon, tmp_path):
    c = daemon.start()
    pool = c.pool.CreatePool(P.pool.CreatePoolRequest(name="rp", disks=[f"aio://{tmp_path}/rp.img?size_mb=512"]))
    acked: dict[str, int] = {}
    rnd = random.Random(7)
    for round_ in range(2):
        stop = threading.Event()
        pending: list[tuple[str, str]] = []

        def worker(client):
            while not stop.is_set():
                op = rnd.choice(["create", "create", "share", "destroy"]) if acked else "create"
                try:
                    if op == "create":
                        u, share = U(), rnd.choice([0, 1])
                        pending[:] = [("create", u)]
                        client.replica.CreateReplica(P.replica.CreateReplicaRequest(
                            name=f"r-{u[:8]}", uuid=u, pooluuid="rp", size=4 * MiB, thin=True, share=share))
                        acked[u] = share
                    elif op == "share":
                        u = rnd.choice(sorted(acked))
                        share = 1 - acked[u]
                        pending[:] = [("share", u)]
                        req = P.replica.ShareReplicaRequest(uuid=u, share=share)
                        client.replica.ShareReplica(req)
                        acked[u] = share
                    else:
                        u = rnd.choice(sorted(acked))
                        pending[:] = [("destroy", u)]
                        client.replica.DestroyReplica(P.replica.DestroyReplicaRequest(uuid=u))
                        del acked[u]
                    pending.clear()
                except grpc.RpcError:
                    return

        t = threading.Thread(target=worker, args=(c,))
        t.start()
        time.sleep(rnd.uniform(0.5, 3.0))
        daemon.kill9()
        stop.set()
        t.join(timeout=30)
        c = daemon.start()
        reps = check_consistent(c, pool.uuid)
        in_flight = pending[0] if pending else None
        for k, share in acked.items():
            if in_flight and in_flight[1] == k:
                continue
            assert k in reps and reps[k].share == share, (round_, k)
        gone = set(reps) - set(acked)
        if in_flight is None:
            assert not gone
        else:
            op, u = in_flight
            assert gone <= {u}
            if u in reps:
                acked[u] = reps[u].share  # create or share completed in the kernel and SQLite: now acknowledged
            else:
                acked.pop(u, None)
    daemon.stop()


def test_lost_sqlite_file_pool_comes_back_by_import(daemon, tmp_path):
    c = daemon.start()
    disk = f"aio://{tmp_path}/lost.img?size_mb=128"
    pool = c.pool.CreatePool(P.pool.CreatePoolRequest(name="lost", disks=[disk]))
    r = U()
    c.replica.CreateReplica(P.replica.CreateReplicaRequest(name="kept", uuid=r, pooluuid="lost", size=8 * MiB,
                                                           thin=True, share=1, entity_id="vol-k"))
    daemon.kill9()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(daemon.state_db + suffix):
            os.unlink(daemon.state_db + suffix)
    c = daemon.start()
    assert c.pool.ListPools(P.pool.ListPoolOptions()).pools == []
    back = c.pool.ImportPool(P.pool.ImportPoolRequest(name="lost", disks=[f"aio://{tmp_path}/lost.img"]))
    assert back.uuid == pool.uuid and back.capacity == pool.capacity
    reps = check_consistent(c, pool.uuid)
    assert list(reps) == [r] and reps[r].share == 1 and reps[r].entity_id == "vol-k"
    # the wrong name for the label on the disk is refused
    c.pool.ExportPool(P.pool.ExportPoolRequest(name="lost"))
    with pytest.raises(grpc.RpcError) as err:
        c.pool.ImportPool(P.pool.ImportPoolRequest(name="other", disks=[f"aio://{tmp_path}/lost.img"]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [d for d in loop.list_attached() if d.backing_file == f"{tmp_path}/lost.img"] == []
    c.pool.ImportPool(P.pool.ImportPoolRequest(name="lost", disks=[f"aio://{tmp_path}/lost.img"]))
