"""One INFO line per mutating gRPC request, with its arguments; read-only calls and CSI secrets
never appear in it."""

from __future__ import annotations

import logging

from mayastor.csi.protos import csi
from mayastor.grpc import protos as P
from mayastor.grpc.status import rpc


class Handlers:
    @rpc
    def CreatePool(self, request, context):
        return "made"

    @rpc
    def ListPools(self, request, context):
        return "listed"

    @rpc
    def NodeStageVolume(self, request, context):
        return "staged"


def test_a_mutating_request_is_logged_with_its_arguments(caplog):
    caplog.set_level(logging.INFO, logger="mayastor.grpc")
    h = Handlers()
    assert h.CreatePool(P.pool.CreatePoolRequest(name="p1", disks=["aio:///x.img?size_mb=64"]), None) == "made"
    assert h.ListPools(P.pool.ListPoolOptions(), None) == "listed"
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ['CreatePool {name: "p1" disks: "aio:///x.img?size_mb=64"}'], lines


def test_csi_secrets_are_never_logged(caplog):
    caplog.set_level(logging.INFO, logger="mayastor.grpc")
    req = csi.NodeStageVolumeRequest(volume_id="v1", staging_target_path="/st", secrets={"key": "s3cr3t"})
    assert Handlers().NodeStageVolume(req, None) == "staged"
    (line,) = [r.getMessage() for r in caplog.records]
    assert "v1" in line and "s3cr3t" not in line and "secrets" not in line
    assert req.secrets["key"] == "s3cr3t"  # the handler's request is untouched


def test_a_long_request_is_cut(caplog):
    caplog.set_level(logging.INFO, logger="mayastor.grpc")
    Handlers().CreatePool(P.pool.CreatePoolRequest(name="p", disks=[f"aio:///d{i}.img" for i in range(200)]), None)
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.endswith("...}") and len(line) < 700
