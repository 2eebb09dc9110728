"""mayastor-shell against the real daemon: pools, replicas (get/set), a nexus published, a child
offline and back, the raw nvmet view, deletes; gRPC errors end a run with status 1; completion of
names and parameters; the installed console script non-interactively and at its prompt (pexpect)."""

from __future__ import annotations

import io
import os
import re
import shutil
import sys
import time

import pexpect
import pytest

from mayastor.grpc import protos as P
from mayastor.shell.main import build, run

from .daemon import serve

NODE = "shtour"
PORT = 10124
SHELL = shutil.which("mayastor-shell") or os.path.join(os.path.dirname(sys.executable), "mayastor-shell")


@pytest.fixture
def daemon(tmp_path, request):
    yield from serve(tmp_path, request, NODE)


class Session:
    def __init__(self):
        self.buf = io.StringIO()
        self.shell, self.root = build(f"127.0.0.1:{PORT}", self.buf)

    def __call__(self, *commands: str, ok: bool = True) -> str:
        start = self.buf.tell()
        rc = run(self.shell, self.root, list(commands))
        out = self.buf.getvalue()[start:]
        print(f"> {'; '.join(commands)}\n{out}")
        assert (rc == 0) == ok, out
        return out


def wait_for(pred, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow  # ~7 min under TCG (each refresh of the tree is several RPCs): `scripts/test slow`
@pytest.mark.timeout(1200)
def test_shell_tour(daemon, tmp_path):
    sh = Session()
    sh(f"/pools create shpool aio://{tmp_path}/sh.img?size_mb=256")
    assert re.search(r"shpool .*online capacity", sh("ls /pools"))
    sh("cd /pools/shpool/replicas", "create sh-r1 68MiB", "create sh-r2 68MiB share=nvmf")
    listing = sh("ls")
    assert "sh-r1" in listing and "sh-r2" in listing and "nvmf" in listing
    # get/set: resize through the attribute group
    sh("/pools/shpool/replicas/sh-r1 set attribute size=72MiB")
    assert "size=75497472" in sh("/pools/shpool/replicas/sh-r1 get attribute size").replace(" ", "")
    # completion of names and parameters
    reps = sh.root.get_node("/pools/shpool/replicas")
    assert sorted(reps.ui_complete_delete([], "sh-", "name")) == ["sh-r1", "sh-r2"]
    assert reps.ui_complete_create([], "nv", "share") == ["nvmf"]

    c = daemon.client
    uuids = {r.name: r.uuid for r in c.replica.ListReplicas(P.replica.ListReplicaOptions()).replicas}
    kids = f"bdev:///sh-r1?uuid={uuids['sh-r1']},bdev:///sh-r2?uuid={uuids['sh-r2']}"
    sh(f"/nexus create shvol 64MiB {kids}", "/nexus/shvol publish nvmf")
    assert re.search(r"shvol .*online 64\.00 MiB, published nvmf://", sh("ls /nexus"))
    assert "nqn.2019-05.io.openebs:shvol" in sh("ls /nvmet")
    sh("/nexus/shvol/children/child1 offline")
    assert "degraded" in sh("ls /nexus")
    sh("/nexus/shvol/children/child1 online")
    wait_for(lambda: re.search(r"shvol .*online", sh("ls /nexus")), 120, "nexus online again")

    # errors: one line, the run stops with status 1, nothing changed
    out = sh("/pools delete nopool", "ls /pools", ok=False)
    assert "NOT_FOUND" in out and "shpool" not in out
    assert "no replica nosuch in pool shpool" in sh("/pools/shpool/replicas delete nosuch", ok=False)

    # the installed script: non-interactive, then at its prompt
    p = pexpect.run(f"{SHELL} -b 127.0.0.1:{PORT} 'ls /nexus'", timeout=180, withexitstatus=True,
                    encoding="utf-8")
    assert p[1] == 0 and "shvol" in p[0], p[0]
    child = pexpect.spawn(SHELL, ["-b", f"127.0.0.1:{PORT}"], timeout=180, encoding="utf-8")
    try:
        child.expect(r"/> ")
        child.sendline("cd /pools/shpool/replicas")
        child.expect(r"replicas> ")
        child.sendline("ls")
        child.expect("sh-r2")
        child.expect(r"replicas> ")
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)

    sh("/nexus/shvol unpublish", "/nexus delete shvol")
    sh("/pools/shpool/replicas delete sh-r1", "/pools/shpool/replicas delete sh-r2", "/pools delete shpool")
    assert "shpool" not in sh("ls /pools")
