"""io-engine-client pool create|import|destroy|export|grow|list."""

from __future__ import annotations

from ..grpc import protos as P
from .context import Context, parse_size

STATES = {0: "unknown", 1: "online", 2: "degraded", 3: "faulted"}
TYPES = {"lvs": 0, "lvm": 1}


def register(sub) -> None:
    p = sub.add_parser("pool", help="storage pool management").add_subparsers(dest="action", required=True)
    c = p.add_parser("create", help="create a storage pool")
    c.add_argument("pool", help="storage pool name")
    c.add_argument("disk", nargs="+", help="disk device URIs (aio:///dev/sdb, /dev/sdb, ...)")
    c.add_argument("--uuid", help="storage pool uuid")
    c.add_argument("--cluster-size", type=parse_size, help="cluster size (multiple of 1 MiB)")
    c.add_argument("--md-resv-ratio", type=float, help="metadata reservation ratio")
    c.add_argument("-t", "--type", choices=sorted(TYPES), default="lvs", help="pool type (lvs only here)")
    c.set_defaults(func=create)
    i = p.add_parser("import", help="import a storage pool")
    i.add_argument("pool")
    i.add_argument("disk", nargs="+")
    i.add_argument("-u", "--uuid", help="storage pool uuid")  # io-engine-client's quirk: -u here is the uuid
    i.add_argument("-t", "--type", choices=sorted(TYPES), default="lvs")
    i.set_defaults(func=import_)
    for verb, fn, arg in (("destroy", destroy, "pool"), ("export", export, "name"), ("grow", grow, "name")):
        x = p.add_parser(verb, help=f"{verb} a storage pool")
        x.add_argument(arg)
        x.add_argument("-u", "--uuid", help="storage pool uuid")
        x.add_argument("-t", "--type", choices=sorted(TYPES))
        x.set_defaults(func=fn, pool_arg=arg)
    ls = p.add_parser("list", help="list storage pools")
    ls.add_argument("name", nargs="?")
    ls.add_argument("uuid", nargs="?")
    ls.add_argument("-t", "--type", choices=sorted(TYPES))
    ls.set_defaults(func=list_)


def _wrap(value):
    return {"value": value} if value else None


def create(ctx: Context, a) -> None:
    req = P.pool.CreatePoolRequest(name=a.pool, uuid=_wrap(a.uuid), disks=a.disk, pooltype=TYPES[a.type])
    if a.cluster_size is not None:
        req.cluster_size = a.cluster_size
    if a.md_resv_ratio is not None:
        req.md_args.md_resv_ratio = a.md_resv_ratio
    r = ctx.pool.CreatePool(req)
    ctx.emit_json(r) if ctx.as_json else ctx.say(a.pool)


def import_(ctx: Context, a) -> None:
    r = ctx.pool.ImportPool(
        P.pool.ImportPoolRequest(name=a.pool, uuid=_wrap(a.uuid), disks=a.disk, pooltype=TYPES[a.type])
    )
    ctx.emit_json(r) if ctx.as_json else ctx.say(a.pool)


def destroy(ctx: Context, a) -> None:
    ctx.pool.DestroyPool(P.pool.DestroyPoolRequest(name=a.pool, uuid=_wrap(a.uuid)))
    if not ctx.as_json:
        ctx.say(f"pool: {a.pool} is deleted")


def export(ctx: Context, a) -> None:
    ctx.pool.ExportPool(P.pool.ExportPoolRequest(name=a.name, uuid=_wrap(a.uuid)))
    if not ctx.as_json:
        ctx.say(f"pool: {a.name} is exported")


def grow(ctx: Context, a) -> None:
    r = ctx.pool.GrowPool(P.pool.GrowPoolRequest(name=a.name, uuid=_wrap(a.uuid)))
    if ctx.as_json:
        return ctx.emit_json(r)
    old, new = r.previous_pool.capacity, r.current_pool.capacity
    ctx.say(f"Pool capacity did not change: {new} bytes" if old == new else f"Pool capacity was {old}, now {new} bytes")


def _pct(a: int, b: int) -> str:
    return f"{100.0 * a / b:.2f}%" if b else "-"


def list_(ctx: Context, a) -> None:
    ctx.v2("Requesting a list of pools")
    opts = P.pool.ListPoolOptions(name=_wrap(a.name), uuid=_wrap(a.uuid))
    if a.type:
        opts.pooltype.value = TYPES[a.type]
    r = ctx.pool.ListPools(opts)
    if ctx.as_json:
        return ctx.emit_json(r)
    if not r.pools:
        return ctx.v1("No pools found")
    rows = []
    for p in r.pools:
        md = p.md_info if p.HasField("md_info") else None
        rows.append(
            [
                p.name,
                p.uuid,
                STATES.get(p.state, "unknown"),
                ctx.units(p.capacity),
                ctx.units(p.used),
                _pct(p.used, p.capacity),
                ctx.units(p.cluster_size),
                ctx.units(p.page_size) if p.HasField("page_size") else "-",
                ctx.units(md.md_page_size) if md else "-",
                str(md.md_pages) if md else "-",
                str(md.md_used_pages) if md else "-",
                _pct(md.md_used_pages, md.md_pages) if md else "-",
                " ".join(p.disks),
                ctx.units(p.disk_capacity),
            ]
        )
    ctx.print_list(
        [
            "NAME",
            "UUID",
            "STATE",
            "CAPACITY",
            "USED",
            "USED%",
            "CLUSTER_SIZE",
            "PAGE_SIZE",
            "MD_PAGE_SIZE",
            "MD_PAGES",
            "MD_USED_PAGES",
            "MD_USED%",
            "DISKS",
            "DISK_CAPACITY",
        ],
        rows,
    )
