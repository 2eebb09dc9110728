"""The RegisterRequest io-engine sends (control-plane contract section 1), built without a daemon."""

import pytest

from mayastor.registration import agent_target, api_versions, dialable_endpoint, register_request


def test_every_field_as_io_engine_fills_it():
    req = register_request("node-1", "10.1.0.5:10124", [1], env={"NEXUS_NVMF_ANA_ENABLE": "1"})
    assert (req.id, req.grpc_endpoint, list(req.api_version)) == ("node-1", "10.1.0.5:10124", [1])
    assert req.hostnqn.value == "nqn.2019-05.io.openebs:node-name:node-1"
    assert req.HasField("features") and req.HasField("bugfixes") and req.HasField("version")
    assert req.features.asymmetricNamespaceAccess is True
    assert req.features.HasField("logicalVolumeManager") and not req.features.logicalVolumeManager
    assert req.bugfixes.nexusRebuildReplicaAncestry is True
    other = register_request("node-1", "10.1.0.5:10124", [1], env={"HOSTNQN": "nqn.2014-08.org.nvmexpress:uuid:x"})
    assert other.hostnqn.value == "nqn.2014-08.org.nvmexpress:uuid:x"
    assert other.features.asymmetricNamespaceAccess is False
    assert other.instance_uuid.value != req.instance_uuid.value  # a new one per start
    lvm = register_request("node-1", "10.1.0.5:10124", [1], env={}, lvm=True)  # --enable-lvm with lvm2 there
    assert lvm.features.logicalVolumeManager is True


@pytest.mark.parametrize("bound,ip,want", [
    ("[::]:10124", "10.1.0.5", "10.1.0.5:10124"), ("0.0.0.0:10124", "fd00::5", "[fd00::5]:10124"),
    ("10.2.0.1:999", "10.1.0.5", "10.2.0.1:999"), ("[fd00::7]:10124", "10.1.0.5", "[fd00::7]:10124"),
])
def test_never_a_wildcard_endpoint(bound, ip, want):
    assert dialable_endpoint(bound, ip) == want


def test_agent_endpoint_and_api_versions():
    assert agent_target("https://mayastor-agent-core:50051") == "mayastor-agent-core:50051"
    assert agent_target("http://[fd00::1]:50051") == "[fd00::1]:50051"
    assert agent_target("core") == "core:50051"
    with pytest.raises(ValueError):
        agent_target("https://core:50051/path")
    assert api_versions("v1") == [1] and api_versions("V0,V1") == [0, 1] and api_versions("v1,v0") == [1, 0]
    for bad in ("", "v2", "v1,,"):
        with pytest.raises(ValueError):
            api_versions(bad)
