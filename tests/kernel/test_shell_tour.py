"""mayastor-shell at its prompt (the installed console script through a pty, pexpect), the same tour
as io-engine-client's: pool -> replicas (get/set) -> nexus -> publish -> nvme-cli connect -> fio ->
child fault -> rebuild -> reads from the rebuilt child -> destroy, with the raw nvmet view, errors
that leave the REPL running; completion and non-interactive runs through the same code in-process."""

from __future__ import annotations

import fcntl
import io
import os
import re
import shutil
import struct
import subprocess
import sys
import termios
import time

import pytest
from pexpect import fdpexpect

from mayastor.grpc import protos as P
from mayastor.kernel import nvme_fabrics
from mayastor.shell.main import build
from mayastor.shell.main import run as run_commands

from .daemon import serve
from .util import run, wait_for

NODE = "shtour"
PORT = 10124
NQN = "nqn.2019-05.io.openebs:shvol"
HOST = "nqn.2014-08.org.nvmexpress:uuid:eeeeeeee-0000-4000-8000-000000000006"
HOST_ID = "eeeeeeee-0000-4000-8000-000000000006"
PROMPT = r"\r?\n?/[^\r\n]*> "
SHELL = shutil.which("mayastor-shell") or os.path.join(os.path.dirname(sys.executable), "mayastor-shell")


@pytest.fixture
def daemon(tmp_path, request):
    yield from serve(tmp_path, request, NODE, nqns=(NQN,))


class Prompt:
    """mayastor-shell (the installed console script) at its prompt, driven through a pty."""

    def __init__(self):
        # pexpect.spawn forks and runs Python in the child, which can crash in a process with
        # gRPC threads (ours): the pty is made here and the shell started by subprocess's C-level
        # fork+exec, then pexpect drives the pty's master side.
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 60, 400, 0, 0))
        self.proc = subprocess.Popen([SHELL, "-b", f"127.0.0.1:{PORT}"], stdin=slave, stdout=slave, stderr=slave,
                                     start_new_session=True)
        os.close(slave)
        self.master = master
        self.p = fdpexpect.fdspawn(master, timeout=240, encoding="utf-8")
        self.p.expect(PROMPT)

    def __call__(self, line: str, error: str | None = None) -> str:
        """Send one command line; its output (the REPL carries on after an error, which must
        contain ``error`` when given, and must not occur otherwise)."""
        started = time.monotonic()
        self.p.sendline(line)
        self.p.expect(PROMPT)
        out = self.p.before.split("\n", 1)[1] if "\n" in self.p.before else ""  # drop the echo
        print(f"> {line}  ({time.monotonic() - started:.1f} s)\n{out}")
        if error is None:  # the shell reports every failure as "Error: ..."
            assert "Error" not in out and "gRPC status" not in out, out
        else:
            assert error in out, out
        return out

    def close(self) -> None:
        self.p.sendline("exit")
        assert self.proc.wait(timeout=60) == 0
        self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.master is not None:
            os.close(self.master)
            self.master = None


@pytest.mark.timeout(1200)
def test_shell_tour(daemon, tmp_path):
    sh = Prompt()
    try:
        tour(sh, daemon, tmp_path)
    finally:
        sh.kill()


def tour(sh: Prompt, daemon, tmp_path) -> None:
    sh(f"/pools create shpool aio://{tmp_path}/sh.img?size_mb=256")
    assert re.search(r"shpool .*online capacity", sh("ls /pools"))
    sh("cd /pools/shpool/replicas")
    sh("create sh-r1 68MiB")
    sh("create sh-r2 68MiB share=nvmf")
    listing = sh("ls")
    assert "sh-r1" in listing and "sh-r2" in listing and "nvmf" in listing
    # get/set: resize through the attribute group
    sh("/pools/shpool/replicas/sh-r1 set attribute size=72MiB")
    assert "size=75497472" in sh("/pools/shpool/replicas/sh-r1 get attribute size").replace(" ", "")
    # what tab completion offers: names of child nodes and a command's parameter values (the
    # shell's own tree, in this process: readline's completion display is not scriptable)
    shell, root = build(f"127.0.0.1:{PORT}", io.StringIO())
    assert run_commands(shell, root, ["ls /pools"]) == 0
    reps = root.get_node("/pools/shpool/replicas")
    assert sorted(reps.ui_complete_delete([], "sh-", "name")) == ["sh-r1", "sh-r2"]
    assert reps.ui_complete_create([], "nv", "share") == ["nvmf"]

    uuids = {r.name: r.uuid for r in daemon.client.replica.ListReplicas(P.replica.ListReplicaOptions()).replicas}
    c1, c2 = (f"bdev:///{n}?uuid={uuids[n]}" for n in ("sh-r1", "sh-r2"))
    sh(f"/nexus create shvol 64MiB {c1},{c2}")
    sh("/nexus/shvol publish nvmf")
    uri = re.search(r"shvol .*online 64\.00 MiB, published (nvmf://\S+?)\]?\s", sh("ls /nexus")).group(1)
    assert re.fullmatch(r"nvmf://[0-9.]+:\d+/nqn\.2019-05\.io\.openebs:shvol", uri), uri
    assert "nqn.2019-05.io.openebs:shvol" in sh("ls /nvmet")

    addr, port = re.match(r"nvmf://([0-9.]+):(\d+)/", uri).groups()
    run("nvme", "connect", "-t", "tcp", "-a", addr, "-s", port, "-n", NQN, "-q", HOST, "-I", HOST_ID)
    dev = wait_for(lambda: next((ns.path for ns in nvme_fabrics.namespaces_of(NQN)), None), 30, "nexus namespace")

    def fio(offset: str, *extra: str) -> None:
        run("fio", "--name=shtour", f"--filename={dev}", "--rw=randwrite", "--bs=4k", "--direct=1", "--size=2M",
            f"--offset={offset}", "--ioengine=psync", "--verify=crc32c", *extra, timeout=300)

    fio("0")
    sh("/nexus/shvol/children/child1 fault")
    tree = sh("ls /nexus")
    assert re.search(r"shvol .*degraded", tree) and re.search(r"child1 .*faulted " + re.escape(c2), tree), tree
    fio("16M")  # written while c2 is out
    # the faulted child comes back as a new child, fully rebuilt
    sh(f"/nexus/shvol remove {c2}")
    sh(f"/nexus/shvol add {c2}")
    seen = []

    def online() -> bool:
        tree = sh("ls /nexus")
        seen.extend(re.findall(r"rebuild (\d+)%", tree))
        return bool(re.search(r"shvol .*online", tree))
    wait_for(online, 300, "nexus online after the rebuild", interval=1)
    print("rebuild progress seen in the tree:", seen)
    # with c1 out, every read comes from the rebuilt c2
    sh("/nexus/shvol/children/child0 offline")
    fio("0", "--verify_only")
    fio("16M", "--verify_only")
    sh("/nexus/shvol/children/child0 online")
    wait_for(lambda: re.search(r"shvol .*online", sh("ls /nexus")), 300, "nexus online again", interval=1)
    run("nvme", "disconnect", "-n", NQN)

    # errors: one line, the REPL carries on, nothing changed
    assert "NOT_FOUND" in sh("/pools delete nopool", error="gRPC status")
    sh("/pools/shpool/replicas delete nosuch", error="no replica nosuch in pool shpool")
    assert "shpool" in sh("ls /pools")

    # non-interactive runs (what `mayastor-shell "<commands>"` does; a failing command ends it with 1)
    buf = io.StringIO()
    shell, root = build(f"127.0.0.1:{PORT}", buf)
    assert run_commands(shell, root, ["ls /nexus", "/pools delete nopool", "ls /pools"]) == 1
    assert "shvol" in buf.getvalue() and "NOT_FOUND" in buf.getvalue() and "shpool" not in buf.getvalue()

    sh("/nexus/shvol unpublish")
    sh("/nexus delete shvol")
    sh("/pools/shpool/replicas delete sh-r1")
    sh("/pools/shpool/replicas delete sh-r2")
    sh("/pools delete shpool")
    assert "shpool" not in sh("ls /pools")
    sh.close()
