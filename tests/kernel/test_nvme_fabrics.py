"""The project's own NVMe-oF host (no nvme-cli): connect, find by uuid, I/O, disconnect."""

from __future__ import annotations

import time

import pytest

import configfs
from mayastor.kernel import block, loop
from mayastor.kernel import nvme_fabrics as nf

from .test_configfs import ADDR, export
from .util import pattern, read_direct, write_direct


def test_connect_find_io_disconnect(nvmet, make_loop, host_identity):
    backing = make_loop(32)
    subsys, _ns, _port, ns_uuid = export(nvmet, backing.path)
    ctrl = nf.connect(nf.ConnectOptions(nqn=subsys.nqn, traddr=ADDR, trsvcid=4420,
                                        hostnqn=host_identity.hostnqn, hostid=host_identity.hostid,
                                        ctrl_loss_tmo=5, reconnect_delay=1))
    try:
        assert ctrl.state == "live"
        assert ctrl.subsysnqn == subsys.nqn
        assert ctrl.address["traddr"] == ADDR and ctrl.address["trsvcid"] == "4420"
        assert ctrl.attr("hostnqn") == host_identity.hostnqn
        assert nf.find_controllers(subsys.nqn, ADDR, "4420", host_identity.hostnqn) == [ctrl]

        dev = nf.wait_for_namespace(ns_uuid)
        assert nf.parse_wwid(dev.wwid) == ("uuid", ns_uuid)
        assert block.size_bytes(dev.path) == 32 << 20
        data = pattern(42, 16384)
        write_direct(dev.path, 4096, data)
        assert read_direct(dev.path, 4096, len(data)) == data
        assert read_direct(backing.path, 4096, len(data)) == data
    finally:
        nf.disconnect(ctrl)
    nf.disconnect(ctrl)  # idempotent
    assert nf.find_namespace(ns_uuid) is None or not ctrl.exists


def test_duplicate_connect_is_a_clear_error(nvmet, make_loop, host_identity):
    subsys, _ns, _port, _u = export(nvmet, make_loop(16).path)
    opts = nf.ConnectOptions(nqn=subsys.nqn, traddr=ADDR, hostnqn=host_identity.hostnqn, hostid=host_identity.hostid)
    first = nf.connect(opts)
    try:
        with pytest.raises(nf.AlreadyConnectedError) as err:
            nf.connect(opts)
        assert err.value.errno == 114  # EALREADY
        assert first.name in str(err.value)
        assert len(nf.find_controllers(subsys.nqn)) == 1
    finally:
        nf.disconnect(first)


def test_connect_to_missing_subsystem_reports_kernel_reason(nvmet, make_loop, host_identity):
    subsys, _ns, _port, _u = export(nvmet, make_loop(16).path)
    missing = subsys.nqn + "-nope"
    with pytest.raises(nf.FabricsError) as err:
        nf.connect(nf.ConnectOptions(nqn=missing, traddr=ADDR, hostnqn=host_identity.hostnqn,
                                     hostid=host_identity.hostid))
    assert err.value.reason, "expected the kernel's log line in the error"
    assert nf.find_controllers(missing) == []


def test_namespace_revalidate_size_after_growth(nvmet, make_loop, host_identity):
    backing = make_loop(16)
    subsys, ns, _port, ns_uuid = export(nvmet, backing.path)
    ctrl = nf.connect(nf.ConnectOptions(nqn=subsys.nqn, traddr=ADDR, hostnqn=host_identity.hostnqn,
                                        hostid=host_identity.hostid))
    try:
        dev = nf.wait_for_namespace(ns_uuid)
        assert block.size_bytes(dev.path) == 16 << 20
        with open(backing.backing_file, "r+b") as f:
            f.truncate(48 << 20)
        loop.set_capacity(backing)
        assert block.size_bytes(backing.path) == 48 << 20
        ns.revalidate_size()  # nvmet re-reads the size and sends a namespace-changed AEN
        deadline = time.monotonic() + 10
        while block.size_bytes(dev.path) != 48 << 20 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert block.size_bytes(dev.path) == 48 << 20
    finally:
        nf.disconnect(ctrl)
    ns.disable()
    with pytest.raises(configfs.CFSInvalidError) as err:  # EINVAL on a disabled namespace
        ns.revalidate_size()
    assert err.value.errno == 22
