"""uint64 fields of the wire over their whole range in the state database (SQLite's INTEGER is
signed: the control plane's reservation keys are >= 2**63 half of the time)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mayastor.store import Nexus, open_store
from mayastor.store.models import UInt64

U64 = st.integers(min_value=0, max_value=(1 << 64) - 1)
EDGES = [0, 1, (1 << 63) - 1, 1 << 63, (1 << 63) + 1, (1 << 64) - 2, (1 << 64) - 1,
         0xABCDEF0012345678, 0xFEDCBA9876543210]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = open_store(str(tmp_path_factory.mktemp("u64") / "state.db"))
    yield s
    s.close()


def _roundtrip(store, resv: int, preempt: int, rate: int) -> tuple[int, int, int]:
    uuid = "6f0d4c3e-0000-4000-8000-000000000001"
    with store.session() as s:
        old = s.get(Nexus, uuid)
        if old is not None:
            s.delete(old)
    with store.session() as s:
        s.add(Nexus(uuid=uuid, name="n", size=1 << 20, resv_key=resv, preempt_key=preempt, rebuild_rate=rate))
    with store.session() as s:
        row = s.get(Nexus, uuid)
        return row.resv_key, row.preempt_key, row.rebuild_rate


@pytest.mark.parametrize("value", EDGES)
def test_edges_round_trip(store, value):
    assert _roundtrip(store, value, value, value) == (value, value, value)


@settings(max_examples=200, deadline=None)
@given(U64, U64, U64)
def test_whole_range_round_trips(store, resv, preempt, rate):
    assert _roundtrip(store, resv, preempt, rate) == (resv, preempt, rate)


@pytest.mark.parametrize("value", [-1, 1 << 64, (1 << 64) + 5])
def test_out_of_range_is_refused_before_sqlite(value):
    with pytest.raises(ValueError, match="not a uint64"):
        UInt64().process_bind_param(value, None)
