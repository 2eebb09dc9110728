"""Nexus pure logic: child URI parsing, the state machine, dm-raid health -> child state."""

from __future__ import annotations

import datetime
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mayastor.errors import FailedPrecondition, InvalidArgument
from mayastor.nexus.history import history_window
from mayastor.nexus import state as S
from mayastor.nexus.reservation import Reservation
from mayastor.nexus.stack import region_sectors_for
from mayastor.nexus.uri import parse

U = "0c0ffee0-1234-4abc-8def-0123456789ab"


@pytest.mark.parametrize("uri,scheme,path,host,port", [
    (f"bdev:///r1?uuid={U}", "bdev", "r1", "", 0),
    (f"loopback:///r1?uuid={U}", "bdev", "r1", "", 0),
    (f"nvmf://10.0.0.2:8420/nqn.2019-05.io.openebs:r1?uuid={U}", "nvmf", "nqn.2019-05.io.openebs:r1", "10.0.0.2", 8420),
    (f"nvmf+tcp://10.0.0.2/nqn.2019-05.io.openebs:r1?uuid={U}", "nvmf", "nqn.2019-05.io.openebs:r1", "10.0.0.2", 4420),
    ("aio:///dev/sdb", "aio", "/dev/sdb", "", 0),
    ("uring:///var/img?blk_size=4096", "uring", "/var/img", "", 0),
    ("malloc:///m0?size_mb=64", "malloc", "m0", "", 0),
    ("malloc:///m0?num_blocks=2048&blk_size=4096", "malloc", "m0", "", 0),
    ("nbd://127.0.0.1:10809/exp", "nbd", "exp", "127.0.0.1", 10809),
    ("null:///null00?blk_size=512&size_mb=100", "null", "null00", "", 0),
])
def test_child_uris_parse(uri, scheme, path, host, port):
    p = parse(uri)
    assert (p.scheme, p.path, p.host, p.port) == (scheme, path, host, port)
    assert p.uri == uri


def test_a_null_device_is_a_bdev_not_a_child():
    """null:// parses (CreateBdev makes it) but a nexus refuses it as a child, before anything is
    recorded: it is used through CreateBdev and bdev:///<name>."""
    from mayastor.nexus.children import ChildContext, device_for
    with pytest.raises(InvalidArgument, match="CreateBdev"):
        device_for(parse("null:///n0?size_mb=8"), ChildContext("n", None, "t", None))


@pytest.mark.parametrize("uri", [
    "", "foo:///x", "pcie:///0000:05:00.0", "malloc:///m0", "null:///n0", "null:///n0?size_mb=1&resize=1", "malloc:///m0?size_mb=8&num_blocks=8",
    "malloc:///m0?size_mb=8&bogus=1", "malloc:///m0?size_mb=0", "malloc:///../m", "bdev:///../x",
    "bdev:///a/b", f"bdev:///r1?uuid={U}&uuid={U}", "bdev:///r1?uuid=not-a-uuid", "aio:///dev/../etc/passwd",
    "aio://host/dev/sdb", "aio:///dev/sdb?blk_size=1000", f"nvmf://h:1/notanqn?uuid={U}", "nvmf:///nqn.2019-05.io.openebs:x",
    "nbd://127.0.0.1/exp", "nbd://user:pw@127.0.0.1:1/exp", "nvmf://10.0.0.1:99999/nqn.2019-05.io.openebs:x",
    "malloc:///m\x00?size_mb=1", "x" * 5000,
])
def test_bad_child_uris_are_invalid_argument(uri):
    with pytest.raises(InvalidArgument):
        parse(uri)


def test_state_machine_allows_only_its_transitions():
    assert S.transition("init", "online") == "online"
    assert S.transition("online", "degraded") == "degraded"
    assert S.transition("degraded", "online") == "online"
    assert S.transition("online", "shutting_down") == "shutting_down"
    assert S.transition("shutting_down", "shutdown") == "shutdown"
    for bad in ("online", "degraded", "init", "faulted"):
        with pytest.raises(FailedPrecondition):
            S.transition("shutdown", bad)
    with pytest.raises(FailedPrecondition):
        S.transition("online", "shutdown")  # must pass through shutting_down


def test_derive_and_health_mapping():
    assert S.derive([("online", 0), ("online", 0)]) == "online"
    assert S.derive([("online", 0), ("faulted", S.R_IO_FAILURE)]) == "degraded"
    assert S.derive([("faulted", S.R_IO_FAILURE), ("degraded", S.R_BY_CLIENT)]) == "faulted"
    assert S.from_health("D", "online", S.R_NONE) == ("faulted", S.R_IO_FAILURE)
    assert S.from_health("D", "degraded", S.R_BY_CLIENT) is None  # the client took it out
    assert S.from_health("a", "online", S.R_NONE) == ("degraded", S.R_OUT_OF_SYNC)
    assert S.from_health("a", "online", S.R_NONE, "recover") == ("degraded", S.R_OUT_OF_SYNC)
    # a resync after a reload shows every leg 'a': none of them lost data
    assert S.from_health("a", "online", S.R_NONE, "resync") is None
    # just after a reload every leg shows 'a' before md reports the resync: nobody to recover from
    assert S.from_health("a", "online", S.R_NONE, "idle", peer_in_sync=False) is None
    assert S.from_health("a", "online", S.R_NONE, "frozen", peer_in_sync=False) is None
    assert S.from_health("D", "online", S.R_NONE, "idle", peer_in_sync=False) == ("faulted", S.R_IO_FAILURE)
    assert S.from_health("D", "online", S.R_NONE, "resync") == ("faulted", S.R_IO_FAILURE)
    assert S.from_health("A", "degraded", S.R_OUT_OF_SYNC) == ("online", S.R_NONE)
    assert S.from_health("A", "online", S.R_NONE) is None
    assert S.is_permanent_fault("faulted", S.R_BY_CLIENT)
    assert not S.is_permanent_fault("faulted", S.R_IO_FAILURE)


def test_region_size_keeps_the_bitmap_within_md_limits():
    assert region_sectors_for(64 * 2048) == 2048
    big = 16 << 40 >> 9  # 16 TiB in sectors
    r = region_sectors_for(big)
    assert r & (r - 1) == 0 and big // r <= 1 << 21


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.sampled_from([1, 2, 3, 7, 8, 2047, 2048, 2049, 1 << 21, (1 << 32) + 1, ((1 << 63) - 1) >> 9]),
                 st.integers(1, 4096), st.integers(1, ((1 << 63) - 1) >> 9)))
def test_region_size_fits_every_nexus_size(sectors):
    """dm-raid's rules for the region of any nexus size a request may carry (1 sector up to
    2**63-1 bytes): a power of two, no larger than the device, at most 2**21 regions."""
    r = region_sectors_for(sectors)
    assert r & (r - 1) == 0 and 1 <= r <= sectors and -(-sectors // r) <= 1 << 21
    assert r == 2048 or sectors < 2048 or sectors > 2048 << 21


def test_the_namespace_uuid_is_the_volume_uuid_when_the_name_is_one():
    from mayastor.nexus.operations import namespace_uuid
    nexus = "6a3c0e5e-2f7e-4d8f-9c5f-000000000001"
    vol = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
    assert namespace_uuid(vol, nexus) == vol
    assert namespace_uuid(vol.upper(), nexus) == vol  # as io-engine's Uuid::parse_str: normalised
    assert namespace_uuid(vol.replace("-", ""), nexus) == vol
    assert namespace_uuid("vol1", nexus) == nexus
    assert namespace_uuid("", nexus) == nexus


def test_a_nexus_snapshot_request_is_checked_before_the_nexus_is_touched():
    from mayastor.errors import InvalidArgument
    from mayastor.nexus import snapshot as ns

    class Untouchable:
        def __getattr__(self, name):
            raise AssertionError(f"touched {name}")
    nexus, r1, s1 = ("6a3c0e5e-2f7e-4d8f-9c5f-00000000000%d" % i for i in range(3))
    for args in (("not-a-uuid", "n/1", [ns.Wanted(r1, s1)]),
                 (nexus, "n/1", []),
                 (nexus, "n/1", [ns.Wanted("bad", s1)]),
                 (nexus, "n/1", [ns.Wanted(r1, "")]),
                 (nexus, "n/1", [ns.Wanted(r1, s1), ns.Wanted(r1, s1)]),
                 (nexus, "", [ns.Wanted(r1, s1)])):
        with pytest.raises(InvalidArgument):
            ns.create(Untouchable(), args[0], "vol", "1", args[1], args[2], 10124)
    assert ns.ERRNO_OF_CODE["NOT_FOUND"] == 2 and ns.ERRNO_OF_CODE["RESOURCE_EXHAUSTED"] == 28


U32 = (1 << 32) - 1


@settings(max_examples=300, deadline=None)
@given(n=st.integers(min_value=0, max_value=12),
       count=st.one_of(st.none(), st.sampled_from([0, 1, 2, 7, 8, (1 << 31) - 1, 1 << 31, U32 - 1, U32]),
                       st.integers(min_value=0, max_value=U32)),
       since=st.one_of(st.none(), st.integers(min_value=-1, max_value=13)))
def test_rebuild_history_window_over_the_whole_uint32_count(n, count, since):
    """ListRebuildHistory: newest first, the newest `count` (any uint32) after `since`;
    GetRebuildHistory's order (oldest first) keeps the same newest records."""
    t0 = datetime.datetime(2026, 1, 1)
    jobs = [types.SimpleNamespace(i=i, ended_at=t0 + datetime.timedelta(seconds=i)) for i in range(n)]
    cut = None if since is None else t0 + datetime.timedelta(seconds=since)
    after = [j.i for j in jobs if cut is None or j.ended_at > cut]
    keep = len(after) if count is None else min(count, len(after))
    newest = [j.i for j in history_window(jobs, cut, count, newest_first=True)]
    oldest = [j.i for j in history_window(jobs, cut, count, newest_first=False)]
    assert newest == after[::-1][:keep]
    assert oldest == after[len(after) - keep:]


U64 = st.one_of(st.sampled_from([0, 1, (1 << 63) - 1, 1 << 63, (1 << 64) - 1]), st.integers(0, (1 << 64) - 1))
I32 = st.one_of(st.sampled_from([0, 1, 2, 5, 6, 7, -1]), st.integers(-(1 << 31), (1 << 31) - 1))


@settings(max_examples=500, deadline=None)
@given(key=U64, preempt=st.one_of(st.just(0), U64), rtype=st.one_of(st.none(), I32), policy=I32)
def test_reservation_parameters_follow_io_engines_rules(key, preempt, rtype, policy):
    """Any uint64 key is kept exactly; a reservation that is asked for needs a key, Holder takes no
    preempt key; the enum values are checked; nothing else is refused."""
    enabled = key != 0 or preempt != 0 or policy != 0
    bad = (rtype is not None and not 0 <= rtype <= 6) or policy not in (0, 1) or \
        (enabled and (key == 0 or (policy == 1 and preempt != 0)))
    if bad:
        with pytest.raises(InvalidArgument):
            Reservation.from_request(key, preempt, rtype, policy)
        return
    r = Reservation.from_request(key, preempt, rtype, policy)
    assert (r.key, r.preempt_key, r.type, r.policy, r.enabled) == (key, preempt, 5 if rtype is None else rtype,
                                                                 policy, enabled)


def test_the_control_planes_reservation_and_its_ha_disabled_form_are_accepted():
    cp = Reservation.from_request(0x8F3A_0000_0000_0001, 0, 2, 1)  # ExclusiveAccess, Holder
    assert cp.enabled and cp.type == 2
    off = Reservation.from_request(0, 0, 0, 0)  # --disable-ha: no config
    assert not off.enabled
