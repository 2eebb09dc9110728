"""Parsers of kernel text: kmsg records, nvme-fabrics replies and sysfs strings, block stats."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mayastor.kernel import block, loop
from mayastor.kernel import nvme_fabrics as nf
from mayastor.kernel.kmsg import parse_record, pick_reason

# raw records read from /dev/kmsg in the VM
KMSG_INFO = "6,523,23491408,-;device-mapper: raid: Device 1 specified for rebuild; clearing superblock\n"
KMSG_WARN = "4,526,23879606,-;mdX: bitmap file is out of date, doing full recovery\n"
KMSG_ERR = ("3,601,30112233,-;device-mapper: table: 254:5: raid: Insufficient redundancy to activate array\n"
            " SUBSYSTEM=block\n DEVICE=b254:5\n")


def test_kmsg_record():
    r = parse_record(KMSG_INFO)
    assert (r.priority, r.facility, r.sequence, r.timestamp_us) == (6, 0, 523, 23491408)
    assert r.message == "device-mapper: raid: Device 1 specified for rebuild; clearing superblock"
    r = parse_record(KMSG_ERR)
    assert r.priority == 3 and r.message.endswith("Insufficient redundancy to activate array")
    assert parse_record("garbage") is None


def test_kmsg_reason_prefers_keywords_then_severity():
    recs = [parse_record(x) for x in (KMSG_INFO, KMSG_WARN, KMSG_ERR)]
    assert "Insufficient redundancy" in pick_reason(recs, ("table:",))
    assert pick_reason(recs[:1]) == ""  # info only: nothing that explains a failure
    assert "bitmap file" in pick_reason(recs[:2])


def test_connect_reply():
    # nvmf_dev_show prints "instance=%d,cntlid=%d\n"
    assert nf.parse_connect_reply("instance=0,cntlid=1\n") == {"instance": 0, "cntlid": 1}
    assert nf.parse_connect_reply("instance=12,cntlid=65519") == {"instance": 12, "cntlid": 65519}
    with pytest.raises(ValueError):
        nf.parse_connect_reply("cntlid=1")


def test_sysfs_address_and_wwid():
    assert nf.parse_address("traddr=127.0.0.1,trsvcid=4420,src_addr=127.0.0.1\n") == {
        "traddr": "127.0.0.1", "trsvcid": "4420", "src_addr": "127.0.0.1"}
    assert nf.parse_wwid("uuid.bd23d6f4-fda4-453e-801a-b9c7b865cdaf\n") == (
        "uuid", "bd23d6f4-fda4-453e-801a-b9c7b865cdaf")
    assert nf.parse_wwid("eui.0025385b71b0c2d1")[0] == "eui"


def test_connect_option_string():
    opts = nf.ConnectOptions(nqn="nqn.2019-05.io.openebs:r1", traddr="127.0.0.2", trsvcid=8420,
                             hostnqn="nqn.2014-08.org.nvmexpress:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427",
                             hostid="1b4e28ba-2fa1-11d2-883f-0016d3cca427", ctrl_loss_tmo=-1, duplicate_connect=True)
    assert opts.option_string() == (
        "transport=tcp,traddr=127.0.0.2,trsvcid=8420,nqn=nqn.2019-05.io.openebs:r1,"
        "hostnqn=nqn.2014-08.org.nvmexpress:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427,"
        "hostid=1b4e28ba-2fa1-11d2-883f-0016d3cca427,ctrl_loss_tmo=-1,duplicate_connect")


@given(st.builds(lambda a, c, b: a + c + b, st.text(), st.sampled_from(list(",= \t\n\0")), st.text()))
def test_connect_options_refuse_injection(value):
    with pytest.raises(ValueError):
        nf.ConnectOptions(nqn=value, traddr="127.0.0.1").option_string()


def test_hostnqn_needs_hostid():
    with pytest.raises(ValueError, match="together"):
        nf.ConnectOptions(nqn="nqn.2019-05.io.openebs:r1", traddr="1.2.3.4", hostnqn="nqn.x:y").option_string()


def test_host_identity_persisted(tmp_path):
    a = nf.HostIdentity.load_or_create(str(tmp_path / "nvme/hostnqn"), str(tmp_path / "nvme/hostid"))
    b = nf.HostIdentity.load_or_create(str(tmp_path / "nvme/hostnqn"), str(tmp_path / "nvme/hostid"))
    assert a == b and a.hostnqn.endswith(a.hostid)


def test_block_stat_line():
    # /sys/block/loop0/stat from the VM (kernel 6.1 prints 17 fields)
    s = block.IoStats.parse("     322        0    10866      103       55        0    16464       27        0      164      131        0        0        0        0        4        0")
    assert s.read_ios == 322 and s.bytes_read == 10866 * 512 and s.write_sectors == 16464 and s.flush_ios == 4
    stats = block.parse_diskstats("   7       0 loop0 322 0 10866 103 55 0 16464 27 0 164 131 0 0 0 0 4 0\n")
    assert stats["loop0"].write_ios == 55
    with pytest.raises(ValueError):
        block.IoStats.parse("1 2 3")


def test_loop_struct_layout():
    # struct loop_info64 and struct loop_config from include/uapi/linux/loop.h
    assert loop._INFO64.size == 232
    assert loop._CONFIG.size == 304
