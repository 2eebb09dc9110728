"""io-engine-client nexus create|destroy|shutdown|resize|publish|unpublish|ana_state|add|remove|list|
children and nexus child fault|offline|online|retire."""

from __future__ import annotations

import uuid as _uuid

from ..grpc import protos as P
from .context import Context, UsageError, parse_size

NEXUS_STATES = {0: "unknown", 1: "online", 2: "degraded", 3: "faulted", 4: "shutting_down", 5: "shutdown"}
CHILD_STATES = {0: "unknown", 1: "online", 2: "degraded", 3: "faulted"}
REASONS = {
    0: "none",
    1: "init",
    2: "closed",
    3: "cannot_open",
    4: "config_invalid",
    5: "rebuild_failed",
    6: "io_failure",
    7: "by_client",
    8: "out_of_sync",
    9: "no_space",
    10: "timed_out",
    11: "admin_failed",
}
ANA = {"optimized": 1, "non_optimized": 2, "inaccessible": 3}
ANA_NAMES = {0: "invalid", 1: "optimized", 2: "non_optimized", 3: "inaccessible", 4: "persistent_loss", 15: "change"}
RESV_TYPES = (
    "WriteExclusive",
    "ExclusiveAccess",
    "WriteExclusiveRegsOnly",
    "ExclusiveAccessRegsOnly",
    "WriteExclusiveAllRegs",
    "ExclusiveAccessAllRegs",
)
CHILD_ACTIONS = {"offline": 0, "online": 1, "fault": 2, "retire": 3}  # retire: OfflinePermanent


def register(sub) -> None:
    p = sub.add_parser("nexus", help="nexus device management").add_subparsers(dest="action", required=True)
    c = p.add_parser("create", help="create a nexus")
    c.add_argument("uuid", help='nexus uuid ("" for a new one)')
    c.add_argument("size", type=parse_size)
    c.add_argument("children", nargs="+", help="child URIs")
    c.add_argument("--name", help="nexus name (default: the uuid)")
    c.add_argument("--min-cntlid", type=int, default=1)
    c.add_argument("--max-cntlid", type=int, default=0xFFEF)
    c.add_argument("--resv-key", type=int, default=0)
    c.add_argument("--preempt-key", type=int, default=0)
    c.add_argument("--resv-type", choices=RESV_TYPES)
    c.add_argument("--nexus-info-key", default="")
    c.set_defaults(func=create)
    for verb, fn in (("destroy", destroy), ("shutdown", shutdown), ("unpublish", unpublish)):
        x = p.add_parser(verb, help=f"{verb} a nexus")
        x.add_argument("uuid")
        x.set_defaults(func=fn)
    r = p.add_parser("resize", help="resize a nexus")
    r.add_argument("uuid")
    r.add_argument("size", type=parse_size)
    r.set_defaults(func=resize)
    pub = p.add_parser("publish", help="publish a nexus")
    pub.add_argument("uuid")
    pub.add_argument("key", nargs="?", default="")
    pub.add_argument("--allowed-host", action="append", default=[])
    pub.add_argument("-p", "--protocol", choices=("nvmf", "none"), default="nvmf")
    pub.set_defaults(func=publish)
    ana = p.add_parser("ana_state", help="get or set the nexus's NVMe ANA state")
    ana.add_argument("uuid")
    ana.add_argument("state", nargs="?", choices=sorted(ANA))
    ana.set_defaults(func=ana_state)
    add = p.add_parser("add", help="add a child")
    add.add_argument("uuid")
    add.add_argument("uri")
    add.add_argument("norebuild", nargs="?", default="false", choices=("true", "false"))
    add.set_defaults(func=add_child)
    rm = p.add_parser("remove", help="remove a child")
    rm.add_argument("uuid")
    rm.add_argument("uri")
    rm.set_defaults(func=remove_child)
    ls = p.add_parser("list", help="list nexuses")
    ls.add_argument("-c", "--show-children", action="store_true")
    ls.set_defaults(func=list_)
    ch = p.add_parser("children", help="list a nexus's children")
    ch.add_argument("uuid")
    ch.set_defaults(func=children)
    child = p.add_parser("child", help="operate on a nexus child").add_subparsers(dest="child_action", required=True)
    for verb in CHILD_ACTIONS:
        x = child.add_parser(verb, help=f"{verb} a child")
        x.add_argument("uuid")
        x.add_argument("uri")
        x.set_defaults(func=child_op, verb=verb)


def _nexus_out(ctx: Context, n, what: str | None = None) -> None:
    if ctx.as_json:
        return ctx.emit_json(n)
    ctx.say(what if what is not None else n.uuid)


def create(ctx: Context, a) -> None:
    u = a.uuid or str(_uuid.uuid4())
    req = P.nexus.CreateNexusRequest(
        name=a.name or u,
        uuid=u,
        size=a.size,
        minCntlId=a.min_cntlid,
        maxCntlId=a.max_cntlid,
        resvKey=a.resv_key,
        preemptKey=a.preempt_key,
        children=a.children,
        nexusInfoKey=a.nexus_info_key,
    )
    if a.resv_type:
        req.resvType = P.nexus.NvmeReservation.Value(a.resv_type)
    n = ctx.nexus.CreateNexus(req).nexus
    _nexus_out(ctx, n, f"{n.uuid} {n.size} {n.state}")


def destroy(ctx: Context, a) -> None:
    ctx.nexus.DestroyNexus(P.nexus.DestroyNexusRequest(uuid=a.uuid))
    if not ctx.as_json:
        ctx.say(f"nexus: {a.uuid} is destroyed")


def shutdown(ctx: Context, a) -> None:
    _nexus_out(
        ctx, ctx.nexus.ShutdownNexus(P.nexus.ShutdownNexusRequest(uuid=a.uuid)).nexus, f"nexus: {a.uuid} is shut down"
    )


def unpublish(ctx: Context, a) -> None:
    _nexus_out(
        ctx,
        ctx.nexus.UnpublishNexus(P.nexus.UnpublishNexusRequest(uuid=a.uuid)).nexus,
        f"nexus: {a.uuid} is unpublished",
    )


def resize(ctx: Context, a) -> None:
    n = ctx.nexus.ResizeNexus(P.nexus.ResizeNexusRequest(uuid=a.uuid, requested_size=a.size)).nexus
    _nexus_out(ctx, n, f"{n.uuid} {n.size}")


def publish(ctx: Context, a) -> None:
    n = ctx.nexus.PublishNexus(
        P.nexus.PublishNexusRequest(
            uuid=a.uuid, key=a.key, share=1 if a.protocol == "nvmf" else 0, allowed_hosts=a.allowed_host
        )
    ).nexus
    _nexus_out(ctx, n, n.device_uri)


def ana_state(ctx: Context, a) -> None:
    if a.state is None:
        r = ctx.nexus.GetNvmeAnaState(P.nexus.GetNvmeAnaStateRequest(uuid=a.uuid))
        return ctx.emit_json(r) if ctx.as_json else ctx.say(ANA_NAMES.get(r.ana_state, str(r.ana_state)))
    n = ctx.nexus.SetNvmeAnaState(P.nexus.SetNvmeAnaStateRequest(uuid=a.uuid, ana_state=ANA[a.state])).nexus
    _nexus_out(ctx, n, ANA_NAMES.get(n.ana_state, str(n.ana_state)))


def add_child(ctx: Context, a) -> None:
    n = ctx.nexus.AddChildNexus(
        P.nexus.AddChildNexusRequest(uuid=a.uuid, uri=a.uri, norebuild=a.norebuild == "true")
    ).nexus
    _nexus_out(ctx, n, a.uri)


def remove_child(ctx: Context, a) -> None:
    n = ctx.nexus.RemoveChildNexus(P.nexus.RemoveChildNexusRequest(uuid=a.uuid, uri=a.uri)).nexus
    _nexus_out(ctx, n, a.uri)


def child_op(ctx: Context, a) -> None:
    if a.verb == "fault":
        n = ctx.nexus.FaultNexusChild(P.nexus.FaultNexusChildRequest(uuid=a.uuid, uri=a.uri)).nexus
    else:
        n = ctx.nexus.ChildOperation(
            P.nexus.ChildOperationRequest(nexus_uuid=a.uuid, uri=a.uri, action=CHILD_ACTIONS[a.verb])
        ).nexus
    _nexus_out(ctx, n, f"{a.uri} {a.verb}")


def _list(ctx: Context, uuid: str | None = None):
    opts = P.nexus.ListNexusOptions(uuid={"value": uuid}) if uuid else P.nexus.ListNexusOptions()
    return ctx.nexus.ListNexus(opts)


def list_(ctx: Context, a) -> None:
    r = _list(ctx)
    if ctx.as_json:
        return ctx.emit_json(r)
    if not r.nexus_list:
        return ctx.v1("No nexus found")
    headers = ["NAME", "UUID", ">SIZE", "STATE", ">REBUILDS", "PATH"] + (["CHILDREN"] if a.show_children else [])
    rows = []
    for n in r.nexus_list:
        row = [n.name, n.uuid, ctx.units(n.size), NEXUS_STATES.get(n.state, "?"), str(n.rebuilds), n.device_uri]
        if a.show_children:
            row.append(",".join(c.uri for c in n.children))
        rows.append(row)
    ctx.print_list(headers, rows)


def children(ctx: Context, a) -> None:
    r = _list(ctx, a.uuid)
    if not r.nexus_list:
        raise UsageError(f"nexus {a.uuid} not found")
    n = r.nexus_list[0]
    if ctx.as_json:
        return ctx.emit_json({"children": [ctx.to_dict(c) for c in n.children]})
    rows = [
        [
            c.uri,
            CHILD_STATES.get(c.state, "?"),
            REASONS.get(c.state_reason, "?"),
            c.fault_timestamp.ToJsonString() if c.HasField("fault_timestamp") and c.fault_timestamp.seconds else "-",
        ]
        for c in n.children
    ]
    ctx.print_list(["NAME", "STATE", "REASON", "LAST_FAULTED_AT"], rows)
