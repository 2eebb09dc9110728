"""Registration with the control plane, against a stand-in of the core agent's Registration
service (control-plane contract section 1): heartbeats, GetMayastorInfo equal to what was
registered, a new instance uuid per start, Deregister on SIGTERM, an agent that goes away."""

from __future__ import annotations

import os
import threading
import time
from concurrent import futures

import grpc
from google.protobuf import empty_pb2

from mayastor.grpc import protos as P

from .daemon import Daemon, RESULTS
from .util import wait_for

NODE = "regnode"
GRPC_PORT, AGENT_PORT = 10141, 10151


class Agent(P.registration_grpc.RegistrationServicer):
    """Records every Register and Deregister with the time it came."""

    def __init__(self):
        self.lock = threading.Lock()
        self.registers: list[tuple[float, object]] = []
        self.deregisters: list[str] = []

    def Register(self, request, context):
        with self.lock:
            self.registers.append((time.monotonic(), request))
        return empty_pb2.Empty()

    def Deregister(self, request, context):
        with self.lock:
            self.deregisters.append(request.id)
        return empty_pb2.Empty()

    def serve(self) -> grpc.Server:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=[("grpc.so_reuseport", 0)])
        P.registration_grpc.add_RegistrationServicer_to_server(self, server)
        assert server.add_insecure_port(f"127.0.0.1:{AGENT_PORT}") == AGENT_PORT
        server.start()
        return server

    def count(self) -> int:
        with self.lock:
            return len(self.registers)


def _info(client):
    return client.host.GetMayastorInfo(empty_pb2.Empty(), timeout=30).registration_info


def test_heartbeats_info_restart_deregister_and_an_agent_away(tmp_path):
    agent = Agent()
    server = agent.serve()
    log = f"{RESULTS}/daemon-test_registration.log"
    if os.path.exists(log):
        os.unlink(log)
    d = Daemon(str(tmp_path / "state.db"), log, node=NODE, port=GRPC_PORT,
               extra_args=(f"-Rhttps://127.0.0.1:{AGENT_PORT}", "--api-versions=v1"))
    try:
        c = d.start(env={"NEXUS_NVMF_ANA_ENABLE": "1", "HOSTNQN": "nqn.2014-08.org.nvmexpress:uuid:reg-test"})
        wait_for(lambda: agent.count() >= 1, 60, "a first Register")
        first = agent.count()
        t0 = time.monotonic()
        time.sleep(22)  # heartbeats over more than 20 s
        with agent.lock:
            beats = [r for t, r in agent.registers if t >= t0]
            times = [t for t, _ in agent.registers]
        assert len(beats) >= 3, f"{len(beats)} heartbeats in 22 s"
        gaps = [b - a for a, b in zip(times, times[1:])]
        print(f"heartbeat gaps: {[round(g, 2) for g in gaps]}")
        req = beats[-1]
        assert all(r == req for r in beats) and agent.registers[0][1] == req  # one message per process
        assert req.id == NODE and req.grpc_endpoint == f"127.0.0.1:{GRPC_PORT}"
        assert list(req.api_version) == [1] and req.hostnqn.value == "nqn.2014-08.org.nvmexpress:uuid:reg-test"
        assert req.features.asymmetricNamespaceAccess and req.bugfixes.nexusRebuildReplicaAncestry
        assert req.instance_uuid.value
        # GetMayastorInfo equals the registration exactly, on a fresh channel
        with grpc.insecure_channel(f"127.0.0.1:{GRPC_PORT}") as fresh:
            info = P.host_grpc.HostRpcStub(fresh).GetMayastorInfo(empty_pb2.Empty(), timeout=30)
        assert info.registration_info == req

        # the agent goes away for 30 s: gRPC keeps answering, the outage is logged once, and the
        # node registers again when it is back
        server.stop(grace=0).wait()
        time.sleep(30)
        assert c.pool.ListPools(P.pool.ListPoolOptions(), timeout=30).pools == []
        assert _info(c) == req
        assert open(log).read().count("does not answer") == 1, d.log()
        down = agent.count()
        server = agent.serve()
        wait_for(lambda: agent.count() > down, 60, "a Register after the agent came back")
        assert agent.registers[-1][1] == req and first >= 1

        # restart: a new instance uuid, and SIGTERM deregisters
        assert d.stop() == 0
        with agent.lock:
            assert agent.deregisters == [NODE]
        c = d.start(env={"NEXUS_NVMF_ANA_ENABLE": "1"})
        wait_for(lambda: agent.registers[-1][1].instance_uuid != req.instance_uuid, 60, "a Register of the new process")
        again = agent.registers[-1][1]
        assert again.id == NODE and again.instance_uuid.value != req.instance_uuid.value
        assert _info(c) == again
        assert again.hostnqn.value == f"nqn.2019-05.io.openebs:node-name:{NODE}"  # no HOSTNQN this time
        assert d.stop() == 0
        with agent.lock:
            assert agent.deregisters == [NODE, NODE]
    finally:
        d.kill9()
        server.stop(grace=0)
