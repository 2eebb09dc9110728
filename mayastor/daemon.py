"""The ``mayastor`` node daemon.

Parses Mayastor's flags, probes the kernel (optionally loading modules) and refuses to run when a
required facility is missing, opens the state database (migrating it), reconciles the kernel with
it, then serves the v1 gRPC API until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import sys
import threading

from . import __version__
from .kernel import modules
from .netaddr import host_port

log = logging.getLogger("mayastor")

# SPDK-only flags of io-engine: accepted so existing manifests work, ignored with a warning.
SPDK_FLAGS_WITH_VALUE = (
    ("-l", "--log-components"),
    ("-m", "--reactor-mask"),
    ("-s", "--mem-size"),
    ("-r", "--rpc-address"),
    ("--huge-dir",),
    ("--env-context",),
    ("--reactor-freeze-timeout",),
    ("--bdev-pool-size",),
    ("--nvme-ctl-pool-size",),
    ("-L", "--log-trace-component"),
    ("-F", "--log-format"),
    ("-d", "--diagnose-stack"),
)
# the chart's optional switches and io-engine's hidden ones (no reactors, PCI or SPDK channels here)
SPDK_SWITCHES = (
    ("--reactor-freeze-detection",),
    ("-u", "--no-pci"),
    ("--skip-sig-handler",),
    ("--enable-io-all-thrd-nexus-channels",),
    ("--enable-channel-dbg",),
    ("--bs-cluster-unmap",),
)
# io-engine flags the chart passes whose feature the kernel target does not have: accepted, and
# the one log line says why nothing happens (nvmet has no command-retry-delay setting and no
# persist-through-power-loss; no event bus is fed yet).
NO_EFFECT_FLAGS = {
    "--tgt-crdt": "nvmet has no command retry delay setting",
    "--ptpl-dir": "nvmet keeps no reservations through power loss",
    "--events-url": "events are not published (no NATS client)",
}
NO_EFFECT_SWITCHES = {
    "--enable-snapshot-rebuild": "SnapshotRebuildRpc is not served (features.snapshotRebuild is false)"
}


def _dest(prefix: str, flags: tuple[str, ...]) -> str:
    return prefix + flags[-1].lstrip("-").replace("-", "_")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mayastor", description="kernel-native Mayastor io-engine")
    p.add_argument("-g", "--grpc-endpoint", default=None, help="gRPC endpoint ip[:port] (default [::]:10124)")
    p.add_argument("--grpc-ip", default=None, help="gRPC listen address")
    p.add_argument("--grpc-port", type=int, default=10124, help="gRPC listen port")
    p.add_argument("-N", "--node-name", default=None, help="node name (default: hostname)")
    p.add_argument("-R", "--registration-endpoint", default=None, help="control-plane registration endpoint")
    p.add_argument(
        "-T",
        "--tgt-ip",
        "--target-address",
        "--tgt-iface",
        dest="tgt_ip",
        default=None,
        help="IP address nvmet listens on",
    )
    p.add_argument("-y", "--config", default=None, help="config yaml")
    p.add_argument("-P", "--pool-config", "--ps", dest="pool_config", default=None, help="pool yaml")
    p.add_argument(
        "-p",
        "--persistent-store",
        dest="ps_endpoint",
        default=None,
        metavar="HOST[:PORT]",
        help="etcd endpoint for NexusInfo (the control plane's persistent store; port 2379 by default)",
    )
    p.add_argument("--ps-timeout", default="10s", help="persistent store operation timeout (1s..60s)")
    p.add_argument("--ps-retries", default="30", help="persistent store operation tries (0..255)")
    p.add_argument(
        "--enable-rdma",
        action="store_true",
        help="io-engine's RDMA transport: refused (nvmet-rdma listeners are not built yet)",
    )
    p.add_argument(
        "--enable-lvm",
        action="store_true",
        default=os.environ.get("ENABLE_LVM") == "true",
        help="serve LVM pools (pool type Lvm; also ENABLE_LVM=true), as io-engine's flag; needs lvm2",
    )
    p.add_argument(
        "--api-versions", default="v1", help="comma-separated API versions to register (v0, v1; v1 is served)"
    )
    p.add_argument("--state-db", default="/var/lib/mayastor/state.db", help="SQLite state file")
    p.add_argument(
        "--nexus-meta-dir",
        default=None,
        metavar="DIR",
        help="where nexuses keep their raid metadata (4 MiB per child; default: nexus-meta beside "
        "--state-db); it must outlive reboots like the state file",
    )
    p.add_argument(
        "--disk-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="a directory whose regular files may be pool disks or nexus children (repeatable; "
        "without it only block devices are accepted)",
    )
    p.add_argument(
        "--allow-formatted-disks",
        action="store_true",
        help="let pools be created on devices that hold a filesystem or partition table",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        help="serve Prometheus metrics on this port (/metrics), on the gRPC address; 0 = off",
    )
    p.add_argument("--load-modules", action="store_true", help="modprobe missing modules and mount configfs")
    p.add_argument("--probe-only", action="store_true", help="log the capability probe and exit")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--version", action="version", version=f"mayastor {__version__}")
    for flags in SPDK_FLAGS_WITH_VALUE:
        p.add_argument(*flags, dest=_dest("spdk_", flags), default=None, help=argparse.SUPPRESS)
    for flags in SPDK_SWITCHES:
        p.add_argument(
            *flags, dest=_dest("spdk_", flags), action="store_const", const="on", default=None, help=argparse.SUPPRESS
        )
    for flag in NO_EFFECT_FLAGS:
        p.add_argument(flag, dest=_dest("noeffect_", (flag,)), default=None, help=argparse.SUPPRESS)
    for flag in NO_EFFECT_SWITCHES:
        p.add_argument(
            flag,
            dest=_dest("noeffect_", (flag,)),
            action="store_const",
            const="on",
            default=None,
            help=argparse.SUPPRESS,
        )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for key, value in vars(args).items():
        if key.startswith("spdk_") and value is not None:
            log.warning("ignoring SPDK-only option %s=%s (no SPDK here)", key[5:], value)
    for flag, why in (NO_EFFECT_FLAGS | NO_EFFECT_SWITCHES).items():
        value = getattr(args, _dest("noeffect_", (flag,)))
        if value is not None:
            log.warning("option %s=%s has no effect here: %s", flag, value, why)
    import faulthandler

    faulthandler.register(signal.SIGUSR1, all_threads=True)  # kill -USR1: every thread's stack in the log
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
    from . import persistent_store, registration
    from .config import load_config, load_pools
    from .host_identity import host_identity
    from .paths import PathPolicy
    from .pool.backend import PoolArgs

    try:
        grpc_addr = grpc_address(args)
        tgt = target_address(args)
        node_name = args.node_name or os.environ.get("HOSTNAME") or "mayastor-node"
        cfg = load_config(args.config)
        pool_specs = load_pools(args.pool_config)
        paths = PathPolicy.of(args.disk_dir, args.allow_formatted_disks)
        versions = registration.api_versions(args.api_versions)
        ps = persistent_store.settings(args.ps_endpoint, args.ps_timeout, args.ps_retries)
        host_identity(node_name)  # HOSTNQN / MAYASTOR_NVMF_HOSTID, checked before anything runs
        if args.enable_rdma:
            rdma_refusal()
        if args.registration_endpoint:
            registration.agent_target(args.registration_endpoint)  # ValueError on garbage
    except ValueError as exc:  # ConfigError included
        log.error("%s", exc)
        return 2
    for section in cfg.ignored:
        log.warning("config %s: section %s is SPDK-specific and ignored", args.config, section)
    from . import instance_lock, sdnotify, validate
    from .errors import MayastorError
    from .grpc.server import build_server
    from .node import Node
    from .store import open_store

    try:
        validate.node_name(node_name)
    except MayastorError as exc:
        log.error("%s (set it with -N)", exc)
        return 2
    # Caught from here on: a SIGTERM during the reconcile or just after the port answers (a quick
    # client, systemd) must end in the orderly stop below, not in the default handler's death.
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        held = instance_lock.acquire(args.state_db, node_name)
    except instance_lock.AlreadyRunning as exc:
        log.error("%s", exc)
        return 3
    pstore: persistent_store.NoStore | persistent_store.PersistentStore = persistent_store.NoStore()
    if ps is not None:  # as io-engine: no gRPC, no registration until etcd answers
        etcd = persistent_store.PersistentStore(*ps)
        pstore = etcd
        sdnotify.notify(f"STATUS=waiting for etcd at {etcd.endpoint}")
        if not etcd.wait_until_reachable(stop):
            log.info("stopped while waiting for etcd")
            instance_lock.release(held)
            return 0
    store = open_store(args.state_db)
    meta_dir = args.nexus_meta_dir or os.path.join(os.path.dirname(os.path.abspath(args.state_db)), "nexus-meta")
    node = Node(node_name, store, tgt, cfg.nvmf_replica_port, cfg.nvmf_nexus_port, paths, pstore, meta_dir)
    node.pools.lvm_enabled = args.enable_lvm
    if args.enable_lvm and not node.pools.lvm_usable():
        log.warning("--enable-lvm: lvm2's tools are not installed; LVM pools are refused")
    reg = registration.register_request(
        node_name, registration.dialable_endpoint(grpc_addr, tgt), versions, lvm=node.pools.lvm_usable()
    )
    try:  # bound before the reconcile: a port someone else holds stops us before we touch the kernel
        server, port = build_server(node, grpc_addr, reg)
    except (OSError, RuntimeError) as exc:
        log.error("cannot serve gRPC on %s: %s (is another daemon running?)", grpc_addr, exc)
        return 3
    log.info("node %s, state %s, nvmf target %s:%d", node.name, args.state_db, tgt, cfg.nvmf_replica_port)
    sdnotify.notify("STATUS=reconciling with the kernel")
    node.reconcile()
    for spec in pool_specs:  # -P: create-or-import, like upstream's pool yaml at start
        try:
            node.create_pool(PoolArgs(spec.name, tuple(spec.disks)))
            log.info("pool %s from %s is up", spec.name, args.pool_config)
        except MayastorError as exc:
            if exc.code != "ALREADY_EXISTS":
                log.error("pool %s from %s: %s", spec.name, args.pool_config, exc)
    node.health.grpc_port = port  # a nexus verify asks peers on this port unless told otherwise
    server.start()
    node.start_watching()
    log.info("[V1] gRPC server configured at address %s", grpc_addr)
    from . import crashpoint

    crashpoint.arm()
    metrics = None
    if args.metrics_port:
        from .metrics import serve as serve_metrics

        host = grpc_addr.rsplit(":", 1)[0].strip("[]")
        metrics = serve_metrics(node, host, args.metrics_port)
        log.info("metrics on http://%s:%d/metrics", grpc_addr.rsplit(":", 1)[0], args.metrics_port)
    heartbeat = None
    if args.registration_endpoint:
        heartbeat = registration.Heartbeat(args.registration_endpoint, reg)
        heartbeat.start()
    watchdog = sdnotify.Watchdog(alive=node.healthy)
    watchdog.start()
    sdnotify.notify("READY=1", f"STATUS=serving gRPC on {grpc_addr}, node {node.name}")
    stop.wait()
    log.info("stopping")
    sdnotify.notify("STOPPING=1")
    if heartbeat is not None:
        heartbeat.stop()  # Deregister first: the agent marks the node Unknown, not Offline
    watchdog.stop()
    server.stop(grace=5).wait()
    if metrics is not None:
        metrics.shutdown()
    node.close()
    instance_lock.release(held)
    return 0


def rdma_refusal() -> None:
    """--enable-rdma: this daemon opens TCP listeners only. Say whether the kernel could do RDMA
    at all (nvmet-rdma), so the operator knows what is missing; either way a clear ValueError."""
    have = os.path.isdir("/sys/module/nvmet_rdma")
    raise ValueError(
        "--enable-rdma: "
        + (
            "the kernel has nvmet-rdma, but this daemon opens NVMe-oF TCP listeners only; drop the flag"
            if have
            else "the kernel has no nvmet-rdma module (modprobe nvmet-rdma), and this daemon "
            "opens NVMe-oF TCP listeners only; drop the flag"
        )
    )


def grpc_address(args) -> str:
    """-g ip[:port] (deprecated upstream, still used) or --grpc-ip/--grpc-port; default [::]:10124."""
    ip, port = args.grpc_ip or "::", args.grpc_port
    if args.grpc_endpoint:
        ep = args.grpc_endpoint
        if ep.startswith("["):
            host, _, rest = ep[1:].partition("]")
            ip, port = host, int(rest[1:]) if rest.startswith(":") else port
        elif ep.count(":") == 1:
            ip, p = ep.split(":")
            port = int(p)
        else:
            ip = ep
    ipaddress.ip_address(ip)  # ValueError on garbage
    if not 0 < port < 65536:
        raise ValueError(f"invalid gRPC port {port}")
    return host_port(ip, port)


def target_address(args) -> str:
    """Where nvmet listens: -T (an IP or an interface name), $MY_POD_IP, the gRPC IP when it is
    not a wildcard, else the first global IPv4 address of the host, else 127.0.0.1."""
    candidate = args.tgt_ip or os.environ.get("MY_POD_IP")
    if candidate:
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            addr = _interface_address(candidate)
            if addr is None:
                raise ValueError(f"-T {candidate}: not an IP address or an interface with one") from None
            return addr
    if args.grpc_ip and args.grpc_ip not in ("::", "0.0.0.0"):
        return args.grpc_ip
    return _interface_address(None) or "127.0.0.1"


def _interface_address(ifname: str | None) -> str | None:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        links = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        for a in ipr.get_addr(family=2):
            name = links.get(a["index"])
            if (ifname is None and a["scope"] == 0 and name != "lo") or name == ifname:
                return a.get_attr("IFA_ADDRESS")
    return None


if __name__ == "__main__":
    sys.exit(main())
