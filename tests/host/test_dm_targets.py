"""dm table builders and status parsers, against strings captured from Debian 6.1 in the test VM."""

import pytest

from mayastor.kernel import dm
from mayastor.kernel.dm_targets import (Raid1Table, RaidStatus, ThinPoolStatus, ThinStatus, default_region_size,
                                        thin_params, thin_pool_params)

# captured with our client and with `dmsetup status/table` in the VM
RAID_SYNCED = "raid1 2 AA 65536/65536 idle 0 0 -"
RAID_LEG_DEAD = "raid1 2 AD 65536/65536 idle 0 0 -"
RAID_RECOVERING = "raid1 2 Aa 0/131072 recover 0 0 -"
RAID_TABLE = "raid1 3 0 region_size 1024 2 254:0 254:1 254:2 254:3"
RAID_TABLE_REBUILD = "raid1 7 0 rebuild 1 max_recovery_rate 2000 write_mostly 1 2 254:0 254:1 254:2 254:3"
POOL_EMPTY = "0 1648/16384 0/1024 - rw discard_passdown queue_if_no_space - 1024 "
POOL_USED = "0 1649/16384 16/1024 - rw discard_passdown queue_if_no_space - 1024 "
POOL_TABLE = "7:0 7:1 128 0 0"
THIN = "2048 2047"


def test_raid_status_synced():
    st = RaidStatus.parse(RAID_SYNCED)
    assert (st.raid_type, st.devices, st.health, st.sync_action) == ("raid1", 2, "AA", "idle")
    assert st.in_sync and st.dead_legs == [] and st.progress == 1.0
    assert st.data_offset == 0 and st.journal == "-"


def test_raid_status_dead_leg():
    st = RaidStatus.parse(RAID_LEG_DEAD)
    assert st.dead_legs == [1] and not st.in_sync


def test_raid_status_recovering():
    st = RaidStatus.parse(RAID_RECOVERING)
    assert st.sync_action == "recover" and st.progress == 0.0 and not st.in_sync
    assert st.health[1] == "a"


def test_raid_table_round_trip():
    for line in (RAID_TABLE, RAID_TABLE_REBUILD):
        assert Raid1Table.parse(line).params() == line
    t = Raid1Table.parse(RAID_TABLE_REBUILD)
    assert t.rebuild == [1] and t.write_mostly == [1] and t.max_recovery_rate == 2000
    assert t.legs == [("254:0", "254:1"), ("254:2", "254:3")]


def test_raid_table_counts_every_word():
    t = Raid1Table(legs=[("1:1", "1:2"), ("-", "1:3"), ("-", "-")], sync="nosync", region_size=8192)
    assert t.params() == "raid1 4 0 nosync region_size 8192 3 1:1 1:2 - 1:3 - -"


@pytest.mark.parametrize("kwargs, message", [
    ({"legs": []}, "at least one leg"),
    ({"legs": [("a", "b")], "sync": "nosync", "rebuild": [0]}, "rebuild cannot"),
    ({"legs": [("a", "b")], "region_size": 1000}, "power of two"),
    ({"legs": [("a", "b")], "rebuild": [1]}, "out of range"),
    ({"legs": [("a", "b"), ("c", "d")], "write_mostly": [0, 1]}, "write_mostly"),
    ({"legs": [("a", "-")]}, "needs a data device"),
    ({"legs": [("a", "b")], "sync": "fast"}, "sync must be"),
])
def test_raid_table_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Raid1Table(**kwargs).params()


def test_default_region_size():
    assert default_region_size(20971520) == 8192          # 10 GiB: default 4 MiB regions
    assert default_region_size(1 << 35) == 16384           # 16 TiB: len / 2^21 rounded up to 2^n
    assert default_region_size((1 << 34) + 1) == 16384


def test_thin_pool_status():
    st = ThinPoolStatus.parse(POOL_EMPTY)
    assert (st.transaction_id, st.used_metadata_blocks, st.total_metadata_blocks) == (0, 1648, 16384)
    assert (st.used_data_blocks, st.total_data_blocks) == (0, 1024)
    assert st.held_metadata_root is None and st.mode == "rw" and st.discard_passdown
    assert not st.error_if_no_space and not st.needs_check and st.metadata_low_watermark == 1024
    assert ThinPoolStatus.parse(POOL_USED).used_data_blocks == 16
    assert ThinPoolStatus.parse("Fail").failed


def test_thin_status():
    st = ThinStatus.parse(THIN)
    assert st.mapped_sectors == 2048 and st.highest_mapped_sector == 2047
    assert ThinStatus.parse("0 -").highest_mapped_sector is None
    assert ThinStatus.parse("Fail").failed


def test_thin_builders():
    assert thin_pool_params("7:0", "7:1", 128) == POOL_TABLE
    assert thin_pool_params("7:0", "7:1", 8192, 10, ("skip_block_zeroing",)) == "7:0 7:1 8192 10 1 skip_block_zeroing"
    with pytest.raises(ValueError):
        thin_pool_params("7:0", "7:1", 100)
    with pytest.raises(ValueError):
        thin_pool_params("7:0", "7:1", 128, features=("yes_discard_passdown",))
    assert thin_params("254:0", 5) == "254:0 5"
    with pytest.raises(ValueError):
        thin_params("254:0", 1 << 24)


def test_target_line_round_trip():
    line = "0 65536 raid " + RAID_TABLE
    assert dm.Target.parse(line).line() == line
    assert dm.Target.parse("0 2048 error").params == ""


def test_ioctl_struct_layout():
    # sizeof(struct dm_ioctl) and dm_target_spec from include/uapi/linux/dm-ioctl.h
    assert dm.HEADER_SIZE == 312
    assert dm._SPEC.size == 40
    assert dm._request(dm.VERSION) == 0xC138FD00
    assert dm._request(dm.DEV_ARM_POLL) == 0xC138FD10


def test_dm_names_are_validated_before_the_kernel():
    for bad in ("a/b", "..", "x" * 128, "nul\0"):
        with pytest.raises(ValueError):
            dm._check_name(bad)
