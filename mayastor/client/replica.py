"""io-engine-client replica create|destroy|share|unshare|resize|list|stats."""

from __future__ import annotations

from ..grpc import protos as P
from .context import Context, UsageError, add_pool_choice, parse_size, set_pool

PROTOCOLS = {"none": 0, "nvmf": 1}
SHARE_NAMES = {0: "none", 1: "nvmf", 2: "iscsi"}


def register(sub) -> None:
    p = sub.add_parser("replica", help="replica management").add_subparsers(dest="action", required=True)
    c = p.add_parser("create", help="create a replica")
    c.add_argument("name")
    c.add_argument("uuid")
    c.add_argument("pool", help="pool name or uuid")
    c.add_argument("-s", "--size", type=parse_size, required=True)
    c.add_argument("-p", "--protocol", choices=sorted(PROTOCOLS), default="none")
    c.add_argument("-t", "--thin", action="store_true")
    c.add_argument("--allowed-host", action="append", default=[])
    c.add_argument("--type", default="lvs", help="pool type (lvs only here)")
    c.set_defaults(func=create)
    d = p.add_parser("destroy", help="destroy a replica")
    d.add_argument("uuid")
    add_pool_choice(d)
    d.set_defaults(func=destroy)
    s = p.add_parser("share", help="share a replica")
    s.add_argument("uuid")
    s.add_argument("protocol", choices=sorted(PROTOCOLS))
    s.add_argument("--allowed-host", action="append", default=[])
    s.set_defaults(func=share)
    u = p.add_parser("unshare", help="unshare a replica")
    u.add_argument("uuid")
    u.set_defaults(func=unshare)
    r = p.add_parser("resize", help="resize a replica")
    r.add_argument("uuid")
    r.add_argument("size", type=parse_size)
    r.set_defaults(func=resize)
    ls = p.add_parser("list", help="list replicas")
    ls.add_argument("-t", "--type", help="pool type filter (lvs)")
    ls.set_defaults(func=list_)
    st = p.add_parser("stats", help="replica I/O counters")
    st.set_defaults(func=stats)


def _print(ctx: Context, r) -> None:
    ctx.emit_json(r) if ctx.as_json else ctx.say(r.uri)


def create(ctx: Context, a) -> None:
    _print(
        ctx,
        ctx.replica.CreateReplica(
            P.replica.CreateReplicaRequest(
                name=a.name,
                uuid=a.uuid,
                pooluuid=a.pool,
                size=a.size,
                thin=a.thin,
                share=PROTOCOLS[a.protocol],
                allowed_hosts=a.allowed_host,
            )
        ),
    )


def destroy(ctx: Context, a) -> None:
    req = P.replica.DestroyReplicaRequest(uuid=a.uuid)
    set_pool(req, a)
    ctx.replica.DestroyReplica(req)
    if not ctx.as_json:
        ctx.say(f"replica: {a.uuid} is deleted")


def share(ctx: Context, a) -> None:
    _print(
        ctx,
        ctx.replica.ShareReplica(
            P.replica.ShareReplicaRequest(uuid=a.uuid, share=PROTOCOLS[a.protocol], allowed_hosts=a.allowed_host)
        ),
    )


def unshare(ctx: Context, a) -> None:
    _print(ctx, ctx.replica.UnshareReplica(P.replica.UnshareReplicaRequest(uuid=a.uuid)))


def resize(ctx: Context, a) -> None:
    r = ctx.replica.ResizeReplica(P.replica.ResizeReplicaRequest(uuid=a.uuid, requested_size=a.size))
    ctx.emit_json(r) if ctx.as_json else ctx.say(f"{r.uuid} {r.size}")


def _all(ctx: Context):
    return ctx.replica.ListReplicas(
        P.replica.ListReplicaOptions(query=P.replica.ListReplicaOptions.Query(replica=True, snapshot=True, clone=True))
    )


def list_(ctx: Context, a) -> None:
    if a.type not in (None, "lvs"):
        raise UsageError(f"unknown pool type {a.type!r} (lvs)")
    r = _all(ctx)
    if ctx.as_json:
        return ctx.emit_json(r)
    if not r.replicas:
        return ctx.v1("No replicas found")
    rows = [
        [
            x.poolname,
            x.name,
            x.uuid,
            str(x.thin).lower(),
            SHARE_NAMES.get(x.share, "?"),
            ctx.units(x.size),
            ctx.units(x.usage.capacity_bytes),
            ctx.units(x.usage.allocated_bytes),
            x.uri,
            str(x.is_snapshot).lower(),
            str(x.is_clone).lower(),
            ctx.units(x.usage.allocated_bytes_snapshots),
            ctx.units(x.usage.allocated_bytes_snapshot_from_clone),
        ]
        for x in r.replicas
    ]
    ctx.print_list(
        [
            "POOL",
            "NAME",
            "UUID",
            ">THIN",
            ">SHARE",
            ">SIZE",
            ">CAP",
            ">ALLOC",
            "URI",
            "IS_SNAPSHOT",
            "IS_CLONE",
            "SNAP_ANCESTOR_SIZE",
            "CLONE_SNAP_ANCESTOR_SIZE",
        ],
        rows,
    )


def stats(ctx: Context, a) -> None:
    r = ctx.stats.GetReplicaIoStats(P.stats.ListStatsOption())
    if ctx.as_json:
        return ctx.emit_json(r)
    names = {x.uuid: (x.poolname, x.name) for x in _all(ctx).replicas}
    rows = []
    for s in r.stats:
        pool, name = names.get(s.stats.uuid, ("?", s.stats.name))
        rows.append(
            [
                pool,
                name,
                str(s.stats.num_read_ops),
                str(s.stats.num_write_ops),
                ctx.units(s.stats.bytes_read),
                ctx.units(s.stats.bytes_written),
            ]
        )
    if not rows:
        return ctx.v1("No replicas found")
    ctx.print_list(["POOL", "NAME", "RDCNT", "WRCNT", "RDBYTES", "WRBYTES"], rows)
