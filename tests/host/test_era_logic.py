"""dm-era table/status strings and era_invalidate output (shapes as the 6.1 kernel and
thin-provisioning-tools 0.9 print them)."""

import pytest

from mayastor.kernel.dm_targets import EraStatus, era_params
from mayastor.kernel.era import parse_invalidate


def test_era_params_and_status():
    assert era_params("7:1", "253:4", 2048) == "7:1 253:4 2048"
    for bad in (0, 4, 1000, 3000):
        with pytest.raises(ValueError):
            era_params("7:1", "253:4", bad)
    st = EraStatus.parse("8 97/2048 3 -")
    assert (st.metadata_block_sectors, st.used_metadata_blocks, st.total_metadata_blocks, st.current_era,
            st.held_root) == (8, 97, 2048, 3, None)
    assert EraStatus.parse("8 97/2048 4 12").held_root == 12


def test_invalidate_xml_runs():
    xml = '<blocks>\n  <range begin="3" end="5"/>\n  <block block="10"/>\n  <block block="1"/>\n</blocks>\n'
    assert parse_invalidate(xml) == [(1, 1), (3, 2), (10, 1)]
    assert parse_invalidate("<blocks>\n</blocks>") == []
