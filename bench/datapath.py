#!/usr/bin/env python3
"""Data path benchmark (prints, asserts nothing): the published nexus against a hand-made nvmet
export of one backing device, both read by the kernel NVMe-oF host over TCP in the same machine.
Run natively as root on a kernel with nvmet/dm-raid, or in the test VM:

    scripts/vm-run -- .venv/bin/python bench/datapath.py [--runtime 10]

Setup: one pool on a RAM-backed file (tmpfs, so the disk is not what is measured), three thin
replicas. Nexus = raid1 over two of them, published on 127.0.0.1:4421. Baseline = the third
replica exported by hand (our configfs objects, no nexus) on 127.0.0.1:4430. fio (libaio,
O_DIRECT) runs each job on both, one after the other; the ratio nexus/plain is what to read.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import configfs  # noqa: E402
from mayastor.grpc import protos as P  # noqa: E402
from mayastor.kernel import dm, nvme_fabrics  # noqa: E402
from tests.kernel.daemon import Daemon  # noqa: E402

MiB = 1 << 20
SIZE = 192 * MiB
HOST = "nqn.2014-08.org.nvmexpress:uuid:bbbbbbbb-1111-4000-8000-00000000be0c"
HOST_ID = "bbbbbbbb-1111-4000-8000-00000000be0c"
PLAIN_NQN = "nqn.2019-05.io.openebs:bench-plain"
JOBS = [
    ("4k randread", ["--rw=randread", "--bs=4k", "--iodepth=16"], "iops"),
    ("4k randwrite", ["--rw=randwrite", "--bs=4k", "--iodepth=16"], "iops"),
    ("128k seq read", ["--rw=read", "--bs=128k", "--iodepth=8"], "bw"),
    ("128k seq write", ["--rw=write", "--bs=128k", "--iodepth=8"], "bw"),
]


def fio(dev: str, args: list[str], runtime: int) -> dict:
    out = subprocess.run(["fio", "--name=b", f"--filename={dev}", "--direct=1", "--ioengine=libaio",
                          "--time_based", f"--runtime={runtime}", "--ramp_time=2", "--output-format=json",
                          *args], capture_output=True, text=True, check=True).stdout
    job = json.loads(out)["jobs"][0]
    side = job["read"] if job["read"]["io_bytes"] else job["write"]
    return {"iops": side["iops"], "bw": side["bw_bytes"] / MiB, "lat_us": side["clat_ns"]["mean"] / 1000}


def connect(nqn: str, port: int, ns_uuid: str) -> str:
    subprocess.run(["nvme", "connect", "-t", "tcp", "-a", "127.0.0.1", "-s", str(port), "-n", nqn, "-q", HOST,
                    "-I", HOST_ID], check=True, capture_output=True)
    return nvme_fabrics.wait_for_namespace(ns_uuid, timeout=20).path


def export_plain(device: str, ns_uuid: str) -> configfs.Port:
    sub = configfs.Subsystem(PLAIN_NQN, "create")
    sub.allow_any_host = True
    ns = sub.namespace(1, "create")
    ns.set_device(device, uuid=ns_uuid)
    ns.enable()
    port = configfs.Port(4430, "create")
    port.set_address("tcp", "ipv4", "127.0.0.1", 4430)
    port.add_subsystem(PLAIN_NQN)
    return port


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runtime", type=int, default=10)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="bench-datapath-", dir="/run" if os.path.isdir("/run") else None)
    d = Daemon(os.path.join(work, "state.db"), os.path.join(work, "daemon.log"), node="bench", port=10126)
    port = None
    try:
        c = d.start(timeout=600)
        c.pool.CreatePool(P.pool.CreatePoolRequest(name="bench", disks=[f"aio://{work}/pool.img?size_mb=1024"]))
        reps = [c.replica.CreateReplica(P.replica.CreateReplicaRequest(
            name=f"bench-r{i}", uuid=str(uuid.uuid4()), pooluuid="bench", size=SIZE + 4 * MiB, thin=False))
            for i in range(3)]
        nu = str(uuid.uuid4())
        c.nexus.CreateNexus(P.nexus.CreateNexusRequest(
            name="bench-vol", uuid=nu, size=SIZE, children=[f"bdev:///{r.name}?uuid={r.uuid}" for r in reps[:2]]))
        c.nexus.PublishNexus(P.nexus.PublishNexusRequest(uuid=nu, share=1))
        with dm.DeviceMapper() as ctl:
            plain_dev = ctl.info(f"MAYASTOR-bench-thin-{reps[2].uuid}").devnode
        plain_uuid = str(uuid.uuid4())
        port = export_plain(plain_dev, plain_uuid)
        nexus_path = connect("nqn.2019-05.io.openebs:bench-vol", 4421, nu)
        plain_path = connect(PLAIN_NQN, 4430, plain_uuid)
        for path in (nexus_path, plain_path):  # allocate every thin block first: measure I/O, not provisioning
            subprocess.run(["fio", "--name=fill", f"--filename={path}", "--rw=write", "--bs=1M", "--direct=1",
                            "--ioengine=libaio", "--iodepth=4"], check=True, capture_output=True)
        print(f"data path: nexus (raid1 over 2 replicas, nvmet-tcp :4421) vs plain nvmet-tcp export of one replica; "
              f"fio libaio O_DIRECT {args.runtime}s per job, {SIZE >> 20} MiB")
        print(f"{'job':16} {'nexus':>12} {'plain':>12} {'ratio':>7}   {'lat nexus':>10} {'lat plain':>10}")
        for name, fargs, key in JOBS:
            a = fio(nexus_path, fargs, args.runtime)
            b = fio(plain_path, fargs, args.runtime)
            unit = "IOPS" if key == "iops" else "MiB/s"
            print(f"{name:16} {a[key]:9.0f} {unit:5} {b[key]:7.0f} {unit:5} {a[key] / b[key]:6.2f}   "
                  f"{a['lat_us']:8.0f}us {b['lat_us']:8.0f}us")
    finally:
        subprocess.run(["nvme", "disconnect", "-n", "nqn.2019-05.io.openebs:bench-vol"], capture_output=True)
        subprocess.run(["nvme", "disconnect", "-n", PLAIN_NQN], capture_output=True)
        time.sleep(1)
        if port is not None:
            port.delete()
            configfs.Subsystem(PLAIN_NQN, "lookup").delete()
        if d.proc is not None:
            c = d.client
            for n in c.nexus.ListNexus(P.nexus.ListNexusOptions()).nexus_list:
                c.nexus.DestroyNexus(P.nexus.DestroyNexusRequest(uuid=n.uuid))
            for p in c.pool.ListPools(P.pool.ListPoolOptions()).pools:
                c.pool.DestroyPool(P.pool.DestroyPoolRequest(name=p.name), timeout=600)
            d.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
