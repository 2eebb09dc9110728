"""Every numeric field a request carries, over its whole wire range (uint32 / uint64 / float32),
sent to the real daemon: each value gets the answer a model of io-engine's rules predicts — the
object made with exactly that value, or the contract's code with nothing changed — and never
INTERNAL or UNKNOWN (a uint64 >= 2**63 once overflowed SQLite and failed every second create)."""

from __future__ import annotations

import datetime
import math
import sqlite3
import time
import uuid

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import configfs
from mayastor.grpc import protos as P
from mayastor.kernel import block
from mayastor.store.models import UInt64

from .daemon import serve
from .test_bad_input import state
from .util import replica_dev, wait_for

MiB = 1 << 20
U32_MAX, U64_MAX = (1 << 32) - 1, (1 << 64) - 1
SIZE_MAX = (1 << 63) - 1
CNTLID_MAX = 0xFFEF
OK, INVALID, EXHAUSTED, PRECONDITION = (None, grpc.StatusCode.INVALID_ARGUMENT,
                                        grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.FAILED_PRECONDITION)
EDGES64 = [0, 1, 511, 512, 513, 4095, 4096, (1 << 31) - 1, 1 << 31, U32_MAX, 1 << 32, (1 << 32) + 512,
           SIZE_MAX - 511, SIZE_MAX, 1 << 63, (1 << 63) + 512, U64_MAX - 511, U64_MAX - 1, U64_MAX]
EDGES32 = [0, 1, 2, CNTLID_MAX - 1, CNTLID_MAX, CNTLID_MAX + 1, 0xFFFF, 1 << 16, (1 << 31) - 1, 1 << 31,
           U32_MAX - 1, U32_MAX]
NODE = "ranges"
SETTINGS = dict(deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def u64(*ranges: tuple[int, int]) -> st.SearchStrategy[int]:
    """The whole uint64 range, its edges, and the ranges where the interesting answers are."""
    return st.one_of(st.sampled_from(EDGES64), st.integers(0, U64_MAX), *(st.integers(a, b) for a, b in ranges))


def u32(*ranges: tuple[int, int]) -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from(EDGES32), st.integers(0, U32_MAX), *(st.integers(a, b) for a, b in ranges))


@pytest.fixture
def daemon(tmp_path, request):
    yield from serve(tmp_path, request, NODE)


def call(method, request, **kw):
    """(code, response): the code is None when the call succeeds."""
    try:
        return None, method(request, timeout=60, **kw)
    except grpc.RpcError as exc:
        assert exc.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), (request, exc.details())
        return exc.code(), None


def checked(daemon, method, request, expected, outcomes: Outcomes | None = None):
    """Send ``request``; its code must be ``expected``; a refusal must change nothing."""
    before = state(daemon.state_db)
    code, resp = call(method, request)
    assert code == expected, (request, code, expected)
    if outcomes is not None:
        outcomes.count(code)
    if code is not None:
        assert state(daemon.state_db) == before, request
    return resp


def _sv(v: str):
    return P.nexus.google_dot_protobuf_dot_wrappers__pb2.StringValue(value=v)


def round_up(n: int, to: int) -> int:
    return -(-n // to) * to


def aligned(strategy: st.SearchStrategy[int], to: int = 512) -> st.SearchStrategy[int]:
    """Mostly multiples of ``to`` (the interesting answers lie there), some not."""
    return strategy.map(lambda n: n if n % 11 == 0 else n - n % to)


class Outcomes:
    """How many values were accepted and refused: a property test whose draws all land on one
    side proves little, so each test asks for both."""

    def __init__(self):
        self.ok = self.refused = 0

    def count(self, code) -> None:
        if code is None:
            self.ok += 1
        else:
            self.refused += 1

    def both(self, at_least: int) -> None:
        assert self.ok >= at_least and self.refused >= at_least, (self.ok, self.refused)


# -- replicas ------------------------------------------------------------------------------------------

@pytest.mark.timeout(1800)
def test_replica_sizes_over_the_whole_uint64_range(daemon, tmp_path):
    c = daemon.client
    pool = c.pool.CreatePool(P.pool.CreatePoolRequest(name="rp", disks=[f"aio://{tmp_path}/rp.img?size_mb=512"]))
    cap, cluster = pool.capacity, pool.cluster_size

    def create_model(size: int, thin: bool) -> grpc.StatusCode | None:
        if size == 0:
            return INVALID
        free = cap - c.pool.ListPools(P.pool.ListPoolOptions()).pools[0].used
        return OK if round_up(size, cluster) <= (cap if thin else free) else EXHAUSTED

    made = Outcomes()

    @settings(max_examples=40, **SETTINGS)
    @given(size=u64((1, cap), (1, cap), (cap - cluster, cap + cluster)), thin=st.booleans())
    def create(size, thin):
        u = str(uuid.uuid4())
        req = P.replica.CreateReplicaRequest(name=u, uuid=u, pooluuid="rp", size=size, thin=thin)
        rep = checked(daemon, c.replica.CreateReplica, req, create_model(size, thin), made)
        if rep is not None:
            assert rep.size == round_up(size, cluster) and rep.thin == thin
            assert block.size_bytes(replica_dev(NODE, u)) == rep.size
            c.replica.DestroyReplica(P.replica.DestroyReplicaRequest(uuid=u, pool_name="rp"))

    create()
    made.both(8)

    u = str(uuid.uuid4())
    current = [c.replica.CreateReplica(P.replica.CreateReplicaRequest(
        name="grow", uuid=u, pooluuid="rp", size=8 * MiB, thin=True)).size]

    grown = Outcomes()

    @settings(max_examples=30, **SETTINGS)
    @given(absolute=u64((0, 8 * MiB), (cap - cluster, cap + cluster)),
           step=st.integers(-2 * cluster, 3 * cluster), relative=st.booleans())
    def resize(absolute, step, relative):
        size = max(current[0] + step, 0) if relative else absolute  # steps keep growing it within the pool
        if size == 0 or size < current[0]:
            expected = INVALID
        else:
            expected = OK if round_up(size, cluster) <= cap else EXHAUSTED
        rep = checked(daemon, c.replica.ResizeReplica, P.replica.ResizeReplicaRequest(uuid=u, requested_size=size),
                      expected, grown)
        if rep is not None:
            current[0] = max(current[0], round_up(size, cluster))
            assert rep.size == current[0] == block.size_bytes(replica_dev(NODE, u))

    resize()
    grown.both(4)


# -- nexus ---------------------------------------------------------------------------------------------

def stored_keys(db: str, nexus_uuid: str) -> tuple[int, int, int, int]:
    """The reservation a nexus row keeps (for fencing after a restart)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        resv, preempt, rtype, policy = conn.execute(
            "SELECT resv_key, preempt_key, resv_type, preempt_policy FROM nexuses WHERE uuid = ?",
            (nexus_uuid,)).fetchone()
    finally:
        conn.close()
    t = UInt64()
    return t.process_result_value(resv, None), t.process_result_value(preempt, None), rtype, policy


@pytest.mark.timeout(1800)
def test_nexus_fields_over_their_whole_uint32_and_uint64_ranges(daemon):
    """CreateNexus size / minCntlId / maxCntlId / resvKey / preemptKey, then ResizeNexus."""
    c = daemon.client
    child_size = 32 * MiB
    child = f"malloc:///range?size_mb={child_size >> 20}"

    def model(size: int, lo: int, hi: int, resv: int, preempt: int, rtype: int | None, policy: int):
        lo, hi = lo or 1, hi or CNTLID_MAX  # 0 = unset: the whole range (io-engine refuses a 0)
        # nvmet keeps min < max (SPDK allows min == max: a range of one id cannot be exported here)
        if size == 0 or size % 512 or size > SIZE_MAX or size > child_size:
            return INVALID
        if not 1 <= lo < hi <= CNTLID_MAX:
            return INVALID
        if rtype is not None and not 0 <= rtype <= 6 or policy not in (0, 1):
            return INVALID  # NvmeReservation / NexusNvmePreemption values
        enabled = resv != 0 or preempt != 0 or policy != 0  # io-engine's reservations_enabled/_valid
        return INVALID if enabled and (resv == 0 or policy == 1 and preempt != 0) else OK

    anything = st.tuples(
        aligned(u64((1, child_size), (child_size - 1024, child_size + 1024))),
        u32((0, 16), (CNTLID_MAX - 16, CNTLID_MAX + 16)), u32((0, 16), (CNTLID_MAX - 16, CNTLID_MAX + 16)),
        u64(), st.one_of(st.just(0), u64()),
        st.one_of(st.none(), st.integers(-1, 7), st.sampled_from([-(1 << 31), (1 << 31) - 1])),
        st.one_of(st.sampled_from([0, 1]), st.integers(-(1 << 31), (1 << 31) - 1)))
    # valid requests with every field still drawn over its whole valid range (keys up to 2**64-1)
    valid = st.tuples(
        st.integers(1, child_size >> 9).map(lambda n: n << 9),
        st.integers(0, CNTLID_MAX - 1).flatmap(lambda lo: st.tuples(st.just(lo), st.integers(lo + 1, CNTLID_MAX)
                                                                      | st.just(0))),
        u64().filter(bool), st.sampled_from([(0, 1), (0, 0), (1, 0), ((1 << 64) - 1, 0)]),
        st.one_of(st.none(), st.integers(0, 6))).map(
            lambda t: (t[0], t[1][0], t[1][1], t[2], t[3][0], t[4], t[3][1]))
    outcomes = Outcomes()

    @settings(max_examples=40, **SETTINGS)
    @given(st.one_of(valid, anything))
    def create_any(args):
        create(*args)

    def create(size, lo, hi, resv, preempt, rtype, policy):
        u = str(uuid.uuid4())
        req = P.nexus.CreateNexusRequest(name=u, uuid=u, size=size, minCntlId=lo, maxCntlId=hi, resvKey=resv,
                                         preemptKey=preempt, children=[child], preemptPolicy=policy)
        if rtype is not None:
            req.resvType = rtype
        n = checked(daemon, c.nexus.CreateNexus, req, model(size, lo, hi, resv, preempt, rtype, policy), outcomes)
        if n is None:
            return
        try:
            assert n.nexus.size == size
            assert stored_keys(daemon.state_db, u) == (resv, preempt, 5 if rtype is None else rtype, policy)
            c.nexus.PublishNexus(P.nexus.PublishNexusRequest(uuid=u, share=1))
            sub = configfs.Subsystem(f"nqn.2019-05.io.openebs:{u}", "lookup")
            assert (sub.cntlid_min, sub.cntlid_max) == (lo or 1, hi or CNTLID_MAX)
        finally:
            c.nexus.DestroyNexus(P.nexus.DestroyNexusRequest(uuid=u))

    create_any()
    outcomes.both(8)

    u = str(uuid.uuid4())
    current = [8 * MiB]
    c.nexus.CreateNexus(P.nexus.CreateNexusRequest(name=u, uuid=u, size=current[0], children=[child]))

    @settings(max_examples=30, **SETTINGS)
    @given(absolute=aligned(u64((0, 8 * MiB), (child_size - 1024, child_size + 1024))),
           step=aligned(st.integers(-MiB, 2 * MiB)), relative=st.booleans())
    def resize(absolute, step, relative):
        size = max(current[0] + step, 0) if relative else absolute  # steps keep growing it within the child
        if size == current[0]:
            expected = OK
        elif size < current[0] or size % 512:
            expected = INVALID
        else:  # larger than any child (or than a signed 64-bit size)
            expected = OK if size <= child_size else PRECONDITION
        r = checked(daemon, c.nexus.ResizeNexus, P.nexus.ResizeNexusRequest(uuid=u, requested_size=size), expected,
                    grown)
        if r is not None:
            current[0] = size
            assert r.nexus.size == size
            listed = c.nexus.ListNexus(P.nexus.ListNexusOptions(uuid=_sv(u))).nexus_list
            assert [x.size for x in listed] == [size]

    grown = Outcomes()
    resize()
    grown.both(4)


@pytest.mark.timeout(1800)
def test_rebuild_history_count_over_the_whole_uint32_range(daemon):
    """Three finished rebuilds; ListRebuildHistory with any count: the newest `count`, newest first,
    every nexus a key; end_time the newest end."""
    c = daemon.client
    u = str(uuid.uuid4())
    a, b = "malloc:///hist-a?size_mb=8", "malloc:///hist-b?size_mb=8"
    c.nexus.CreateNexus(P.nexus.CreateNexusRequest(name=u, uuid=u, size=8 * MiB, children=[a]))
    quiet = str(uuid.uuid4())  # a nexus that never rebuilt is listed too, with no records
    c.nexus.CreateNexus(P.nexus.CreateNexusRequest(name=quiet, uuid=quiet, size=4 * MiB,
                                                   children=["malloc:///hist-q?size_mb=4"]))
    for _ in range(3):
        c.nexus.AddChildNexus(P.nexus.AddChildNexusRequest(uuid=u, uri=b, norebuild=False))
        wait_for(lambda: [ch.state for ch in c.nexus.ListNexus(P.nexus.ListNexusOptions(uuid=_sv(u))).nexus_list[0]
                          .children] == [1, 1], 600, "the rebuild to finish")
        c.nexus.RemoveChildNexus(P.nexus.RemoveChildNexusRequest(uuid=u, uri=b))
        time.sleep(1.1)  # end times a second apart at least
    full = c.nexus.GetRebuildHistory(P.nexus.RebuildHistoryRequest(uuid=u)).records
    ends = [r.end_time.ToDatetime() for r in full]
    assert len(full) == 3 and ends == sorted(ends)  # GetRebuildHistory: oldest first

    @settings(max_examples=30, **SETTINGS)
    @given(count=st.one_of(st.none(), u32((0, 5))), since=st.one_of(st.none(), st.sampled_from([0, 1, 2])))
    def check(count, since):
        req = P.nexus.ListRebuildHistoryRequest()
        if count is not None:
            req.count = count
        if since is not None:
            req.since_end_time.FromDatetime(ends[since] - datetime.timedelta(microseconds=1))
        resp = c.nexus.ListRebuildHistory(req, timeout=60)
        after = [r.end_time.ToDatetime() for r in full if since is None or r.end_time.ToDatetime() >= ends[since]]
        keep = len(after) if count is None else min(count, len(after))
        assert set(resp.histories) == {u, quiet}
        assert [r.end_time.ToDatetime() for r in resp.histories[u].records] == after[::-1][:keep]
        assert list(resp.histories[quiet].records) == []
        assert resp.end_time.ToDatetime() == ends[-1]
        for r in resp.histories[u].records:
            assert r.HasField("start_time") and r.HasField("end_time")

    check()


# -- pools ---------------------------------------------------------------------------------------------

@pytest.mark.timeout(1800)
def test_pool_cluster_size_and_metadata_ratio_over_their_whole_range(daemon, tmp_path):
    """cluster_size (uint32): a multiple of 1 MiB up to 1 GiB is used, anything else falls back to
    the 4 MiB default as Mayastor's; md_resv_ratio (float32, NaN and infinities too): (0, 100]."""
    c = daemon.client
    floats = st.one_of(st.floats(width=32, allow_nan=True, allow_infinity=True),
                       st.sampled_from([0.0, -0.0, 1e-45, 0.5, 1.0, 100.0, 100.00001, math.inf, -math.inf, math.nan]))

    made = Outcomes()

    @settings(max_examples=30, **SETTINGS)
    @given(cluster=st.one_of(st.none(), u32((1, 1024)).map(lambda k: k * MiB if k <= 1024 else k), u32()),
           ratio=st.one_of(st.none(), floats))
    def create(cluster, ratio):
        # sparse, large enough for two clusters of 1 GiB (the largest) and the metadata
        req = P.pool.CreatePoolRequest(name="cp", disks=[f"aio://{tmp_path}/cp.img?size_mb=4096"])
        if cluster is not None:
            req.cluster_size = cluster
        if ratio is not None:
            req.md_args.md_resv_ratio = ratio
        stored = None if ratio is None else P.pool.PoolMetadataArgs(md_resv_ratio=ratio).md_resv_ratio
        ok = stored is None or 0 < stored <= 100
        pool = checked(daemon, c.pool.CreatePool, req, OK if ok else INVALID, made)
        if pool is None:
            return
        try:
            fits = cluster is not None and cluster % MiB == 0 and MiB <= cluster <= 1024 * MiB
            assert pool.cluster_size == (cluster if fits else 4 * MiB)
        finally:
            c.pool.DestroyPool(P.pool.DestroyPoolRequest(name="cp"))

    create()
    made.both(5)


# -- wipe ----------------------------------------------------------------------------------------------

@pytest.mark.timeout(1800)
def test_wipe_chunk_size_and_pattern_over_their_whole_range(daemon, tmp_path):
    c = daemon.client
    c.pool.CreatePool(P.pool.CreatePoolRequest(name="wp", disks=[f"aio://{tmp_path}/wp.img?size_mb=64"]))
    u = str(uuid.uuid4())
    total = c.replica.CreateReplica(P.replica.CreateReplicaRequest(name="w", uuid=u, pooluuid="wp", size=8 * MiB,
                                                                   thin=True)).size
    bs = block.logical_block_size(replica_dev(NODE, u))
    WRITE_ZEROES, WRITE_PATTERN = 1, 3

    def model(chunk: int, method: int):
        if method == WRITE_PATTERN:  # not implemented, as io-engine's wiper
            return INVALID
        ch = chunk or total
        if ch > total or ch % bs or (total % ch) % bs:
            return INVALID
        return OK if -(-total // ch) < 1024 else INVALID

    wiped = Outcomes()

    @settings(max_examples=30, **SETTINGS)
    @given(chunk=aligned(u64((0, 64 * 1024), (8 * 1024, total), (total - 4096, total + 4096)), bs),
           pattern=u32(), method=st.sampled_from([WRITE_ZEROES, WRITE_ZEROES, WRITE_PATTERN]))
    def wipe(chunk, pattern, method):
        req = P.test.WipeReplicaRequest(uuid=u, wipe_options=P.test.StreamWipeOptions(
            options=P.test.WipeOptions(wipe_method=method, write_pattern=pattern), chunk_size=chunk))
        before = state(daemon.state_db)
        expected = model(chunk, method)
        try:
            out = list(c.test.WipeReplica(req, timeout=120))
        except grpc.RpcError as exc:
            assert exc.code() == expected, (chunk, method, exc.details())
            assert state(daemon.state_db) == before
            wiped.count(exc.code())
            return
        assert expected is OK, (chunk, method)
        wiped.count(None)
        assert out[-1].wiped_bytes == total and out[-1].total_chunks == -(-total // (chunk or total))

    wipe()
    wiped.both(5)


# -- enums -----------------------------------------------------------------------------------------

I32 = st.one_of(st.sampled_from([-(1 << 31), -1, 2, 3, 4, 5, 15, 16, 255, (1 << 31) - 1]),
                st.integers(-(1 << 31), (1 << 31) - 1))


@pytest.mark.timeout(1800)
def test_enum_fields_outside_their_values_are_refused_over_the_whole_int32_range(daemon, tmp_path):
    """Enums are int32 on the wire and a client may send any value: every value outside the enum
    (share protocols, child actions, ANA states, pool types) is INVALID_ARGUMENT and changes nothing."""
    c = daemon.client
    c.pool.CreatePool(P.pool.CreatePoolRequest(name="ep", disks=[f"aio://{tmp_path}/ep.img?size_mb=64"]))
    ru = str(uuid.uuid4())
    kid = c.replica.CreateReplica(P.replica.CreateReplicaRequest(name="er", uuid=ru, pooluuid="ep", size=8 * MiB,
                                                                 thin=True)).uri
    nu = str(uuid.uuid4())
    c.nexus.CreateNexus(P.nexus.CreateNexusRequest(name=nu, uuid=nu, size=8 * MiB, children=[kid]))
    c.nexus.PublishNexus(P.nexus.PublishNexusRequest(uuid=nu, share=1))
    disk = f"aio://{tmp_path}/ep2.img?size_mb=64"
    fields = [
        ({0, 1}, lambda v: (c.replica.ShareReplica, P.replica.ShareReplicaRequest(uuid=ru, share=v))),
        ({0, 1}, lambda v: (c.replica.CreateReplica, P.replica.CreateReplicaRequest(
            name="e2", uuid=str(uuid.uuid4()), pooluuid="ep", size=MiB, thin=True, share=v))),
        ({0, 1}, lambda v: (c.nexus.PublishNexus, P.nexus.PublishNexusRequest(uuid=nu, share=v))),
        ({0, 1, 2, 3}, lambda v: (c.nexus.ChildOperation, P.nexus.ChildOperationRequest(
            nexus_uuid=nu, uri=kid, action=v))),
        ({1, 2, 3, 4, 15}, lambda v: (c.nexus.SetNvmeAnaState, P.nexus.SetNvmeAnaStateRequest(uuid=nu, ana_state=v))),
        ({0}, lambda v: (c.pool.CreatePool, P.pool.CreatePoolRequest(name="ep2", disks=[disk], pooltype=v))),
    ]

    @settings(max_examples=60, **SETTINGS)
    @given(which=st.integers(0, len(fields) - 1), value=I32)
    def refused(which, value):
        valid, make = fields[which]
        if value in valid:
            return
        method, request = make(value)
        checked(daemon, method, request, INVALID)

    refused()
