"""NVMe reservation commands as the passthrough ioctl carries them (NVMe base spec 2.0, 7.2-7.5)
and the extended Reservation Status data structure; the commands themselves run in the VM
(tests/kernel/test_fencing.py)."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from mayastor.kernel import nvme_pr
from mayastor.nexus import fence
from mayastor.nexus.reservation import Reservation

U64 = st.integers(0, (1 << 64) - 1)


def test_passthru_layout_matches_linux_uapi():
    assert nvme_pr._PASSTHRU.size == 72  # struct nvme_passthru_cmd
    # _IOWR('N', 0x43, 72): direction 3, size 72, type 'N', number 0x43
    assert nvme_pr.NVME_IOCTL_IO_CMD == (3 << 30) | (72 << 16) | (ord("N") << 8) | 0x43
    assert nvme_pr.NVME_IOCTL_ID == (ord("N") << 8) | 0x40
    cmd = nvme_pr.encode_command(nvme_pr.OP_ACQUIRE, 1, 0x1000, 16, 0x201)
    opcode, _, _, nsid = struct.unpack_from("<BBHI", cmd, 0)
    # opcode, flags, rsvd1, nsid, cdw2, cdw3, metadata, addr @24, metadata_len, data_len @36, cdw10 @40
    addr, = struct.unpack_from("<Q", cmd, 24)
    data_len, cdw10 = struct.unpack_from("<II", cmd, 36)
    assert (opcode, nsid, addr, data_len, cdw10) == (0x11, 1, 0x1000, 16, 0x201)


def test_command_dwords():
    # register: RREGA bits 2:0, IEKEY bit 3, CPTPL bits 31:30
    assert nvme_pr.register_cdw10(nvme_pr.REPLACE, True, nvme_pr.CPTPL_CLEAR) == 2 | 8 | (2 << 30)
    assert nvme_pr.register_cdw10(nvme_pr.REGISTER, False) == 0
    # acquire/release: action bits 2:0, RTYPE bits 15:8
    assert nvme_pr.acquire_cdw10(nvme_pr.PREEMPT, 2) == 1 | (2 << 8)
    assert nvme_pr.acquire_cdw10(nvme_pr.ACQUIRE, 6) == 6 << 8


@given(st.lists(st.tuples(st.integers(0, 0xFFFF), st.booleans(), st.binary(min_size=16, max_size=16), U64),
                max_size=60), st.integers(0, (1 << 32) - 1), st.integers(0, 6))
def test_report_parsing_over_every_key_and_host_id(regs, gen, rtype):
    data = bytearray(nvme_pr.REPORT_BYTES)
    struct.pack_into("<IBH", data, 0, gen, rtype, len(regs))
    for i, (cntlid, holder, hostid, key) in enumerate(regs):
        off = 64 + 64 * i
        struct.pack_into("<HB", data, off, cntlid, int(holder))
        struct.pack_into("<Q", data, off + 8, key)
        data[off + 16:off + 32] = hostid
    got = nvme_pr.parse_report(bytes(data))
    assert (got.generation, got.rtype) == (gen, rtype)
    assert [(r.cntlid, r.holder, r.hostid, r.key) for r in got.registrants] == regs
    for _, _, hostid, key in regs:
        assert got.registered(hostid, key)


def test_report_with_more_registrants_than_fit_is_cut_at_the_buffer():
    data = bytearray(nvme_pr.REPORT_BYTES)
    struct.pack_into("<IBH", data, 0, 1, 2, 0xFFFF)
    assert len(nvme_pr.parse_report(bytes(data)).registrants) == (nvme_pr.REPORT_BYTES - 64) // 64


def test_status_errors_say_what_happened():
    e = nvme_pr.NvmeStatusError(0x83, "NVMe reservation acquire", "/dev/nvme0n1")
    assert e.conflict and not e.unsupported and "reservation conflict" in str(e.reason)
    assert nvme_pr.NvmeStatusError(0x4002, "x", "d").unsupported  # DNR + invalid field (no resv_enable)
    assert nvme_pr.NvmeStatusError(0x1, "x", "d").unsupported


def test_fencing_needs_the_switch_and_a_reservation():
    asked = Reservation(key=5)
    assert fence.enabled(asked, {"NEXUS_NVMF_RESV_ENABLE": "1"})
    assert not fence.enabled(asked, {})
    assert not fence.enabled(Reservation(), {"NEXUS_NVMF_RESV_ENABLE": "1"})
    assert fence.hostid_bytes("11111111-1111-1111-1111-111111111111") == b"\x11" * 16
