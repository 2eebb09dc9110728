"""io-engine-client snapshot create_for_replica|create_for_nexus|create_clone|list|list_clone|destroy."""

from __future__ import annotations

from ..grpc import protos as P
from .context import Context, add_pool_choice, set_pool
from .replica import SHARE_NAMES


def register(sub) -> None:
    p = sub.add_parser("snapshot", help="snapshot management").add_subparsers(dest="action", required=True)
    r = p.add_parser("create_for_replica", help="snapshot a replica")
    for arg in ("replica_uuid", "snapshot_name", "entity_id", "txn_id", "snapshot_uuid"):
        r.add_argument(arg)
    r.set_defaults(func=create_for_replica)
    n = p.add_parser("create_for_nexus", help="snapshot the replicas of a nexus")
    for arg in ("nexus_uuid", "snapshot_name", "entity_id", "txn_id"):
        n.add_argument(arg)
    n.add_argument("replica", nargs="+", help="<replica uuid>:<snapshot uuid>")
    n.set_defaults(func=create_for_nexus)
    c = p.add_parser("create_clone", help="clone a snapshot")
    for arg in ("snapshot_uuid", "clone_name", "clone_uuid"):
        c.add_argument(arg)
    c.set_defaults(func=create_clone)
    ls = p.add_parser("list", help="list snapshots")
    ls.add_argument("--source-uuid")
    ls.add_argument("--snapshot-uuid")
    ls.set_defaults(func=list_)
    lc = p.add_parser("list_clone", help="list clones")
    lc.add_argument("snapshot_uuid", nargs="?")
    lc.set_defaults(func=list_clone)
    d = p.add_parser("destroy", help="destroy a snapshot")
    d.add_argument("snapshot_uuid")
    add_pool_choice(d)
    d.set_defaults(func=destroy)


def create_for_replica(ctx: Context, a) -> None:
    r = ctx.snapshot.CreateReplicaSnapshot(
        P.snapshot.CreateReplicaSnapshotRequest(
            replica_uuid=a.replica_uuid,
            snapshot_uuid=a.snapshot_uuid,
            snapshot_name=a.snapshot_name,
            entity_id=a.entity_id,
            txn_id=a.txn_id,
        )
    )
    ctx.emit_json(r) if ctx.as_json else _table(ctx, [r.snapshot])


def create_for_nexus(ctx: Context, a) -> None:
    reps = []
    for item in a.replica:
        ru, _, su = item.partition(":")
        d = P.snapshot.NexusCreateSnapshotReplicaDescriptor(replica_uuid=ru)
        if su:
            d.snapshot_uuid = su
        reps.append(d)
    r = ctx.snapshot.CreateNexusSnapshot(
        P.snapshot.NexusCreateSnapshotRequest(
            nexus_uuid=a.nexus_uuid,
            entity_id=a.entity_id,
            txn_id=a.txn_id,
            snapshot_name=a.snapshot_name,
            replicas=reps,
        )
    )
    if ctx.as_json:
        return ctx.emit_json(r)
    ctx.print_list(
        ["REPLICA", "STATUS"],
        [[x.replica_uuid, str(x.status_code)] for x in r.replicas_done] + [[x, "skipped"] for x in r.replicas_skipped],
    )


def create_clone(ctx: Context, a) -> None:
    r = ctx.snapshot.CreateSnapshotClone(
        P.snapshot.CreateSnapshotCloneRequest(
            snapshot_uuid=a.snapshot_uuid, clone_name=a.clone_name, clone_uuid=a.clone_uuid
        )
    )
    ctx.emit_json(r) if ctx.as_json else ctx.say(r.uri)


def _table(ctx: Context, snaps) -> None:
    rows = [
        [
            s.snapshot_uuid,
            s.snapshot_name,
            ctx.units(s.snapshot_size),
            s.timestamp.ToJsonString(),
            str(s.num_clones),
            s.source_uuid,
            ctx.units(s.source_size),
            s.pool_uuid,
            s.entity_id,
            s.txn_id,
            str(s.valid_snapshot).lower(),
            str(s.discarded_snapshot).lower(),
            ctx.units(s.referenced_bytes),
        ]
        for s in snaps
    ]
    ctx.print_list(
        [
            "SNAP_UUID",
            "SNAP_NAME",
            "SNAP_SIZE",
            "CREATE_TIME",
            "CLONES",
            "SOURCE_UUID",
            "SOURCE_SIZE",
            "POOL_UUID",
            "ENTITY_ID",
            "TXN_ID",
            "VALID_SNAPSHOT",
            "DISCARD_SNAPSHOT",
            "ANCESTOR_SIZE",
        ],
        rows,
    )


def list_(ctx: Context, a) -> None:
    req = P.snapshot.ListSnapshotsRequest()
    if a.source_uuid:
        req.source_uuid = a.source_uuid
    if a.snapshot_uuid:
        req.snapshot_uuid = a.snapshot_uuid
    r = ctx.snapshot.ListSnapshot(req)
    if ctx.as_json:
        return ctx.emit_json(r)
    if not r.snapshots:
        return ctx.v1("No snapshots found")
    _table(ctx, r.snapshots)


def list_clone(ctx: Context, a) -> None:
    req = P.snapshot.ListSnapshotCloneRequest()
    if a.snapshot_uuid:
        req.snapshot_uuid = a.snapshot_uuid
    r = ctx.snapshot.ListSnapshotClone(req)
    if ctx.as_json:
        return ctx.emit_json(r)
    if not r.replicas:
        return ctx.v1("No clones found")
    ctx.print_list(
        ["POOL", "NAME", "UUID", ">SIZE", ">SHARE", "URI", "SNAPSHOT_UUID"],
        [
            [x.poolname, x.name, x.uuid, ctx.units(x.size), SHARE_NAMES.get(x.share, "?"), x.uri, x.snapshot_uuid]
            for x in r.replicas
        ],
    )


def destroy(ctx: Context, a) -> None:
    req = P.snapshot.DestroySnapshotRequest(snapshot_uuid=a.snapshot_uuid)
    set_pool(req, a)
    ctx.snapshot.DestroySnapshot(req)
    if not ctx.as_json:
        ctx.say(f"snapshot: {a.snapshot_uuid} is deleted")
