#!/usr/bin/env python3
"""Idle benchmark (prints, asserts nothing): the daemon's CPU with 0, 1 and 20 published nexuses
and no I/O, and how soon it still sees a fault. Needs the kernel facilities (run natively as root
or in the test VM):

    scripts/vm-run -- .venv/bin/python bench/idle.py [--idle 30]

Each nexus is a raid1 over two local thin replicas, published over NVMe-oF TCP. CPU is the
daemon's utime+stime from /proc over ``--idle`` seconds, as a percentage of one core. Prints
``idle cpu <n> nexuses <pct>`` per step, then ``fault seen after <s>`` for a child whose leg is
made to fail (dm-raid raises a dm event; the daemon must not need a poll to notice).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench.replicas import cpu_seconds  # noqa: E402
from mayastor.grpc import protos as P  # noqa: E402
from tests.kernel.daemon import Daemon  # noqa: E402

MiB = 1 << 20
SIZE = 8 * MiB


def idle_pct(pid: int, seconds: float) -> float:
    time.sleep(3)  # let the last call's after-work settle
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0) * 100


def make_nexus(c, i: int) -> tuple[str, list[str]]:
    children = []
    for leg in ("a", "b"):
        ru = str(uuid.uuid4())
        name = f"idle-{i:03d}{leg}"
        c.replica.CreateReplica(
            P.replica.CreateReplicaRequest(name=name, uuid=ru, pooluuid="idle", size=SIZE, thin=True)
        )
        children.append(f"bdev:///{name}?uuid={ru}")
    nu = str(uuid.uuid4())
    c.nexus.CreateNexus(P.nexus.CreateNexusRequest(name=f"idle-nx-{i:03d}", uuid=nu, size=SIZE, children=children))
    c.nexus.PublishNexus(P.nexus.PublishNexusRequest(uuid=nu, share=1))
    return nu, children


def fault_latency(c, nu: str, children: list[str], node: str) -> float:
    """Point the second child's data leg at dm-error under the raid and write: md faults the leg
    and raises a dm event; the time until ListNexus shows the child faulted."""
    names = subprocess.run(["dmsetup", "ls"], capture_output=True, text=True, check=True).stdout.split()
    prefix = f"MAYASTOR-{node}-nexus-{nu}-"
    legs = sorted((n for n in names if n.startswith(prefix) and n.endswith("-data")), key=lambda n: int(n.split("-")[-2]))
    leg = legs[-1]  # the second child's data leg (child ids grow in slot order)
    sectors = subprocess.run(["blockdev", "--getsz", f"/dev/mapper/{leg}"], capture_output=True, text=True,
                             check=True).stdout.strip()
    subprocess.run(["dmsetup", "suspend", leg], check=True)
    subprocess.run(["dmsetup", "load", leg, "--table", f"0 {sectors} error"], check=True)
    subprocess.run(["dmsetup", "resume", leg], check=True)
    raid = f"/dev/mapper/MAYASTOR-{node}-nexus-{nu}-raid"
    t0 = time.monotonic()
    subprocess.run(["dd", "if=/dev/zero", f"of={raid}", "bs=4k", "count=1", "oflag=direct"], capture_output=True)
    while time.monotonic() - t0 < 120:
        info = next(x for x in c.nexus.ListNexus(P.nexus.ListNexusOptions()).nexus_list if x.uuid == nu)
        if any(ch.uri == children[1] and ch.state == P.nexus.CHILD_STATE_FAULTED for ch in info.children):
            return time.monotonic() - t0
        time.sleep(0.05)
    return float("inf")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--idle", type=float, default=30.0, help="seconds measured per step")
    ap.add_argument("--steps", default="0,1,20", help="numbers of published nexuses")
    args = ap.parse_args()
    steps = [int(n) for n in args.steps.split(",")]
    work = tempfile.mkdtemp(prefix="bench-idle-")
    node = "idlebench"
    d = Daemon(os.path.join(work, "state.db"), os.path.join(work, "daemon.log"), node=node, port=10126)
    made: list[tuple[str, list[str]]] = []
    try:
        c = d.start(timeout=600)
        c.pool.CreatePool(P.pool.CreatePoolRequest(name="idle", disks=[f"aio://{work}/pool.img?size_mb=2048"]))
        for n in steps:
            while len(made) < n:
                made.append(make_nexus(c, len(made)))
            print(f"idle cpu {n} nexuses {idle_pct(d.proc.pid, args.idle):.2f} % of one core", flush=True)
        if made:
            print(f"fault seen after {fault_latency(c, *made[0], node):.2f} s (dm event, no I/O otherwise)")
        for nu, _ in made:
            c.nexus.DestroyNexus(P.nexus.DestroyNexusRequest(uuid=nu), timeout=600)
        for p in c.pool.ListPools(P.pool.ListPoolOptions()).pools:
            c.pool.DestroyPool(P.pool.DestroyPoolRequest(name=p.name), timeout=600)
    finally:
        if d.proc is not None:
            d.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
