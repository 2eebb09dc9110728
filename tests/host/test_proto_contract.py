"""Our .proto files against Mayastor's v1 wire contract.

The contract's messages and enums live in the repository as data (tests/host/data/wire_contract.json,
written from the wire-contract notes by scripts/dev/wire-contract-json), so every field number, type
and label is compared with the descriptors protoc builds from proto/v1 without anything outside
the checkout.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import FieldDescriptor as FD

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = Path(__file__).resolve().parent / "data" / "wire_contract.json"
PROTO_DIR = ROOT / "proto" / "v1"

SCALARS = {"str": FD.TYPE_STRING, "u64": FD.TYPE_UINT64, "u32": FD.TYPE_UINT32, "i64": FD.TYPE_INT64,
           "i32": FD.TYPE_INT32, "f32": FD.TYPE_FLOAT, "bool": FD.TYPE_BOOL}
WELL_KNOWN = {"SV": "google.protobuf.StringValue", "TS": "google.protobuf.Timestamp",
              "Dur": "google.protobuf.Duration"}

# The messages and services of the files written so far (nexus/snapshot/bdev/test come later).
FILES = ["common", "pool", "replica", "registration", "host", "stats", "nexus", "snapshot", "snapshot-rebuild",
         "bdev", "json", "test"]
EXPECTED_MESSAGES = [
    "MayastorFeatures", "MayastorBugFixes", "RegisterRequest", "DeregisterRequest",
    "CreatePoolRequest", "PoolMetadataArgs", "ImportPoolRequest", "DestroyPoolRequest", "ExportPoolRequest",
    "GrowPoolRequest", "Pool", "PoolMetadataInfo", "PoolTypeValue", "ListPoolOptions", "ListPoolsResponse",
    "GrowPoolResponse", "CreateReplicaRequest", "Replica", "ReplicaSpaceUsage", "DestroyReplicaRequest",
    "ShareReplicaRequest", "UnshareReplicaRequest", "ResizeReplicaRequest", "SetReplicaEntityIdRequest",
    "ListReplicaOptions", "ListReplicaOptions.Query", "ListReplicasResponse", "MayastorInfoResponse",
    "BackCompatMayastorFeatures", "ListBlockDevicesRequest", "ListBlockDevicesResponse", "BlockDevice",
    "BlockDevice.Partition", "BlockDevice.Filesystem", "ResourceUsage", "GetMayastorResourceUsageResponse",
    "NvmeController", "ListNvmeControllersResponse", "NvmeControllerIoStats", "StatNvmeControllerRequest",
    "StatNvmeControllerResponse", "ListStatsOption", "PoolIoStatsResponse", "NexusIoStatsResponse",
    "ReplicaIoStatsResponse", "ReplicaIoStats", "IoStats",
    "CreateNexusRequest", "Nexus", "Child", "DestroyNexusRequest", "ShutdownNexusRequest", "UnpublishNexusRequest",
    "GetNvmeAnaStateRequest", "ResizeNexusRequest", "AddChildNexusRequest", "RemoveChildNexusRequest",
    "FaultNexusChildRequest", "PublishNexusRequest", "ListNexusOptions", "ListNexusResponse",
    "GetNvmeAnaStateResponse", "SetNvmeAnaStateRequest", "ChildOperationRequest", "StartRebuildRequest",
    "StopRebuildRequest", "PauseRebuildRequest", "ResumeRebuildRequest", "RebuildStateRequest",
    "RebuildStatsRequest", "RebuildStateResponse", "RebuildStatsResponse", "RebuildHistoryRequest",
    "RebuildHistoryResponse", "RebuildHistoryRecord", "ListRebuildHistoryRequest", "ListRebuildHistoryResponse",
    "SnapshotInfo", "CreateReplicaSnapshotRequest", "CreateReplicaSnapshotResponse", "NexusCreateSnapshotRequest",
    "NexusCreateSnapshotReplicaDescriptor", "NexusCreateSnapshotResponse", "NexusCreateSnapshotReplicaStatus",
    "ListSnapshotsRequest", "ListSnapshotsRequest.Query", "ListSnapshotsResponse", "DestroySnapshotRequest",
    "CreateSnapshotCloneRequest", "ListSnapshotCloneRequest", "ListSnapshotCloneResponse",
    "CreateSnapshotRebuildRequest", "CreateSnapshotRebuildRequest.RebuildPolicy", "SnapshotRebuild",
    "SnapshotRebuildBitmap", "ListSnapshotRebuildRequest", "ListSnapshotRebuildResponse",
    "DestroySnapshotRebuildRequest", "Bdev", "CreateBdevRequest", "CreateBdevResponse", "DestroyBdevRequest",
    "ListBdevOptions", "ListBdevResponse", "BdevShareRequest", "BdevShareResponse", "BdevUnshareRequest",
    "JsonRpcRequest", "JsonRpcResponse", "TestFeatures", "WipeReplicaRequest", "StreamWipeOptions", "WipeOptions",
    "WipeReplicaResponse", "FaultInjection", "AddFaultInjectionRequest", "RemoveFaultInjectionRequest",
    "ListFaultInjectionsRequest", "ListFaultInjectionsReply",
]
# "All other NexusRpc responses (...) = { Nexus nexus=1 }" in the contract
NEXUS_ONLY_RESPONSES = ["CreateNexus", "ResizeNexus", "AddChildNexus", "RemoveChildNexus", "FaultNexusChild",
                        "ShutdownNexus", "PublishNexus", "UnpublishNexus", "SetNvmeAnaState", "ChildOperation",
                        "StartRebuild", "StopRebuild", "PauseRebuild", "ResumeRebuild"]
EXPECTED_ENUMS = ["ShareProtocol", "PoolType", "PoolState", "NvmeControllerState", "APIVersion", "NexusState",
                  "ChildState", "ChildStateReason", "NvmeAnaState", "NvmeReservation", "NexusNvmePreemption",
                  "ChildAction", "RebuildJobState", "SnapshotRebuild.RebuildStatus", "WipeOptions.WipeMethod",
                  "WipeOptions.CheckSumAlgorithm"]
SERVICES = {
    "PoolRpc": ["CreatePool", "DestroyPool", "ExportPool", "ImportPool", "ListPools", "GrowPool"],
    "ReplicaRpc": ["CreateReplica", "DestroyReplica", "ListReplicas", "ShareReplica", "UnshareReplica",
                   "ResizeReplica", "SetReplicaEntityId"],
    "HostRpc": ["GetMayastorInfo", "ListBlockDevices", "GetMayastorResourceUsage", "ListNvmeControllers",
                "StatNvmeController"],
    "StatsRpc": ["GetPoolIoStats", "GetNexusIoStats", "GetReplicaIoStats", "ResetIoStats"],
    "Registration": ["Register", "Deregister"],
    "NexusRpc": ["CreateNexus", "DestroyNexus", "ResizeNexus", "ListNexus", "AddChildNexus", "RemoveChildNexus",
                 "FaultNexusChild", "ShutdownNexus", "PublishNexus", "UnpublishNexus", "GetNvmeAnaState",
                 "SetNvmeAnaState", "ChildOperation", "StartRebuild", "StopRebuild", "PauseRebuild", "ResumeRebuild",
                 "GetRebuildState", "GetRebuildStats", "GetRebuildHistory", "ListRebuildHistory"],
    "SnapshotRpc": ["CreateReplicaSnapshot", "CreateNexusSnapshot", "ListSnapshot", "DestroySnapshot",
                    "CreateSnapshotClone", "ListSnapshotClone"],
    "SnapshotRebuildRpc": ["CreateSnapshotRebuild", "ListSnapshotRebuild", "DestroySnapshotRebuild"],
    "BdevRpc": ["Create", "Destroy", "List", "Share", "Unshare"],
    "JsonRpc": ["JsonRpcCall"],
    "TestRpc": ["GetFeatures", "WipeReplica", "AddFaultInjection", "RemoveFaultInjection", "ListFaultInjections"],
}


def _contract() -> dict:
    return json.loads(CONTRACT.read_text())


def contract_messages() -> dict[str, dict[str, tuple[str, str, int]]]:
    return {name: {f: tuple(v) for f, v in fields.items()} for name, fields in _contract()["messages"].items()}


def contract_enums() -> dict[str, dict[str, int]]:
    return _contract()["enums"]


def _repeated(f) -> bool:
    # protobuf 6 dropped FieldDescriptor.label in favour of is_repeated
    return f.is_repeated if hasattr(f, "is_repeated") else f.label == FD.LABEL_REPEATED


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    from grpc_tools import protoc

    out = tmp_path_factory.mktemp("gen")
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    files = [str(PROTO_DIR / f"{f}.proto") for f in FILES]
    rc = protoc.main(["protoc", f"-I{PROTO_DIR}", f"-I{include}", f"--python_out={out}",
                      f"--grpc_python_out={out}", *files])
    assert rc == 0, "protoc failed on proto/v1"
    sys.path.insert(0, str(out))
    try:
        for f in FILES:
            importlib.import_module(f"{f.replace('-', '_')}_pb2")
            importlib.import_module(f"{f.replace('-', '_')}_pb2_grpc")
    finally:
        sys.path.remove(str(out))
    return descriptor_pool.Default()


def test_contract_is_parsed():
    msgs = contract_messages()
    assert msgs["Pool"]["md_info"] == ("opt", "PoolMetadataInfo", 12)
    assert msgs["ReplicaSpaceUsage"]["num_clusters"] == ("", "u64", 4)  # carried type
    assert msgs["ListReplicaOptions.Query"]["clone"] == ("", "bool", 3)
    assert msgs["DestroyReplicaRequest"]["pool_uuid"] == ("oneof", "str", 3)
    assert contract_enums()["NvmeAnaState"]["NVME_ANA_CHANGE_STATE"] == 15


@pytest.mark.parametrize("name", EXPECTED_MESSAGES)
def test_message_matches_contract(pool, name):
    spec = contract_messages()[name]
    desc = pool.FindMessageTypeByName(f"mayastor.v1.{name}")
    ours = {f.name: f for f in desc.fields}
    assert set(ours) == set(spec), f"{name}: fields differ from the contract"
    for fname, (label, ftype, number) in spec.items():
        f = ours[fname]
        assert f.number == number, f"{name}.{fname} number"
        assert _repeated(f) == (label in ("rep", "map")), f"{name}.{fname} repeated"
        if label == "map":
            entry = f.message_type
            assert entry.GetOptions().map_entry, f"{name}.{fname} is not a map"
            assert entry.fields_by_name["value"].message_type.name == ftype
        elif ftype in SCALARS:
            assert f.type == SCALARS[ftype], f"{name}.{fname} type"
            assert f.has_presence == (label in ("opt", "oneof")), f"{name}.{fname} optional"
            assert (f.containing_oneof is not None and label == "oneof") or label != "oneof"
        elif ftype in WELL_KNOWN:
            assert f.message_type.full_name == WELL_KNOWN[ftype]
        elif f.type == FD.TYPE_ENUM:
            assert f.enum_type.name == ftype.split(".")[-1], f"{name}.{fname} enum type"
        else:
            # a short type name may refer to a message nested in this one (Query, Partition)
            allowed = {f"mayastor.v1.{ftype}", f"mayastor.v1.{name.split('.')[0]}.{ftype}"}
            assert f.type == FD.TYPE_MESSAGE and f.message_type.full_name in allowed, f"{name}.{fname} message type"


def test_nexus_only_responses(pool):
    for rpc in NEXUS_ONLY_RESPONSES:
        desc = pool.FindMessageTypeByName(f"mayastor.v1.{rpc}Response")
        assert [(f.name, f.number, f.message_type.full_name) for f in desc.fields] == [
            ("nexus", 1, "mayastor.v1.Nexus")]


@pytest.mark.parametrize("name", EXPECTED_ENUMS)
def test_enum_matches_contract(pool, name):
    desc = pool.FindEnumTypeByName(f"mayastor.v1.{name}")
    assert {v.name: v.number for v in desc.values} == contract_enums()[name]


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_services_and_methods(pool, service):
    desc = pool.FindServiceByName(f"mayastor.v1.{service}")
    assert [m.name for m in desc.methods] == SERVICES[service]
    if service == "TestRpc":  # WipeReplica streams its progress
        assert desc.methods_by_name["WipeReplica"].server_streaming
