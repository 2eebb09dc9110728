#!/usr/bin/env python3
"""Replica benchmark (prints, asserts nothing). Needs the kernel facilities: run it natively as
root on a kernel with nvmet/dm-thin, or in the test VM:

    scripts/vm-run -- python bench/replicas.py [-n 200]

Measures, with the real daemon over gRPC:
  * CreateReplica with share=NVMF for N replicas: p50 / p99 latency;
  * ListReplicas with N replicas: p50 / p99 latency;
  * restart: time from process start to serving with N shared replicas, beside the same daemon
    start with an empty pool (the difference is reconcile re-activating and re-sharing N);
  * idle CPU of the daemon over 30 s with N shared replicas (utime+stime from /proc).
Absolute times depend on the machine (under qemu TCG everything is ~20x slower); compare ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from mayastor.grpc import protos as P  # noqa: E402
from tests.kernel.daemon import Daemon  # noqa: E402

MiB = 1 << 20


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed_start(d: Daemon) -> float:
    t0 = time.monotonic()
    d.start(timeout=600)
    return time.monotonic() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--idle", type=float, default=30.0)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="bench-replicas-")
    d = Daemon(os.path.join(work, "state.db"), os.path.join(work, "daemon.log"), node="bench", port=10125)
    try:
        c = d.start(timeout=600)
        c.pool.CreatePool(P.pool.CreatePoolRequest(name="bench", disks=[f"aio://{work}/pool.img?size_mb=4096"]))
        d.stop()
        start_empty = timed_start(d)  # the pool is imported, no replicas
        c = d.client
        create = []
        for i in range(args.n):
            t0 = time.monotonic()
            c.replica.CreateReplica(P.replica.CreateReplicaRequest(
                name=f"bench-{i:04d}", uuid=str(uuid.uuid4()), pooluuid="bench", size=4 * MiB, thin=True, share=1))
            create.append(time.monotonic() - t0)
        lists = []
        for _ in range(30):
            t0 = time.monotonic()
            n = len(c.replica.ListReplicas(P.replica.ListReplicaOptions()).replicas)
            lists.append(time.monotonic() - t0)
        assert n == args.n
        d.stop()
        start_full = timed_start(d)
        c = d.client
        time.sleep(2)
        cpu0, t0 = cpu_seconds(d.proc.pid), time.monotonic()
        time.sleep(args.idle)
        idle = (cpu_seconds(d.proc.pid) - cpu0) / (time.monotonic() - t0) * 100
        print(f"replicas: N={args.n} (each 4 MiB thin, shared over NVMe-oF TCP)")
        print(f"create+share  p50 {pct(create, .5) * 1000:8.1f} ms   p99 {pct(create, .99) * 1000:8.1f} ms")
        print(f"list (N)      p50 {pct(lists, .5) * 1000:8.1f} ms   p99 {pct(lists, .99) * 1000:8.1f} ms")
        print(f"restart to serving: {start_full:.1f} s with N shared replicas vs {start_empty:.1f} s with none "
              f"(ratio {start_full / start_empty:.2f}; reconcile of N ~ {start_full - start_empty:.1f} s)")
        print(f"idle CPU with N shared replicas over {args.idle:.0f} s: {idle:.2f} % of one core")
        print(f"create+share mean {statistics.mean(create) * 1000:.1f} ms; list/create p50 ratio "
              f"{pct(lists, .5) / pct(create, .5):.2f}")
        for p in c.pool.ListPools(P.pool.ListPoolOptions()).pools:
            c.pool.DestroyPool(P.pool.DestroyPoolRequest(name=p.name), timeout=600)
    finally:
        if d.proc is not None:
            d.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
