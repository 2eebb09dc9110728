"""Registration with Mayastor's control plane: the heartbeat io-engine sends to the core agent.

The engine is a *client* of ``mayastor.v1.Registration`` served by the agent (``-R``, e.g.
``https://core:50051``; the scheme is nominal: dialled in plaintext). Every
``MAYASTOR_HB_INTERVAL_SEC`` (5 s) it sends one RegisterRequest, built once per process start (a
new ``instance_uuid`` each start), with a ``MAYASTOR_HB_TIMEOUT_SEC`` (5 s) deadline; on a clean
stop one Deregister. ``GetMayastorInfo`` answers the very same message as ``registration_info``:
the agent compares the two field by field and reloads the node on any difference.

The heartbeat runs in a thread of its own with its own channel: an agent that is down or slow never
holds up gRPC serving or the data path, and is logged once when it goes away and once when it is
back, not at every beat.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
import uuid as _uuid
from urllib.parse import urlsplit

import grpc

from . import __version__
from .grpc import protos as P
from .host_identity import host_identity
from .netaddr import host_port

log = logging.getLogger(__name__)

API_VERSIONS = {"v0": 0, "v1": 1}


def api_versions(flag: str) -> list[int]:
    """``--api-versions v0,v1`` -> [0, 1], in the order given (the agent compares the list as is)."""
    out = []
    for word in (w.strip().lower() for w in flag.split(",")):
        if word not in API_VERSIONS:
            raise ValueError(f"--api-versions: unknown version {word!r} (v0, v1)")
        if API_VERSIONS[word] not in out:
            out.append(API_VERSIONS[word])
    if not out:
        raise ValueError("--api-versions: no version given")
    return out


def dialable_endpoint(grpc_address: str, node_ip: str) -> str:
    """The endpoint the agent can dial: the bound address, or ``node_ip`` in place of a wildcard
    (``[::]`` / ``0.0.0.0`` are never registered)."""
    host, _, port = grpc_address.rpartition(":")
    ip = ipaddress.ip_address(host.strip("[]"))
    if ip.is_unspecified:
        ip = ipaddress.ip_address(node_ip)
    return host_port(str(ip), port)


def agent_target(endpoint: str) -> str:
    """``https://core:50051`` / ``http://[fd00::1]:50051`` / ``core:50051`` -> host:port to dial."""
    parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    if not parts.hostname or parts.path not in ("", "/"):
        raise ValueError(f"-R {endpoint}: expected [http[s]://]host:port")
    return host_port(parts.hostname, parts.port or 50051)


def register_request(
    node: str, endpoint: str, versions: list[int], env=os.environ, lvm: bool = False
) -> P.registration.RegisterRequest:
    req = P.registration.RegisterRequest(id=node, grpc_endpoint=endpoint, api_version=versions, version=__version__)
    req.instance_uuid.value = str(_uuid.uuid4())
    req.hostnqn.value = host_identity(node, env).hostnqn  # the NQN our nexuses connect with
    f = req.features
    f.asymmetricNamespaceAccess = env.get("NEXUS_NVMF_ANA_ENABLE") == "1"
    f.logicalVolumeManager = lvm  # --enable-lvm and lvm2's tools installed
    f.snapshotRebuild = False  # SnapshotRebuildRpc is not served
    f.rdmaCapableIoEngine = False
    req.bugfixes.nexusRebuildReplicaAncestry = True  # rebuilds keep replica ancestry (snapshots)
    return req


def _seconds(env, name: str, default: float) -> float:
    try:
        value = float(env.get(name, default))
    except ValueError:
        raise ValueError(f"{name}={env.get(name)!r}: expected seconds") from None
    if value <= 0:
        raise ValueError(f"{name} must be positive")
    return value


class Heartbeat:
    def __init__(self, agent: str, request, env=os.environ):
        self.target = agent_target(agent)
        self.request = request
        self.interval = _seconds(env, "MAYASTOR_HB_INTERVAL_SEC", 5)
        self.timeout = _seconds(env, "MAYASTOR_HB_TIMEOUT_SEC", 5)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="registration", daemon=True)
        # reconnect at least as often as we beat: gRPC's default backoff grows to 120 s, so after
        # a long outage the node would re-register minutes after the agent is back
        beat_ms = max(100, int(self.interval * 1000))
        self._channel = grpc.insecure_channel(
            self.target,
            options=[
                ("grpc.initial_reconnect_backoff_ms", min(1000, beat_ms)),
                ("grpc.min_reconnect_backoff_ms", min(1000, beat_ms)),
                ("grpc.max_reconnect_backoff_ms", beat_ms),
            ],
        )
        self._stub = P.registration_grpc.RegistrationStub(self._channel)
        self.registered = False
        self._warned = False

    def start(self) -> None:
        log.info(
            "registering node %s (%s) with the control plane at %s every %gs",
            self.request.id,
            self.request.grpc_endpoint,
            self.target,
            self.interval,
        )
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._stub.Register(self.request, timeout=self.timeout)
                if not self.registered:
                    log.info("registered with the control plane at %s", self.target)
                self.registered = True
            except grpc.RpcError as exc:
                if self.registered or not self._warned:  # once per outage, not at every beat
                    log.warning(
                        "the control plane at %s does not answer (%s); retrying every %gs",
                        self.target,
                        exc.code().name,
                        self.interval,
                    )
                    self._warned = True
                self.registered = False
            self._stop.wait(self.interval)

    def stop(self) -> None:
        """Stop beating and deregister once (best effort: the agent may be gone already)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.timeout + 5)
        try:
            self._stub.Deregister(P.registration.DeregisterRequest(id=self.request.id), timeout=self.timeout)
            log.info("deregistered from the control plane at %s", self.target)
        except grpc.RpcError as exc:
            log.warning("deregister at %s failed: %s", self.target, exc.code().name)
        self._channel.close()
