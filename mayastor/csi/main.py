"""`mayastor-csi`: serve the CSI Identity and Node services on a unix socket (as kubelet expects)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import stat
import sys
import threading
from concurrent import futures

import grpc

from .. import sdnotify
from ..errors import InvalidArgument
from ..validate import node_name
from .device import Tuning
from .identity import Identity
from .node import Node
from .protos import csi_grpc

log = logging.getLogger("mayastor.csi")
DEFAULT_SOCKET = "/var/tmp/csi.sock"
NVME_CORE_IO_TIMEOUT = "/sys/module/nvme_core/parameters/io_timeout"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="mayastor-csi", description="CSI node plugin for mayastor volumes")
    ap.add_argument("--csi-socket", default=DEFAULT_SOCKET, help="unix socket kubelet talks to")
    ap.add_argument(
        "--node-name",
        default=os.environ.get("MY_NODE_NAME") or socket.gethostname(),
        help="this node's id in NodeGetInfo (default: $MY_NODE_NAME or the host name)",
    )
    ap.add_argument(
        "--nvme-core-io-timeout",
        type=int,
        metavar="SECONDS",
        help="set nvme_core's io_timeout module parameter at start",
    )
    ap.add_argument("--nvme-io-timeout", type=int, metavar="MS", help="io_timeout of each attached volume")
    ap.add_argument("--nvme-nr-io-queues", type=int, help="I/O queues per NVMe-oF connection")
    ap.add_argument("--nvme-ctrl-loss-tmo", type=int, metavar="SECONDS", help="ctrl_loss_tmo of connections")
    ap.add_argument("--nvme-keep-alive-tmo", type=int, metavar="SECONDS", help="keep_alive_tmo of connections")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    for key in (
        "nvme_core_io_timeout",
        "nvme_io_timeout",
        "nvme_nr_io_queues",
        "nvme_ctrl_loss_tmo",
        "nvme_keep_alive_tmo",
    ):
        value = getattr(args, key)
        if value is not None and not 0 <= value <= 1 << 20:
            ap.error(f"--{key.replace('_', '-')} must be between 0 and {1 << 20}")
    if not args.csi_socket.startswith("/") or "\0" in args.csi_socket:
        ap.error("--csi-socket must be an absolute path")
    try:
        node_name(args.node_name)
    except InvalidArgument as exc:
        ap.error(str(exc))
    return args


def _prepare_socket(path: str) -> None:
    """Remove a stale socket left by a previous run; refuse to remove anything else."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise SystemExit(f"mayastor-csi: {path} exists and is not a socket")
    os.unlink(path)


def build_server(args: argparse.Namespace) -> grpc.Server:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="csi"))
    tuning = Tuning(args.nvme_nr_io_queues, args.nvme_ctrl_loss_tmo, args.nvme_keep_alive_tmo, args.nvme_io_timeout)
    csi_grpc.add_IdentityServicer_to_server(Identity(), server)
    csi_grpc.add_NodeServicer_to_server(Node(args.node_name, tuning), server)
    _prepare_socket(args.csi_socket)
    if server.add_insecure_port(f"unix://{args.csi_socket}") == 0:
        raise SystemExit(f"mayastor-csi: cannot listen on {args.csi_socket}")
    return server


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.nvme_core_io_timeout is not None:
        with open(NVME_CORE_IO_TIMEOUT, "w") as f:
            f.write(str(args.nvme_core_io_timeout))
    server = build_server(args)
    server.start()
    sdnotify.notify("READY=1", f"STATUS=serving {args.csi_socket}")
    log.info("mayastor-csi serving %s on %s as node %s", "io.openebs.csi-mayastor", args.csi_socket, args.node_name)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    sdnotify.notify("STOPPING=1")
    server.stop(grace=10).wait()
    try:
        os.unlink(args.csi_socket)
    except FileNotFoundError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
