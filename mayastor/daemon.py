"""The ``mayastor`` node daemon.

At this stage it parses Mayastor's flags, probes the kernel (optionally loading modules), logs what
it found, refuses to run when a required facility is missing, and then idles until SIGTERM/SIGINT.
The gRPC services arrive with the node-daemon issue.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from . import __version__
from .kernel import modules

log = logging.getLogger("mayastor")

# SPDK-only flags of io-engine: accepted so existing manifests work, ignored with a warning.
SPDK_FLAGS_WITH_VALUE = (("-l", "--log-components"), ("-m", "--reactor-mask"), ("-s", "--mem-size"),
                         ("-r", "--rpc-address"), ("--huge-dir",), ("--env-context",))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mayastor", description="kernel-native Mayastor io-engine")
    p.add_argument("-g", "--grpc-endpoint", default=None, help="gRPC endpoint ip[:port] (default [::]:10124)")
    p.add_argument("--grpc-ip", default=None, help="gRPC listen address")
    p.add_argument("--grpc-port", type=int, default=10124, help="gRPC listen port")
    p.add_argument("-N", "--node-name", default=None, help="node name (default: hostname)")
    p.add_argument("-R", "--registration-endpoint", default=None, help="control-plane registration endpoint")
    p.add_argument("-T", "--tgt-ip", "--target-address", dest="tgt_ip", default=None,
                   help="IP address nvmet listens on")
    p.add_argument("-y", "--config", default=None, help="config yaml")
    p.add_argument("-P", "--pool-config", "--ps", dest="pool_config", default=None, help="pool yaml")
    p.add_argument("--api-versions", default="V0,V1", help="comma-separated API versions to serve")
    p.add_argument("--state-db", default="/var/lib/mayastor/state.db", help="SQLite state file")
    p.add_argument("--load-modules", action="store_true", help="modprobe missing modules and mount configfs")
    p.add_argument("--probe-only", action="store_true", help="log the capability probe and exit")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--version", action="version", version=f"mayastor {__version__}")
    for flags in SPDK_FLAGS_WITH_VALUE:
        p.add_argument(*flags, dest=f"spdk_{flags[-1].lstrip('-').replace('-', '_')}", default=None,
                       help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for key, value in vars(args).items():
        if key.startswith("spdk_") and value is not None:
            log.warning("ignoring SPDK-only option %s=%s (no SPDK here)", key[5:], value)
    log.info("mayastor %s starting", __version__)
    if args.load_modules:
        for problem in modules.ensure():
            log.warning("%s", problem)
    caps = modules.probe()
    for line in modules.report(caps):
        log.info("kernel: %s", line)
    missing = [c for c in caps if c.required and not c.present]
    if missing:
        for c in missing:
            log.error("required kernel facility %s is missing; fix: %s", c.name, c.fix or "(see docs)")
        return 2
    if args.probe_only:
        return 0
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("ready (no gRPC services yet); waiting for SIGTERM")
    stop.wait()
    log.info("stopping")
    return 0


if __name__ == "__main__":
    sys.exit(main())
