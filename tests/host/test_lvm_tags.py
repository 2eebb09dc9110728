"""LVM pools keep replica records in LV tags: the escaping of values into lvm's tag alphabet and the
record <-> tags round trip, over the whole range of what a record may hold (pure functions; the
VM tests run them against lvm2 itself in tests/kernel/test_lvm_pools.py)."""

from __future__ import annotations

import re
import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from mayastor.pool import lvm_pool, lvm_tools

TAG_ALPHABET = re.compile(r"[A-Za-z0-9_+.\-/=!:&#]*")  # what lvm2 accepts in a tag (lvm(8))
U32 = (1 << 24) - 1


@given(st.text(max_size=300))
def test_escape_keeps_to_lvms_alphabet_and_round_trips(value):
    escaped = lvm_tools.escape(value)
    assert TAG_ALPHABET.fullmatch(escaped)
    assert "," not in escaped  # lvm reports a tag list comma-separated
    assert lvm_tools.unescape(escaped) == value


def test_escape_leaves_nqns_and_uuids_readable():
    nqn = "nqn.2014-08.org.nvmexpress:uuid:" + str(uuid.uuid4())
    assert lvm_tools.escape(nqn) == nqn
    assert lvm_tools.escape("a,b#c d") == "a#2cb#23c#20d"


@given(st.text(max_size=3100), st.sampled_from(["mayastor.lv.entity_id", "mayastor.lv.txn_id"]))
def test_long_values_split_over_tags_and_join_back(value, key):
    tags = lvm_tools.tags_for(key, value)
    assert all(TAG_ALPHABET.fullmatch(t) and len(t) <= lvm_tools.TAG_MAX for t in tags)
    pairs = lvm_tools.parse_tags(",".join(reversed(tags)))  # lvm keeps tags as a set: order is not kept
    assert lvm_tools.joined(pairs, key) == value


def test_dm_names_double_dashes():
    assert lvm_tools.dm_name("lvm-0", "22ca10d3-4f2b") == "lvm--0-22ca10d3--4f2b"


names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}", fullmatch=True)
hosts = st.lists(st.from_regex(r"nqn\.[0-9]{4}-[0-9]{2}\.[a-z.]{1,20}:[a-z0-9:.-]{1,60}", fullmatch=True),
                 max_size=4, unique=True)
# entity and transaction ids: up to 255 printable characters of any script (validate.entity_id)
ids = st.one_of(st.none(), st.text(st.characters(min_codepoint=0x20, exclude_categories=("Cs",)),
                                   min_size=1, max_size=255))


@settings(max_examples=300)
@given(name=names, thin_id=st.integers(1, U32), size=st.integers(1, (1 << 64) - 1), thin=st.booleans(),
       share=st.sampled_from([0, 1]), allowed=hosts, entity=ids, kind=st.sampled_from(["replica", "snapshot", "clone"]),
       source=st.one_of(st.none(), st.uuids().map(str)), discarded=st.booleans(), txn=ids)
def test_record_survives_its_tags(name, thin_id, size, thin, share, allowed, entity, kind, source, discarded, txn):
    rec = {"uuid": str(uuid.uuid4()), "name": name, "thin_id": thin_id, "size": size, "thin": thin,
           "entity_id": entity, "share": share, "allowed_hosts": sorted(allowed), "kind": kind,
           "source_uuid": source, "discarded": discarded, "txn_id": txn, "created_at": "2026-12-02T19:00:00+00:00"}
    tags = lvm_pool.tags_of(rec)
    assert all(TAG_ALPHABET.fullmatch(t) and len(t) <= lvm_tools.TAG_MAX for t in tags)
    lv = {"lv_name": rec["uuid"], "lv_size": str(size), "lv_tags": ",".join(sorted(tags))}
    assert lvm_pool.record_of(lv) == rec


def test_lvs_that_are_not_ours_are_no_records():
    assert lvm_pool.record_of({"lv_name": "keep", "lv_size": "8388608", "lv_tags": ""}) is None
    # io-engine's own LVM replicas (plain LVs, no key of ours) are left alone, not adopted
    io_engine = "mayastor,mayastor.lv.name=r1,mayastor.lv.share=off"
    assert lvm_pool.record_of({"lv_name": "x", "lv_size": "8388608", "lv_tags": io_engine}) is None


def test_vg_names_lvm_cannot_take_are_refused():
    import pytest
    from mayastor.errors import InvalidArgument
    for bad in ("a:b", "-x", "MAYASTOR-node", "MAYASTOR", "x" * 128, ""):
        with pytest.raises(InvalidArgument):
            lvm_pool.check_vg_name(bad)
    for good in ("lvmpool", "vg_0", "a.b+c-d", "x" * 127, "mayastor0"):
        lvm_pool.check_vg_name(good)
