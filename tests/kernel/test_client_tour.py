"""A tour with io-engine-client only (the installed console script, as an operator runs it):
pool -> replicas -> nexus -> publish -> nvme-cli connect -> fio -> child fault -> rebuild ->
destroy, reading tables and JSON; gRPC errors are one line on stderr and exit status 1."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
import uuid

import pytest

from mayastor.client.main import main
from mayastor.kernel import nvme_fabrics

from .daemon import serve
from .util import run, wait_for

NODE = "tour"
PORT = 10124
METRICS = 9502
HOST = "nqn.2014-08.org.nvmexpress:uuid:eeeeeeee-0000-4000-8000-000000000005"
HOST_ID = "eeeeeeee-0000-4000-8000-000000000005"
CLIENT = shutil.which("io-engine-client") or os.path.join(os.path.dirname(sys.executable), "io-engine-client")


@pytest.fixture
def daemon(tmp_path, request):
    yield from serve(tmp_path, request, NODE, nqns=("nqn.2019-05.io.openebs:tourvol",),
                     extra_args=("--metrics-port", str(METRICS)))


def cli(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    """io-engine-client in this process (the same code as the console script; a new Python per
    command costs ~10 s under TCG); script() runs the installed console script itself."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(["-b", f"127.0.0.1:{PORT}", *args], out=out)
    p = subprocess.CompletedProcess(args, rc, out.getvalue(), err.getvalue())
    print(f"$ io-engine-client {' '.join(args)}\n{p.stdout}{p.stderr}")
    if ok:
        assert p.returncode == 0, p.stderr
    return p


def script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLIENT, "-b", f"127.0.0.1:{PORT}", *args], capture_output=True, text=True, timeout=180)


def table(*args: str) -> list[dict[str, str]]:
    """A default-format table as dicts (header words -> cells; cells have no spaces here)."""
    lines = cli(*args).stdout.strip().splitlines()
    head = lines[0].split()
    return [dict(zip(head, line.split())) for line in lines[1:]]


def scrape() -> dict[tuple, float]:
    """/metrics as {(sample name, sorted labels without node): value}."""
    from prometheus_client.parser import text_string_to_metric_families
    with urllib.request.urlopen(f"http://127.0.0.1:{METRICS}/metrics", timeout=30) as r:
        text = r.read().decode()
    return {(s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k != "node"))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def metric(m: dict, sample: str, **labels) -> float | None:
    want = tuple(sorted(labels.items()))
    return next((v for (n, lab), v in m.items() if n == sample and all(x in lab for x in want)), None)


@pytest.mark.timeout(900)
def test_io_engine_client_tour(daemon, tmp_path):
    # the installed console script, as an operator runs it
    p = script("pool", "create", "tourpool", f"aio://{tmp_path}/tour.img?size_mb=512")
    assert p.returncode == 0 and p.stdout.strip() == "tourpool", p.stderr
    pools = table("-u", "i", "pool", "list")
    assert [(p["NAME"], p["STATE"]) for p in pools] == [("tourpool", "online")]
    pool_json = json.loads(cli("-o", "json", "pool", "list").stdout)["pools"][0]
    assert pool_json["capacity"] > 400 << 20
    assert metric(scrape(), "mayastor_pool_capacity_bytes", name="tourpool") == pool_json["capacity"]

    u1, u2, nu = (str(uuid.uuid4()) for _ in range(3))
    cli("replica", "create", "tour-r1", u1, "tourpool", "-s", "68MiB", "-t")
    cli("replica", "create", "tour-r2", u2, "tourpool", "-s", "68MiB", "-t")
    reps = json.loads(cli("-o", "json", "replica", "list").stdout)["replicas"]
    assert sorted(r["name"] for r in reps) == ["tour-r1", "tour-r2"] and all(r["thin"] for r in reps)
    rows = table("replica", "list")
    assert {r["NAME"]: r["SIZE"] for r in rows} == {"tour-r1": str(68 << 20), "tour-r2": str(68 << 20)}
    dup = cli("replica", "create", "tour-r1", u1, "tourpool", "-s", "68MiB", ok=False)
    assert dup.returncode == 1 and len(dup.stderr.strip().splitlines()) == 1 and "ALREADY_EXISTS" in dup.stderr

    c1, c2 = f"bdev:///tour-r1?uuid={u1}", f"bdev:///tour-r2?uuid={u2}"
    cli("nexus", "create", nu, "64MiB", c1, c2, "--name", "tourvol")
    uri = cli("nexus", "publish", nu, "--allowed-host", HOST).stdout.strip()
    assert re.fullmatch(r"nvmf://[0-9.]+:\d+/nqn\.2019-05\.io\.openebs:tourvol", uri), uri
    nx = table("nexus", "list", "-c")
    assert nx[0]["NAME"] == "tourvol" and nx[0]["STATE"] == "online" and nx[0]["CHILDREN"] == f"{c1},{c2}"

    addr, port = re.match(r"nvmf://([0-9.]+):(\d+)/", uri).groups()
    run("nvme", "connect", "-t", "tcp", "-a", addr, "-s", port, "-n", "nqn.2019-05.io.openebs:tourvol",
        "-q", HOST, "-I", HOST_ID)
    dev = wait_for(lambda: (lambda ns: ns.path if ns and os.path.exists(ns.path) else None)(
        nvme_fabrics.find_namespace(nu)), 30, "nexus namespace")

    def fio(offset: str, *extra: str) -> None:
        run("fio", "--name=tour", f"--filename={dev}", "--rw=randwrite", "--bs=4k", "--direct=1", "--size=2M",
            f"--offset={offset}", "--ioengine=psync", "--verify=crc32c", *extra, timeout=300)

    fio("0")  # writes, then reads back and checks
    cli("nexus", "child", "fault", nu, c2)
    kids = {k["NAME"]: k for k in table("nexus", "children", nu)}
    assert kids[c2]["STATE"] == "faulted" and kids[c1]["STATE"] == "online"
    assert table("nexus", "list")[0]["STATE"] == "degraded"
    m = scrape()  # the fault, as metrics show it
    assert metric(m, "mayastor_nexus_state", uuid=nu) == 2
    assert metric(m, "mayastor_nexus_child_state", nexus=nu, uri=c2) == 3
    assert metric(m, "mayastor_nexus_io_ops_total", uuid=nu, op="write") >= 512  # fio's 2 MiB of 4 KiB writes
    fio("16M")  # written while c2 is out

    # a faulted child stays out (as in io-engine): it comes back as a new child, fully rebuilt
    assert cli("nexus", "child", "online", nu, c2, ok=False).returncode == 1
    cli("nexus", "remove", nu, c2)
    cli("nexus", "add", nu, c2, "false")
    seen = []  # the rebuild, as metrics show it while it runs

    def rebuilt() -> bool:
        online = table("nexus", "list")[0]["STATE"] == "online"  # first: a later scrape must agree
        m = scrape()
        seen.append((metric(m, "mayastor_nexus_rebuilds", uuid=nu),
                     metric(m, "mayastor_nexus_child_rebuild_progress_percent", nexus=nu, uri=c2)))
        return online
    wait_for(rebuilt, 300, "nexus online after the rebuild")
    print("metrics during the rebuild (rebuilds, progress %):", seen)
    assert any(r == 1 for r, _ in seen[:-1]) and seen[-1][0] == 0
    assert metric(scrape(), "mayastor_nexus_child_state", nexus=nu, uri=c2, reason="none") == 1
    hist = table("rebuild", "history", nu)
    assert hist and hist[-1]["CHILD"] == c2 and hist[-1]["STATE"] == "completed" and hist[-1]["PARTIAL"] == "false"
    # with c1 out, every read comes from the rebuilt c2: both regions must verify
    cli("nexus", "child", "offline", nu, c1)
    fio("0", "--verify_only")
    fio("16M", "--verify_only")
    cli("nexus", "child", "online", nu, c1)
    wait_for(lambda: table("nexus", "list")[0]["STATE"] == "online", 300, "nexus online again")

    run("nvme", "disconnect", "-n", "nqn.2019-05.io.openebs:tourvol")
    assert cli("nexus", "destroy", nu).stdout.strip() == f"nexus: {nu} is destroyed"
    cli("replica", "destroy", u1)
    cli("replica", "destroy", u2)
    assert cli("-q", "replica", "list").stdout == ""
    assert cli("pool", "destroy", "tourpool").stdout.strip() == "pool: tourpool is deleted"
    gone = script("pool", "destroy", "nopool")
    assert gone.returncode == 1 and len(gone.stderr.strip().splitlines()) == 1 and "NOT_FOUND" in gone.stderr
