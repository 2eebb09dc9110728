"""Message and service classes of our own .proto files in proto/v1.

`scripts/setup` generates them once into mayastor/grpc/_gen (genprotos.py; not in git).
When that copy is missing or older than a .proto file, grpcio's runtime importer compiles them in
memory instead: correct, but it runs protoc at every process start, which is slow (seconds in the
TCG test VM), hence the generated copy.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import grpc

PROTO_DIR = Path(os.environ.get("MAYASTOR_PROTO_DIR") or Path(__file__).resolve().parents[2] / "proto" / "v1")
GEN_DIR = Path(__file__).resolve().parent / "_gen"
NAMES = ("common", "pool", "replica", "snapshot", "host", "stats", "nexus", "json", "registration", "test")


def _generated_is_fresh() -> bool:
    try:
        newest = max(p.stat().st_mtime for p in PROTO_DIR.glob("*.proto"))
        return all((GEN_DIR / f"{n}{s}.py").stat().st_mtime >= newest
                   for n in NAMES for s in ("_pb2", "_pb2_grpc"))
    except (OSError, ValueError):
        return False


if _generated_is_fresh():
    if str(GEN_DIR) not in sys.path:
        sys.path.append(str(GEN_DIR))  # generated modules import each other flat ("import common_pb2")

    def _load(name: str):
        return importlib.import_module(f"{name}_pb2"), importlib.import_module(f"{name}_pb2_grpc")
else:
    if str(PROTO_DIR) not in sys.path:
        sys.path.append(str(PROTO_DIR))  # the importer resolves flat imports ("common.proto") through sys.path

    def _load(name: str):
        return grpc.protos_and_services(f"{name}.proto")


common, _ = _load("common")
pool, pool_grpc = _load("pool")
replica, replica_grpc = _load("replica")
snapshot, snapshot_grpc = _load("snapshot")
host, host_grpc = _load("host")
stats, stats_grpc = _load("stats")
nexus, nexus_grpc = _load("nexus")
json, json_grpc = _load("json")
registration, registration_grpc = _load("registration")
test, test_grpc = _load("test")
