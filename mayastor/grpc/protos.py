"""Message and service classes of our own .proto files: proto/v1 (io-engine) and proto/csi (CSI).

`scripts/setup` generates them once into mayastor/grpc/_gen (genprotos.py; not in git).
When that copy is missing or older than a .proto file, grpcio's runtime importer compiles them in
memory instead: correct, but it runs protoc at every process start, which is slow (seconds in the
TCG test VM), hence the generated copy.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import grpc

from .genprotos import CSI_PROTO_DIR, GEN_DIR, PROTO_DIR  # noqa: F401  (CSI_PROTO_DIR for the CSI plugin)

NAMES = ("common", "pool", "replica", "snapshot", "host", "stats", "nexus", "json", "registration", "test", "bdev")


def _generated_is_fresh(proto_dir: Path, names: tuple[str, ...]) -> bool:
    try:
        newest = max(p.stat().st_mtime for p in proto_dir.glob("*.proto"))
        return all((GEN_DIR / f"{n}{s}.py").stat().st_mtime >= newest for n in names for s in ("_pb2", "_pb2_grpc"))
    except (OSError, ValueError):
        return False


def load(proto_dir: Path, names: tuple[str, ...]):
    """A loader of (messages, services) modules by proto file name: generated or compiled now."""
    if _generated_is_fresh(proto_dir, names):
        if str(GEN_DIR) not in sys.path:
            sys.path.append(str(GEN_DIR))  # generated modules import each other flat ("import common_pb2")
        return lambda name: (importlib.import_module(f"{name}_pb2"), importlib.import_module(f"{name}_pb2_grpc"))
    if str(proto_dir) not in sys.path:
        sys.path.append(str(proto_dir))  # the importer resolves flat imports ("common.proto") through sys.path
    return lambda name: grpc.protos_and_services(f"{name}.proto")


_load = load(PROTO_DIR, NAMES)
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
bdev, bdev_grpc = _load("bdev")
