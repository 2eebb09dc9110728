"""Run the real `mayastor` daemon as a subprocess and talk to it over gRPC with stubs generated
from our protos (the way any client would)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import grpc

from mayastor.grpc import protos as P
from mayastor.grpc.stubs import Stubs


Client = Stubs  # the daemon's services over its channel
# a channel to a process that is still starting: gRPC's default reconnect backoff (1 s, growing
# 1.6x) notices a daemon ready after 10 s only at ~16 s; retry every 0.2-1 s instead
FAST_RECONNECT = [("grpc.initial_reconnect_backoff_ms", 200), ("grpc.min_reconnect_backoff_ms", 200),
                  ("grpc.max_reconnect_backoff_ms", 1000)]


class Daemon:
    """``fork``: start it from the pre-imported zygote (zygote.py: the same daemon code, minus ~40 s
    of imports under TCG); False runs ``python -m mayastor`` as an operator would."""

    def __init__(self, state_db: str, log_path: str, node: str = "testnode", port: int = 10124,
                 target: str = "127.0.0.1", extra_args: tuple[str, ...] = (), fork: bool = True,
                 disk_dirs: tuple[str, ...] | None = None, grpc_host: str = "127.0.0.1"):
        # files the tests make live beside the state file (the test's tmp_path): the one --disk-dir
        dirs = (os.path.dirname(state_db),) if disk_dirs is None else disk_dirs
        self.extra_args = tuple(a for d in dirs for a in ("--disk-dir", d)) + tuple(extra_args)
        self.fork = fork and os.environ.get("MAYASTOR_TEST_FORK", "1") != "0"
        self.state_db, self.log_path, self.node, self.port, self.target = state_db, log_path, node, port, target
        self.grpc_host = grpc_host
        self.proc: subprocess.Popen | None = None
        self.channel: grpc.Channel | None = None
        self.client: Client | None = None

    def spawn(self, env: dict | None = None) -> None:
        """Start the process (without waiting for it to serve)."""
        argv = ["-N", self.node, "-g", f"{self.grpc_host}:{self.port}", "-T", self.target, "--state-db", self.state_db,
                "-v", *self.extra_args]
        if self.fork:
            from .zygote import zygote
            self.proc = zygote().spawn(argv, {**os.environ, **(env or {})}, self.log_path)
        else:
            log = open(self.log_path, "ab")
            self.proc = subprocess.Popen([sys.executable, "-m", "mayastor", *argv], stdout=log, stderr=log,
                                         env={**os.environ, **(env or {})})
            log.close()

    def start(self, timeout: float = 180, env: dict | None = None) -> Client:
        self.spawn(env)
        return self.wait_serving(timeout)

    def wait_serving(self, timeout: float = 180) -> Client:
        """Wait until the spawned daemon answers gRPC."""
        self.channel = grpc.insecure_channel(f"{self.grpc_host}:{self.port}", options=FAST_RECONNECT)
        deadline = time.monotonic() + timeout
        while True:
            try:
                grpc.channel_ready_future(self.channel).result(timeout=1)
                break
            except grpc.FutureTimeoutError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"daemon exited {self.proc.returncode}:\n{self.log()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"daemon not serving after {timeout}s:\n{self.log()}")
        self.client = Client(self.channel)
        return self.client

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-6000:]
        except FileNotFoundError:  # not written yet
            return ""

    def _close_channel(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None

    def wait_exit(self, timeout: float = 120) -> int:
        """For a daemon that kills itself (crash points): reap it."""
        self._close_channel()
        rc = self.proc.wait(timeout=timeout)
        self.proc = None
        return rc

    def stop(self) -> int:
        self._close_channel()
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=300)
        self.proc = None
        return rc

    def kill9(self) -> None:
        self._close_channel()
        if self.proc is not None:
            if self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=120)
            self.proc = None


TEARDOWN_CALL = 600  # seconds a teardown call may take on a loaded machine before we give up on it
RESULTS = os.path.join(os.path.dirname(__file__), "..", "..", "test-results")


def ours(node: str) -> list[str]:
    """Our dm devices still in the kernel for ``node``."""
    from mayastor.kernel import dm
    with dm.DeviceMapper() as ctl:
        return [d.name for d in ctl.list_devices() if d.name.startswith(f"MAYASTOR-{node}-")]


def serve(tmp_path, request, node: str, *, start: bool = True, nqns: tuple[str, ...] = (),
          extra_args: tuple[str, ...] = ()):
    """The body of a per-test ``daemon`` fixture: a daemon with its own state file and log
    (test-results/daemon-<test>.log); afterwards it is brought back if the test left it dead, hosts
    disconnect ``nqns``, every nexus and pool is destroyed, the daemon stops cleanly and nothing
    of ``node`` is left in device-mapper."""
    log = os.path.join(RESULTS, f"daemon-{request.node.name}.log")
    if os.path.exists(log):
        os.unlink(log)
    d = Daemon(str(tmp_path / "state.db"), log, node=node, extra_args=extra_args)
    if start:
        d.start(timeout=180)
    yield d
    try:
        if d.proc is not None and d.proc.poll() is not None:
            d.wait_exit()
        if d.proc is None:
            d.start()
        elif d.client is None:  # spawned by the test, never waited for
            d.wait_serving()
        for nqn in nqns:
            subprocess.run(["nvme", "disconnect", "-n", nqn], capture_output=True, timeout=120)
        c = d.client
        for n in c.nexus.ListNexus(P.nexus.ListNexusOptions(), timeout=TEARDOWN_CALL).nexus_list:
            c.nexus.DestroyNexus(P.nexus.DestroyNexusRequest(uuid=n.uuid), timeout=TEARDOWN_CALL)
        for p in c.pool.ListPools(P.pool.ListPoolOptions(), timeout=TEARDOWN_CALL).pools:
            c.pool.DestroyPool(P.pool.DestroyPoolRequest(name=p.name), timeout=TEARDOWN_CALL)
        assert d.stop() == 0
        assert ours(node) == []
    except BaseException:
        # a teardown that cannot finish must not poison the next test: the daemon goes (it would
        # keep the port) and so does everything in the kernel
        d.kill9()
        from .util import force_cleanup
        force_cleanup()
        raise
