"""Start test daemons by forking an interpreter that has already imported the daemon.

Under TCG the daemon spends ~40 s importing its modules (SQLAlchemy, grpc, ...) before it does
anything; the kernel tests start it some twenty-five times. A zygote process imports it once; each
start forks it and runs ``mayastor.daemon.main`` with the test's argv and environment, so what runs
is the real daemon code in its own process (own pid, SIGKILL-able, exit status reported). The
zygote never starts grpc or SQLAlchemy machinery itself, so the fork inherits no threads or
connections. ``python -m mayastor`` itself stays covered by tests that pass ``fork=False``.

Protocol: one JSON request per connection on a unix socket, one JSON reply:
    {"op": "spawn", "argv": [...], "env": {...}, "log": path}  -> {"pid": n}
    {"op": "wait", "pid": n, "timeout": s}                     -> {"status": code | null}
Exit codes follow subprocess: negative for a signal.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

_zygote: "ZygoteClient | None" = None


def _serve(path: str) -> None:
    import mayastor.daemon  # noqa: F401 - the point: everything the daemon needs, imported once
    import mayastor.grpc.server  # noqa: F401
    import mayastor.node  # noqa: F401
    import mayastor.store.db  # noqa: F401
    try:
        import alembic.command  # noqa: F401 - a new state database runs the migrations
        import alembic.config  # noqa: F401
    except ImportError:
        pass
    status: dict[int, int] = {}
    lock = threading.Lock()

    def reap(*_):
        while True:
            try:
                pid, st = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            with lock:
                status[pid] = -os.WTERMSIG(st) if os.WIFSIGNALED(st) else os.WEXITSTATUS(st)

    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(8)
    print("ready", flush=True)
    while True:
        conn, _ = srv.accept()
        with conn:
            req = json.loads(conn.makefile().readline())
            if req["op"] == "spawn":
                pid = os.fork()
                if pid == 0:
                    srv.close()
                    _child(req)  # never returns
                conn.sendall((json.dumps({"pid": pid}) + "\n").encode())
            elif req["op"] == "wait":
                end = time.monotonic() + req.get("timeout", 0)
                while True:
                    reap()
                    with lock:
                        st = status.pop(req["pid"], None)
                    if st is not None or time.monotonic() >= end:
                        break
                    time.sleep(0.05)
                conn.sendall((json.dumps({"status": st}) + "\n").encode())


def _child(req: dict) -> None:
    code = 1
    try:
        os.setsid()
        fd = os.open(req["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        sys.stdout = os.fdopen(1, "w", buffering=1)
        sys.stderr = os.fdopen(2, "w", buffering=1)
        os.environ.clear()
        os.environ.update(req["env"])
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sys.argv = ["mayastor", *req["argv"]]
        from mayastor.daemon import main
        code = main(req["argv"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001
        import traceback
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code or 0)


class ZygoteClient:
    def __init__(self):
        self.path = f"/tmp/mayastor-zygote-{os.getpid()}.sock"
        if os.path.exists(self.path):
            os.unlink(self.path)
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.kernel.zygote", self.path],
                                     stdout=subprocess.PIPE, text=True,
                                     cwd=os.path.join(os.path.dirname(__file__), "..", ".."))
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"zygote did not start (exit {self.proc.poll()})")

    def _call(self, req: dict) -> dict:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(self.path)
            s.sendall((json.dumps(req) + "\n").encode())
            return json.loads(s.makefile().readline())

    def spawn(self, argv: list[str], env: dict, log: str) -> "ForkedProc":
        return ForkedProc(self, self._call({"op": "spawn", "argv": argv, "env": env, "log": log})["pid"])

    def wait(self, pid: int, timeout: float) -> int | None:
        return self._call({"op": "wait", "pid": pid, "timeout": timeout})["status"]


class ForkedProc:
    """The parts of subprocess.Popen the tests use, for a daemon forked by the zygote."""

    def __init__(self, zygote: ZygoteClient, pid: int):
        self.zygote, self.pid = zygote, pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.zygote.wait(self.pid, 0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self.returncode = self.zygote.wait(self.pid, timeout if timeout is not None else 3600)
            if self.returncode is None:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, sig)


def zygote() -> ZygoteClient:
    global _zygote
    if _zygote is None or _zygote.proc.poll() is not None:
        _zygote = ZygoteClient()
    return _zygote


if __name__ == "__main__":
    _serve(sys.argv[1])
