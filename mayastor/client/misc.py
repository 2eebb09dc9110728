"""io-engine-client stats, device, controller, perf, jsonrpc, test."""

from __future__ import annotations

import json
import time

from google.protobuf.empty_pb2 import Empty

from ..grpc import protos as P
from .context import Context, UsageError, add_pool_choice, parse_size, set_pool

WIPE_METHODS = {"none": 0, "writezeroes": 1, "unmap": 2, "writepattern": 3, "checksum": 4}
WIPE_NAMES = {v: k for k, v in WIPE_METHODS.items()}
CONTROLLER_STATES = {0: "new", 1: "initializing", 2: "running", 3: "faulted", 4: "unconfiguring", 5: "unconfigured"}


def register(sub) -> None:
    st = sub.add_parser("stats", help="I/O statistics").add_subparsers(dest="action", required=True)
    for what in ("pool", "nexus", "replica"):
        x = st.add_parser(what, help=f"{what} I/O statistics")
        x.add_argument("name", nargs="?")
        x.set_defaults(func=stats, what=what)
    st.add_parser("reset", help="reset all I/O statistics").set_defaults(func=stats_reset)
    dev = sub.add_parser("device", help="host block devices").add_subparsers(dest="action", required=True)
    dl = dev.add_parser("list", help="list block devices")
    dl.add_argument("--all", action="store_true", help="also devices in use")
    dl.set_defaults(func=device_list)
    ctl = sub.add_parser("controller", help="NVMe controllers").add_subparsers(dest="action", required=True)
    ctl.add_parser("list", help="list NVMe controllers").set_defaults(func=controller_list)
    cs = ctl.add_parser("stats", help="I/O counters of NVMe controllers")
    cs.add_argument("name", nargs="?")
    cs.set_defaults(func=controller_stats)
    perf = sub.add_parser("perf", help="daemon resource usage").add_subparsers(dest="action", required=True)
    perf.add_parser("resource", help="resource usage of the daemon").set_defaults(func=perf_resource)
    js = sub.add_parser("jsonrpc", help="call a JSON-RPC method")
    js.add_argument("method")
    js.add_argument("params", nargs="?", default="")
    js.set_defaults(func=jsonrpc)
    test = sub.add_parser("test", help="test helpers").add_subparsers(dest="action", required=True)
    test.add_parser("features", help="wipe methods and checksums served").set_defaults(func=test_features)
    inj = test.add_parser("inject", help="fault injection")
    inj.add_argument("--add")
    inj.add_argument("--remove")
    inj.set_defaults(func=test_inject)
    w = test.add_parser("wipe", help="wipe or checksum a replica")
    w.add_argument("resource", choices=("replica",))
    w.add_argument("uuid")
    add_pool_choice(w)
    w.add_argument("--method", type=str.lower, choices=sorted(WIPE_METHODS), default="writezeroes")
    w.add_argument("--chunk-size", type=parse_size, default=0)
    w.set_defaults(func=test_wipe)


def _lat(ticks: int, rate: int) -> str:
    return str(ticks * 1_000_000 // rate) if rate else str(ticks)  # microseconds


def stats(ctx: Context, a) -> None:
    opt = P.stats.ListStatsOption(name=a.name) if a.name else P.stats.ListStatsOption()
    if a.what == "pool":
        items = [s for s in ctx.stats.GetPoolIoStats(opt).stats]
    elif a.what == "nexus":
        items = [s for s in ctx.stats.GetNexusIoStats(opt).stats]
    else:
        items = [s.stats for s in ctx.stats.GetReplicaIoStats(opt).stats]
    if ctx.as_json:
        return ctx.emit_json({"stats": [ctx.to_dict(s) for s in items]})
    if not items:
        return ctx.v1(f"No {a.what} stats found")
    rows = [
        [
            s.name,
            str(s.num_read_ops),
            ctx.units(s.bytes_read),
            str(s.num_write_ops),
            ctx.units(s.bytes_written),
            str(s.num_unmap_ops),
            ctx.units(s.bytes_unmapped),
            _lat(s.read_latency_ticks, s.tick_rate),
            _lat(s.write_latency_ticks, s.tick_rate),
            _lat(s.unmap_latency_ticks, s.tick_rate),
            _lat(s.max_read_latency_ticks, s.tick_rate),
            _lat(s.min_read_latency_ticks, s.tick_rate),
            _lat(s.max_write_latency_ticks, s.tick_rate),
            _lat(s.min_write_latency_ticks, s.tick_rate),
        ]
        for s in items
    ]
    ctx.print_list(
        [
            "NAME",
            "NUM_RD_OPS",
            "TOTAL_RD",
            "NUM_WR_OPS",
            "TOTAL_WR",
            "NUM_UNMAP_OPS",
            "TOTAL_UNMAPPED",
            "RD_LAT",
            "WR_LAT",
            "UNMAP_LATENCY",
            "MAX_RD_LAT",
            "MIN_RD_LAT",
            "MAX_WR_LAT",
            "MIN_WR_LAT",
        ],
        rows,
    )


def stats_reset(ctx: Context, a) -> None:
    ctx.stats.ResetIoStats(Empty())
    if not ctx.as_json:
        ctx.say("Stats reset completed")


def device_list(ctx: Context, a) -> None:
    r = ctx.host.ListBlockDevices(P.host.ListBlockDevicesRequest(all=a.all))
    if ctx.as_json:
        return ctx.emit_json(r)
    if not r.devices:
        return ctx.v1("No devices found")
    rows = [
        [
            d.devname,
            d.devtype,
            str(d.devmajor),
            str(d.devminor),
            ctx.units(d.size * 512),
            str(d.available).lower(),
            d.model,
            d.partition.scheme,
            d.filesystem.fstype,
            d.filesystem.uuid,
            ",".join(d.filesystem.mountpoints),
            d.devpath,
            ",".join(d.devlinks),
        ]
        for d in r.devices
    ]
    ctx.print_list(
        [
            "DEVNAME",
            "DEVTYPE",
            ">MAJOR",
            "MINOR",
            ">SIZE",
            "AVAILABLE",
            "MODEL",
            "PARTTYPE",
            "FSTYPE",
            "FSUUID",
            "MOUNTPOINTS",
            "DEVPATH",
            "DEVLINKS",
        ],
        rows,
    )


def controller_list(ctx: Context, a) -> None:
    r = ctx.host.ListNvmeControllers(Empty())
    if ctx.as_json:
        return ctx.emit_json(r)
    if not r.controllers:
        return ctx.v1("No NVMe controllers found")
    ctx.print_list(
        ["NAME", "STATE", ">SIZE", ">BLKSIZE"],
        [[c.name, CONTROLLER_STATES.get(c.state, "?"), ctx.units(c.size), str(c.blk_size)] for c in r.controllers],
    )


def controller_stats(ctx: Context, a) -> None:
    names = [a.name] if a.name else [c.name for c in ctx.host.ListNvmeControllers(Empty()).controllers]
    rows, data = [], []
    for n in names:
        s = ctx.host.StatNvmeController(P.host.StatNvmeControllerRequest(name=n)).stats
        data.append({"name": n, **ctx.to_dict(s)})
        rows.append(
            [
                n,
                str(s.num_read_ops),
                str(s.num_write_ops),
                ctx.units(s.bytes_read),
                ctx.units(s.bytes_written),
                str(s.num_unmap_ops),
                ctx.units(s.bytes_unmapped),
            ]
        )
    if ctx.as_json:
        return ctx.emit_json({"controllers": data})
    if not rows:
        return ctx.v1("No NVMe controllers found")
    ctx.print_list(
        ["NAME", ">NUM_RD_OPS", ">NUM_WR_OPS", ">BYTES_RD", ">BYTES_WR", ">NUM_UNMAP_OPS", ">BYTES_UNMAPPED"], rows
    )


def perf_resource(ctx: Context, a) -> None:
    r = ctx.host.GetMayastorResourceUsage(Empty())
    if ctx.as_json:
        return ctx.emit_json(r)
    u = r.usage
    ctx.print_list(
        [">SOFT_FAULTS", ">HARD_FAULTS", ">VOLUNTARY_CSW", ">INVOLUNTARY_CSW"],
        [[str(u.soft_faults), str(u.hard_faults), str(u.vol_csw), str(u.invol_csw)]],
    )


def jsonrpc(ctx: Context, a) -> None:
    r = ctx.json.JsonRpcCall(P.json.JsonRpcRequest(method=a.method, params=a.params))
    try:
        ctx.say(json.dumps(json.loads(r.result), indent=2))
    except ValueError:
        ctx.say(r.result)


def test_features(ctx: Context, a) -> None:
    r = ctx.test.GetFeatures(Empty())
    if ctx.as_json:
        return ctx.emit_json(r)
    ctx.say("wipe methods: " + ", ".join(WIPE_NAMES.get(m, str(m)) for m in r.wipe_methods))
    ctx.say("checksum algorithms: " + ", ".join("crc32c" if c == 0 else str(c) for c in r.cksum_algs))


def test_inject(ctx: Context, a) -> None:
    if a.add:
        ctx.test.AddFaultInjection(P.test.AddFaultInjectionRequest(uri=a.add))
    elif a.remove:
        ctx.test.RemoveFaultInjection(P.test.RemoveFaultInjectionRequest(uri=a.remove))
    else:
        r = ctx.test.ListFaultInjections(P.test.ListFaultInjectionsRequest())
        ctx.emit_json(r) if ctx.as_json else ctx.print_list(
            ["URI", "DEVICE", "ACTIVE"], [[i.uri, i.device_name, str(i.is_active).lower()] for i in r.injections]
        )


def test_wipe(ctx: Context, a) -> None:
    method = WIPE_METHODS[a.method]
    req = P.test.WipeReplicaRequest(
        uuid=a.uuid,
        wipe_options=P.test.StreamWipeOptions(options=P.test.WipeOptions(wipe_method=method), chunk_size=a.chunk_size),
    )
    set_pool(req, a)
    began = time.monotonic()
    headers = [
        "UUID",
        "TOTAL_BYTES",
        "CHUNK_SIZE",
        "LAST_CHUNK_SIZE",
        "TOTAL_CHUNKS",
        "WIPED_BYTES",
        "WIPED_CHUNKS",
        "REMAINING_BYTES",
        "BANDWIDTH",
        "CHECKSUM",
    ]
    rows, data = [], []
    for m in ctx.test.WipeReplica(req):
        secs = m.since.seconds + m.since.nanos / 1e9 if m.HasField("since") else 0.0
        bw = f"{ctx.units(int(m.wiped_bytes / secs))}/s" if secs else "-"
        crc = f"{m.crc32:#x}" if m.WhichOneof("checksum") else "-"
        data.append(ctx.to_dict(m))
        rows.append(
            [
                m.uuid,
                ctx.units(m.total_bytes),
                ctx.units(m.chunk_size),
                ctx.units(m.last_chunk_size),
                str(m.total_chunks),
                ctx.units(m.wiped_bytes),
                str(m.wiped_chunks),
                ctx.units(m.remaining_bytes),
                bw,
                crc,
            ]
        )
    if ctx.as_json:
        return ctx.emit_json(data)
    if not rows:
        raise UsageError("the daemon sent no progress")
    ctx.v2(f"wipe took {time.monotonic() - began:.3f} s")
    ctx.print_list(headers, rows)
