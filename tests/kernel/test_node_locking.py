"""Per-pool locking, in-process against the real kernel: a call on one pool proceeds while another
pool's lock is held; a call on the held pool waits for it."""

from __future__ import annotations

import threading
import uuid

from mayastor.node import Node
from mayastor.paths import PathPolicy
from mayastor.replica.service import ReplicaArgs
from mayastor.store import open_store

MiB = 1 << 20


def test_calls_on_different_pools_do_not_serialise(tmp_path):
    node = Node("locknode", open_store(str(tmp_path / "s.db")), "127.0.0.1", paths=PathPolicy.of([str(tmp_path)]))
    try:
        a = node.pools.create("la", [f"aio://{tmp_path}/a.img?size_mb=64"])
        node.pools.create("lb", [f"aio://{tmp_path}/b.img?size_mb=64"])
        done_a = threading.Event()

        def create_on_a():
            node.replicas.create(ReplicaArgs("ra", str(uuid.uuid4()), "la", MiB, True))
            done_a.set()

        with node.locks.exclusive(a.uuid):  # a pool-wide call on a (destroy, export, grow) is running
            t = threading.Thread(target=create_on_a)
            t.start()
            # pool b is free: this returns although a call on pool a is blocked on a's lock
            node.replicas.create(ReplicaArgs("rb", str(uuid.uuid4()), "lb", MiB, True))
            assert not done_a.is_set()
        t.join(timeout=30)
        assert done_a.is_set()
        assert {v.row.name for v in node.replicas.list()} == {"ra", "rb"}
    finally:
        for p in list(node.pools.live.values()):
            node.pools.destroy(p.uuid, node.replicas)
        node.close()
