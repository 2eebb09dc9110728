"""Pool label encoding and layout planning (pure logic; the pool itself is tested in the VM)."""

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mayastor.pool import label as L

GiB = 1 << 30


def test_round_trip_and_per_disk_copy():
    lab = L.plan("pool-1", [10 * GiB, 4 * GiB], cluster_size=8 * L.MiB)
    for i in range(2):
        back = L.PoolLabel.decode(lab.encode(this_disk=i))
        assert back.this_disk == i
        back.this_disk = 0
        assert back == lab


def test_corruption_and_foreign_data_are_detected():
    block = bytearray(L.plan("p", [GiB]).encode())
    with pytest.raises(L.LabelError, match="magic"):
        L.PoolLabel.decode(bytes(4096))
    block[40] ^= 0xFF
    with pytest.raises(L.LabelError, match="checksum"):
        L.PoolLabel.decode(bytes(block))
    newer = bytearray(L.plan("p", [GiB]).encode())
    newer[16] = 99
    with pytest.raises(L.LabelError, match="newer"):
        L.PoolLabel.decode(bytes(newer))


def test_cluster_size_rules():
    assert L.check_cluster_size(None) == 4 * L.MiB
    assert L.check_cluster_size(2 * L.MiB) == 2 * L.MiB
    assert L.check_cluster_size(1000) == 4 * L.MiB  # not a MiB multiple: default, as Mayastor does
    assert L.check_cluster_size(0) == 4 * L.MiB


def test_metadata_size_bounds_and_ratio():
    assert L.metadata_size(GiB, 4 * L.MiB) == L.THIN_META_MIN
    big = L.metadata_size(64 * 1024 * GiB, 4 * L.MiB)
    assert big == 16 * 1024 * 1024 * 48 // L.MiB * L.MiB and big <= L.THIN_META_MAX
    assert L.metadata_size(64 * 1024 * GiB, 4 * L.MiB, 2.0) == 2 * big
    with pytest.raises(L.LabelError):
        L.metadata_size(GiB, L.MiB, 0)


def test_too_small_disk():
    with pytest.raises(L.LabelError, match="too small"):
        L.plan("p", [2 * L.MiB])
    with pytest.raises(L.LabelError):
        L.plan("p", [])


@given(st.lists(st.integers(min_value=64 * L.MiB, max_value=64 * GiB), min_size=1, max_size=4),
       st.sampled_from([None, L.MiB, 4 * L.MiB, 64 * L.MiB]))
def test_segments_tile_the_space_exactly(sizes, cluster):
    try:
        lab = L.plan("p", sizes, cluster_size=cluster)
    except L.LabelError:
        assume(False)  # disks too small for this cluster size: refused, covered elsewhere
    devs = [f"7:{i}" for i in range(len(sizes))]
    meta = L.linear_segments(lab, devs, 0, lab.metadata_len)
    data = L.linear_segments(lab, devs, lab.metadata_len, lab.data_len)
    assert lab.data_len % lab.cluster_size == 0 and lab.data_len > 0
    for segs, length in ((meta, lab.metadata_len), (data, lab.data_len)):
        # contiguous targets covering exactly the requested length
        pos = 0
        for start, ln, _dev, _off in segs:
            assert start == pos and ln > 0
            pos += ln
        assert pos * 512 == length
    # no byte of a disk is used twice, and nothing falls in the label area or the backup label
    used: dict[str, list[tuple[int, int]]] = {}
    for _s, ln, dev, off in meta + data:
        used.setdefault(dev, []).append((off, off + ln))
    for i, dev in enumerate(devs):
        ranges = sorted(used.get(dev, []))
        for (a0, a1), (b0, _b1) in zip(ranges, ranges[1:]):
            assert a1 <= b0
        for a0, a1 in ranges:
            assert a0 * 512 >= L.LABEL_AREA and a1 * 512 <= sizes[i] - L.LABEL_BLOCK


def test_range_beyond_the_pool():
    lab = L.plan("p", [GiB])
    with pytest.raises(L.LabelError):
        L.linear_segments(lab, ["7:0"], 0, lab.total_len + L.MiB)
    with pytest.raises(L.LabelError):
        L.linear_segments(lab, [], 0, L.MiB)


@pytest.mark.parametrize("disk_mb,capacity_mb", [(64, 60), (100, 96), (128, 124), (1024, 1020)])
def test_pool_capacity_as_io_engine_reports_it(disk_mb, capacity_mb):
    """io-engine's overhead on a disk is one 4 MiB cluster (a 64 MiB aio pool reports 62914560
    bytes); ours — label, backup label and the thin metadata — is no larger."""
    assert L.plan("p", [disk_mb * L.MiB]).data_len == capacity_mb * L.MiB


@settings(max_examples=300, deadline=None)
@given(disk=st.integers(min_value=16 * L.MiB, max_value=64 << 40), ratio=st.sampled_from([1.0, 2.0, 10.0]))
def test_a_new_pool_can_map_all_its_data(disk, ratio):
    """Whatever the disk size (up to 64 TiB) the thin metadata maps the whole data area."""
    label = L.plan("p", [disk], md_ratio=ratio)
    assert label.data_len <= L.mappable_bytes(label)
