"""nvmet through the configfs object model, checked with nvme-cli and the kernel's own errors."""

from __future__ import annotations

import json
import os
import uuid

import pytest

import configfs
from mayastor.kernel import nvme_fabrics as nf

from .util import new_nqn, pattern, read_direct, run, write_direct

ADDR = "127.0.0.1"


def export(root: configfs.Root, dev_path: str, port_id: int = 1, trsvcid: int = 4420,
           hosts: list[str] | None = None) -> tuple[configfs.Subsystem, configfs.Namespace, configfs.Port, str]:
    nqn = new_nqn("exp")
    subsys = root.subsystem(nqn, "create")
    if hosts:
        subsys.set_allowed_hosts(hosts)
    else:
        subsys.allow_any_host = True
    ns = subsys.namespace(1, "create")
    ns_uuid = str(uuid.uuid4())
    ns.set_device(dev_path, uuid=ns_uuid)
    ns.enable()
    port = root.port(port_id, "create")
    port.set_address(traddr=ADDR, trsvcid=trsvcid)
    port.add_subsystem(nqn)
    return subsys, ns, port, ns_uuid


def cli_host_args(ident: nf.HostIdentity) -> list[str]:
    return ["--hostnqn", ident.hostnqn, "--hostid", ident.hostid]


def test_loop_export_seen_by_nvme_cli(nvmet, make_loop, host_identity):
    backing = make_loop(64)
    subsys, _ns, _port, ns_uuid = export(nvmet, backing.path)

    disc = run("nvme", "discover", "-t", "tcp", "-a", ADDR, "-s", "4420", *cli_host_args(host_identity))
    assert subsys.nqn in disc.stdout

    run("nvme", "connect", "-t", "tcp", "-a", ADDR, "-s", "4420", "-n", subsys.nqn, *cli_host_args(host_identity))
    try:
        dev = nf.wait_for_namespace(ns_uuid)
        data = pattern(7, 8192)
        write_direct(dev.path, 1 << 20, data)
        # The write went through nvme-tcp and nvmet into the loop device.
        assert read_direct(backing.path, 1 << 20, len(data)) == data
    finally:
        run("nvme", "disconnect", "-n", subsys.nqn)
    assert nf.find_controllers(subsys.nqn) == []


def build_tree(root: configfs.Root, dev_a: str, dev_b: str) -> None:
    host_a = "nqn.2014-08.org.nvmexpress:uuid:" + str(uuid.uuid4())
    host_b = "nqn.2014-08.org.nvmexpress:uuid:" + str(uuid.uuid4())
    s1 = root.subsystem(new_nqn("tree1"), "create")
    s1.set_allowed_hosts([host_a, host_b])
    s1.serial = "abcdef0123456789"
    s1.model = "Mayastor NVMe controller"
    s1.cntlid_min, s1.cntlid_max = 100, 200
    for nsid, dev in ((1, dev_a), (3, dev_b)):
        ns = s1.namespace(nsid, "create")
        ns.set_device(dev, uuid=str(uuid.uuid4()), nguid=uuid.uuid4().hex)
        ns.ana_grpid = 2
        ns.enable()
    s2 = root.subsystem(new_nqn("tree2"), "create")
    s2.allow_any_host = True
    ns = s2.namespace(1, "create")
    ns.set_device(dev_b)  # left disabled on purpose
    port = root.port(7, "create")
    port.set_address(traddr=ADDR, trsvcid=4421)
    grp = port.ana_group(2, "create")
    grp.state = "non-optimized"
    ref = port.referral("peer", "create")
    ref.set_address(trtype="tcp", adrfam="ipv4", traddr="127.0.0.2", trsvcid="4420")
    ref.enabled = True
    port.add_subsystem(s1.nqn)
    port.add_subsystem(s2.nqn)
    other = root.port(8, "create")
    other.set_address(traddr=ADDR, trsvcid=8420)
    other.add_subsystem(s1.nqn)


def test_dump_teardown_restore_gives_same_tree(nvmet, make_loop, tmp_path):
    a, b = make_loop(16), make_loop(16)
    build_tree(nvmet, a.path, b.path)
    before = nvmet.dump()
    saved = tmp_path / "nvmet.json"
    nvmet.save(str(saved))

    nvmet.clear()
    assert nvmet.dump() == {"hosts": [], "ports": [], "subsystems": []}

    nvmet.load(str(saved))
    after = nvmet.dump()
    assert after == before, json.dumps({"before": before, "after": after}, indent=1)
    # the restored tree is live: port 7 listens and its ANA group kept its state
    assert nvmet.port(7, "lookup").ana_group(2, "lookup").state == "non-optimized"


def test_failed_restore_leaves_nothing(nvmet, make_loop):
    a = make_loop(16)
    nqn = new_nqn("rollback")
    config = {
        "hosts": [{"nqn": "nqn.2014-08.org.nvmexpress:uuid:" + str(uuid.uuid4())}],
        "ports": [{"portid": 3, "addr": {"trtype": "tcp", "adrfam": "ipv4", "traddr": ADDR, "trsvcid": "4420"},
                   "subsystems": [nqn]}],
        "subsystems": [{"nqn": nqn, "attr": {"allow_any_host": "1"}, "namespaces": [
            {"nsid": 1, "enable": 1, "device": {"path": a.path}},
            {"nsid": 2, "enable": 1, "device": {"path": "/dev/does-not-exist"}},
        ]}],
    }
    with pytest.raises(configfs.CFSNotFoundError) as err:
        nvmet.restore(config)
    assert err.value.errno == 2
    assert nvmet.dump() == {"hosts": [], "ports": [], "subsystems": []}


def test_allowed_hosts_refuse_other_hostnqn(nvmet, make_loop):
    allowed = nf.HostIdentity.generate()
    stranger = nf.HostIdentity.generate()
    subsys, _ns, _port, ns_uuid = export(nvmet, make_loop(16).path, hosts=[allowed.hostnqn])
    assert subsys.allowed_hosts == [allowed.hostnqn]
    assert not subsys.allow_any_host

    refused = run("nvme", "connect", "-t", "tcp", "-a", ADDR, "-s", "4420", "-n", subsys.nqn,
                  *cli_host_args(stranger), check=False)
    assert refused.returncode != 0
    assert nf.find_controllers(subsys.nqn) == []

    # Our own connect reports the kernel's reason for the refusal.
    with pytest.raises(nf.FabricsError) as err:
        nf.connect(nf.ConnectOptions(nqn=subsys.nqn, traddr=ADDR, hostnqn=stranger.hostnqn, hostid=stranger.hostid))
    assert "not allowed" in err.value.reason

    ok = nf.connect(nf.ConnectOptions(nqn=subsys.nqn, traddr=ADDR, hostnqn=allowed.hostnqn, hostid=allowed.hostid))
    try:
        assert nf.wait_for_namespace(ns_uuid).nsid == 1
    finally:
        nf.disconnect(ok)


def test_port_attribute_on_enabled_port_is_eacces(nvmet, make_loop):
    _s, _ns, port, _u = export(nvmet, make_loop(16).path)
    with pytest.raises(configfs.CFSPermissionError) as err:
        port.traddr = "127.0.0.9"
    assert err.value.errno == 13
    assert "Disable port" in err.value.reason
    assert port.traddr == ADDR


def test_device_path_on_enabled_namespace_is_ebusy(nvmet, make_loop):
    a, b = make_loop(16), make_loop(16)
    _s, ns, _p, _u = export(nvmet, a.path)
    with pytest.raises(configfs.CFSBusyError) as err:
        ns.device_path = b.path
    assert err.value.errno == 16
    assert ns.device_path == a.path
    ns.disable()
    ns.device_path = b.path  # allowed once disabled
    assert ns.device_path == b.path


def test_kernel_einval_cases_are_typed(nvmet, make_loop):
    subsys = nvmet.subsystem(new_nqn("einval"), "create")
    ns = subsys.namespace(1, "create")
    port = nvmet.port(5, "create")
    for node, attr, value in ((port, "addr_trtype", "carrier-pigeon"), (ns, "ana_grpid", "0"),
                              (ns, "enable", "maybe"), (subsys, "attr_cntlid_min", "0")):
        with pytest.raises(configfs.CFSInvalidError) as err:
            node.write_attr(attr, value)
        assert err.value.errno == 22, (attr, value)
    # ANA group ids outside 1..128 are refused by the kernel too (bypassing our validation)
    with pytest.raises(configfs.CFSInvalidError):
        configfs.node.kernel_op("mkdir", port.path, lambda: os.mkdir(os.path.join(port.path, "ana_groups", "129")))
    # enabling a namespace without a device fails with the open errno
    with pytest.raises(configfs.CFSError):
        ns.enable()


def test_duplicate_link_is_eexist(nvmet, make_loop):
    subsys, _ns, port, _u = export(nvmet, make_loop(16).path)
    with pytest.raises(configfs.CFSExistsError):
        port.add_subsystem(subsys.nqn)
    with pytest.raises(configfs.CFSExistsError):
        nvmet.subsystem(subsys.nqn, "create")
    with pytest.raises(configfs.CFSNotFoundError):
        nvmet.subsystem(new_nqn("absent"), "lookup")


def test_bad_names_never_reach_configfs(nvmet):
    before = nvmet.dump()
    top = sorted(os.listdir("/sys/kernel/config/nvmet"))  # 7.3 adds discovery_nqn beside 6.1's three
    for bad in ("nqn.2019-05.io.openebs:../../x", "../etc", "nqn.2019-05.io.openebs:a/b", "",
                "nqn.2014-08.org.nvmexpress.discovery", "x" * 300):
        with pytest.raises(ValueError):
            nvmet.subsystem(bad, "any")
    for bad in (-1, 65535, "1/..", True):
        with pytest.raises(ValueError):
            nvmet.port(bad, "any")
    assert nvmet.dump() == before
    assert sorted(os.listdir("/sys/kernel/config/nvmet")) == top
    assert {"hosts", "ports", "subsystems"} <= set(top)
