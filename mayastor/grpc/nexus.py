"""mayastor.v1.NexusRpc: nexus lifecycle, children, publish, ANA, rebuild control (the copier's full
rebuilds) and rebuild state, stats and history read from SQLite."""

from __future__ import annotations

from google.protobuf import empty_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from ..errors import NotFound
from ..exports import Share
from ..nexus.core import NexusView
from ..nexus.reservation import Reservation
from ..nexus.service import NexusArgs
from ..nexus.state import CHILD_STATE_WIRE, NEXUS_WIRE
from ..store import RebuildJob
from ..store.models import RebuildState
from ..validate import uuid as check_uuid
from . import protos as P
from .status import opt, rpc

JOB_WIRE: dict[str, int] = {  # rows keep the state as a string
    RebuildState.INIT: 0,
    RebuildState.RUNNING: 1,
    RebuildState.STOPPED: 2,
    RebuildState.PAUSED: 3,
    RebuildState.FAILED: 4,
    RebuildState.COMPLETED: 5,
}


def _ts(dt) -> Timestamp:
    t = Timestamp()
    if dt is not None:
        t.FromDatetime(dt.replace(tzinfo=None) if dt.tzinfo else dt)
    return t


def nexus_message(v: NexusView) -> P.nexus.Nexus:
    r = v.row
    children = []
    for k in v.children:
        c = P.nexus.Child(
            uri=k.uri,
            state=CHILD_STATE_WIRE.get(k.state, 0),
            state_reason=k.reason,
            rebuild_progress=v.progress.get(k.uri, -1),
            has_io_log=k.state != "online",
        )
        if k.fault_at is not None:
            c.fault_timestamp.CopyFrom(_ts(k.fault_at))
        children.append(c)
    return P.nexus.Nexus(
        name=r.name,
        uuid=r.uuid,
        size=r.size,
        state=NEXUS_WIRE.get(r.state, 0),
        children=children,
        device_uri=v.device_uri,
        rebuilds=v.rebuilds,
        ana_state=(r.ana_state or 1) if r.published and r.share == Share.NVMF else 0,
        allowed_hosts=r.allowed_hosts or [],
    )


def _record(j: RebuildJob) -> P.nexus.RebuildHistoryRecord:
    rec = P.nexus.RebuildHistoryRecord(
        child_uri=j.dst_uri,
        src_uri=j.src_uri,
        state=JOB_WIRE.get(j.state, 0),
        blocks_total=j.blocks_total,
        blocks_recovered=j.blocks_recovered,
        blocks_transferred=j.blocks_transferred,
        blocks_remaining=max(j.blocks_total - j.blocks_recovered, 0),
        blocks_per_task=128,
        block_size=j.block_size,
        is_partial=j.partial,
    )
    rec.start_time.CopyFrom(_ts(j.started_at))
    if j.ended_at is not None:
        rec.end_time.CopyFrom(_ts(j.ended_at))
    return rec


class NexusRpc(P.nexus_grpc.NexusRpcServicer):
    def __init__(self, node):
        self.svc = node.nexuses

    @rpc
    def CreateNexus(self, request, context):
        resv = Reservation.from_request(
            request.resvKey,
            request.preemptKey,
            request.resvType if request.HasField("resvType") else None,
            request.preemptPolicy,
        )
        args = NexusArgs(
            request.name,
            request.uuid,
            request.size,
            tuple(request.children),
            request.minCntlId,
            request.maxCntlId,
            resv,
            request.nexusInfoKey,
        )
        v = self.svc.create(args)
        return P.nexus.CreateNexusResponse(nexus=nexus_message(v))

    @rpc
    def DestroyNexus(self, request, context):
        self.svc.destroy(request.uuid)
        return empty_pb2.Empty()

    @rpc
    def ShutdownNexus(self, request, context):
        return P.nexus.ShutdownNexusResponse(nexus=nexus_message(self.svc.shutdown(request.uuid)))

    @rpc
    def ListNexus(self, request, context):
        views = self.svc.list(name=opt(request, "name"), uuid=opt(request, "uuid"))
        return P.nexus.ListNexusResponse(nexus_list=[nexus_message(v) for v in views])

    @rpc
    def ResizeNexus(self, request, context):
        return P.nexus.ResizeNexusResponse(nexus=nexus_message(self.svc.resize(request.uuid, request.requested_size)))

    @rpc
    def AddChildNexus(self, request, context):
        v = self.svc.add_child(request.uuid, request.uri, request.norebuild)
        return P.nexus.AddChildNexusResponse(nexus=nexus_message(v))

    @rpc
    def RemoveChildNexus(self, request, context):
        return P.nexus.RemoveChildNexusResponse(nexus=nexus_message(self.svc.remove_child(request.uuid, request.uri)))

    @rpc
    def FaultNexusChild(self, request, context):
        return P.nexus.FaultNexusChildResponse(nexus=nexus_message(self.svc.fault_child(request.uuid, request.uri)))

    @rpc
    def ChildOperation(self, request, context):
        v = self.svc.child_operation(request.nexus_uuid, request.uri, request.action)
        return P.nexus.ChildOperationResponse(nexus=nexus_message(v))

    @rpc
    def PublishNexus(self, request, context):
        v = self.svc.publish(request.uuid, request.share, list(request.allowed_hosts), request.key)
        return P.nexus.PublishNexusResponse(nexus=nexus_message(v))

    @rpc
    def UnpublishNexus(self, request, context):
        return P.nexus.UnpublishNexusResponse(nexus=nexus_message(self.svc.unpublish(request.uuid)))

    @rpc
    def GetNvmeAnaState(self, request, context):
        return P.nexus.GetNvmeAnaStateResponse(ana_state=self.svc.get_ana_state(request.uuid))

    @rpc
    def SetNvmeAnaState(self, request, context):
        v = self.svc.set_ana_state(request.uuid, request.ana_state)
        return P.nexus.SetNvmeAnaStateResponse(nexus=nexus_message(v))

    # rebuild control ------------------------------------------------------------------------------
    @rpc
    def StartRebuild(self, request, context):
        v = self.svc.start_rebuild(request.nexus_uuid, request.uri)
        return P.nexus.StartRebuildResponse(nexus=nexus_message(v))

    @rpc
    def StopRebuild(self, request, context):
        return P.nexus.StopRebuildResponse(nexus=nexus_message(self.svc.stop_rebuild(request.nexus_uuid, request.uri)))

    @rpc
    def PauseRebuild(self, request, context):
        v = self.svc.pause_rebuild(request.nexus_uuid, request.uri)
        return P.nexus.PauseRebuildResponse(nexus=nexus_message(v))

    @rpc
    def ResumeRebuild(self, request, context):
        v = self.svc.resume_rebuild(request.nexus_uuid, request.uri)
        return P.nexus.ResumeRebuildResponse(nexus=nexus_message(v))

    # rebuild state and history ---------------------------------------------------------------
    @rpc
    def GetRebuildState(self, request, context):
        return P.nexus.RebuildStateResponse(state=self.svc.history.active(request.nexus_uuid, request.uri).state)

    @rpc
    def GetRebuildStats(self, request, context):
        j = self.svc.history.active(request.nexus_uuid, request.uri)
        v = self.svc.view(j.nexus_uuid)
        pct = v.progress.get(j.dst_uri, 0)
        rec = j.blocks_recovered if j.phase else j.blocks_total * pct // 100
        resp = P.nexus.RebuildStatsResponse(
            blocks_total=j.blocks_total,
            blocks_recovered=rec,
            progress=pct,
            blocks_per_task=128,
            block_size=j.block_size,
            tasks_total=1,
            tasks_active=1,
            blocks_transferred=j.blocks_transferred,
            blocks_remaining=j.blocks_total - rec,
            is_partial=j.partial,
        )
        resp.start_time.CopyFrom(_ts(j.started_at))
        return resp

    def _history(self, nexus_uuid: str, since=None, count=None, newest_first: bool = False):
        row, jobs, newest = self.svc.history.finished(nexus_uuid, since, count, newest_first)
        resp = P.nexus.RebuildHistoryResponse(uuid=row.uuid, name=row.name, records=[_record(j) for j in jobs])
        return resp, newest

    @rpc
    def GetRebuildHistory(self, request, context):
        return self._history(check_uuid(request.uuid, "nexus uuid"))[0]  # oldest first, as io-engine

    @rpc
    def ListRebuildHistory(self, request, context):
        """io-engine's shape: every nexus is a key (records or not), each one's newest ``count``
        records newest first, end_time = the newest end of any record (else now)."""
        since = request.since_end_time.ToDatetime() if request.HasField("since_end_time") else None
        count = request.count if request.HasField("count") else None
        resp = P.nexus.ListRebuildHistoryResponse()
        newest = None
        for u in self.svc.history.nexus_uuids():
            try:
                h, end = self._history(u, since, count, newest_first=True)
            except NotFound:  # destroyed meanwhile
                continue
            resp.histories[u].CopyFrom(h)
            if end is not None and (newest is None or end > newest):
                newest = end
        if newest is None:
            resp.end_time.GetCurrentTime()
        else:
            resp.end_time.CopyFrom(_ts(newest))
        return resp
