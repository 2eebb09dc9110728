"""Message and service classes generated at import time from our own .proto files in proto/v1.

grpcio's runtime importer (grpc.protos_and_services) compiles them in memory with grpcio-tools, so
there is no generated code to keep in step with the .proto text.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import grpc

PROTO_DIR = Path(os.environ.get("MAYASTOR_PROTO_DIR") or Path(__file__).resolve().parents[2] / "proto" / "v1")

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
