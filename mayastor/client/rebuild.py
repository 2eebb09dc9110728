"""io-engine-client rebuild start|stop|pause|resume|state|progress|stats|history."""

from __future__ import annotations

from ..grpc import protos as P
from .context import Context

JOB_STATES = {0: "init", 1: "running", 2: "stopped", 3: "paused", 4: "failed", 5: "completed"}


def register(sub) -> None:
    p = sub.add_parser("rebuild", help="rebuild management").add_subparsers(dest="action", required=True)
    for verb in ("start", "stop", "pause", "resume", "state", "progress", "stats"):
        x = p.add_parser(verb, help=f"{verb} of the rebuild of a child")
        x.add_argument("uuid", help="nexus uuid")
        x.add_argument("uri", help="the child being rebuilt")
        x.set_defaults(func=globals()[f"_{verb}"])
    h = p.add_parser("history", help="rebuild history of a nexus")
    h.add_argument("uuid")
    h.set_defaults(func=_history)


def _control(ctx: Context, a, rpc, req_cls) -> None:
    n = rpc(req_cls(nexus_uuid=a.uuid, uri=a.uri)).nexus
    ctx.emit_json(n) if ctx.as_json else ctx.say(a.uri)


def _start(ctx, a):
    _control(ctx, a, ctx.nexus.StartRebuild, P.nexus.StartRebuildRequest)


def _stop(ctx, a):
    _control(ctx, a, ctx.nexus.StopRebuild, P.nexus.StopRebuildRequest)


def _pause(ctx, a):
    _control(ctx, a, ctx.nexus.PauseRebuild, P.nexus.PauseRebuildRequest)


def _resume(ctx, a):
    _control(ctx, a, ctx.nexus.ResumeRebuild, P.nexus.ResumeRebuildRequest)


def _state(ctx: Context, a) -> None:
    r = ctx.nexus.GetRebuildState(P.nexus.RebuildStateRequest(nexus_uuid=a.uuid, uri=a.uri))
    ctx.emit_json(r) if ctx.as_json else ctx.print_list(["state"], [[r.state]])


def _stats_of(ctx: Context, a):
    return ctx.nexus.GetRebuildStats(P.nexus.RebuildStatsRequest(nexus_uuid=a.uuid, uri=a.uri))


def _progress(ctx: Context, a) -> None:
    r = _stats_of(ctx, a)
    ctx.emit_json({"progress": r.progress}) if ctx.as_json else ctx.print_list(["progress (%)"], [[str(r.progress)]])


def _stats(ctx: Context, a) -> None:
    r = _stats_of(ctx, a)
    if ctx.as_json:
        return ctx.emit_json(r)
    ctx.print_list(
        [
            ">TOTAL",
            ">RECOVERED",
            ">TRANSFERRED",
            ">REMAINING",
            ">PROGRESS",
            ">BLK_PER_TASK",
            ">BLK_SIZE",
            ">PARTIAL",
            ">TASKS_TOTAL",
            ">TASKS_ACTIVE",
        ],
        [
            [
                str(r.blocks_total),
                str(r.blocks_recovered),
                str(r.blocks_transferred),
                str(r.blocks_remaining),
                f"{r.progress}%",
                str(r.blocks_per_task),
                str(r.block_size),
                str(r.is_partial).lower(),
                str(r.tasks_total),
                str(r.tasks_active),
            ]
        ],
    )


def _history(ctx: Context, a) -> None:
    r = ctx.nexus.GetRebuildHistory(P.nexus.RebuildHistoryRequest(uuid=a.uuid))
    if ctx.as_json:
        return ctx.emit_json(r)
    if not r.records:
        return ctx.v1(f"No rebuild history for nexus {a.uuid}")
    rows = [
        [
            h.child_uri,
            h.src_uri,
            str(h.blocks_total),
            str(h.blocks_transferred),
            JOB_STATES.get(h.state, "?"),
            str(h.blocks_per_task),
            str(h.block_size),
            str(h.is_partial).lower(),
            h.start_time.ToJsonString(),
            h.end_time.ToJsonString(),
        ]
        for h in r.records
    ]
    ctx.print_list(
        [
            "CHILD",
            "SOURCE",
            ">TOTAL",
            ">TRANSFERRED",
            ">STATE",
            ">BLK_PER_TASK",
            ">BLK_SIZE",
            ">PARTIAL",
            "START",
            "END",
        ],
        rows,
    )
