"""A real etcd (Debian's etcd-server) for tests: its own data dir and ports, stopped afterwards.
Values are read back through etcd3gw, the client the daemon uses, so a test sees what the control
plane would read."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
SLOWDOWN = float(os.environ.get("MAYASTOR_TEST_SLOWDOWN", "4"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EtcdServer:
    def __init__(self, data_dir: str, log_path: str, port: int | None = None):
        self.data_dir, self.log_path = data_dir, log_path
        self.port = port or free_port()
        self.peer_port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 120) -> "EtcdServer":
        url = f"http://127.0.0.1:{self.port}"
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [ETCD, "--name", "test", "--data-dir", self.data_dir, "--listen-client-urls", url,
             "--advertise-client-urls", url, "--listen-peer-urls", f"http://127.0.0.1:{self.peer_port}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer_port}",
             "--initial-cluster", f"test=http://127.0.0.1:{self.peer_port}", "--unsafe-no-fsync"],
            stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout * SLOWDOWN
        while not self.answers():
            if self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited {self.proc.returncode}: {open(self.log_path).read()[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError("etcd did not answer")
            time.sleep(0.2)
        return self

    def client(self, timeout: float = 10):
        import etcd3gw
        return etcd3gw.client(host="127.0.0.1", port=self.port, timeout=timeout * SLOWDOWN)

    def answers(self) -> bool:
        try:
            self.client(timeout=2).status()
            return True
        except Exception:  # noqa: BLE001 - not up yet
            return False

    def get_json(self, key: str):
        values = self.client().get(key)
        return json.loads(values[0]) if values else None

    def pause(self) -> None:
        """SIGSTOP: connections hang (a put times out) rather than being refused."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
