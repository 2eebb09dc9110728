"""The persistent store (-p) against a real etcd, its flag parsing over their whole range, and the
NexusInfo value and rules (tests/kernel/test_persistent_store.py has the daemon's puts)."""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mayastor import persistent_store as ps
from mayastor.nexus.persist import InfoPublisher, key_of, nexus_info
from tests.etcd_server import EtcdServer, free_port


@pytest.fixture
def etcd(tmp_path):
    e = EtcdServer(str(tmp_path / "etcd"), str(tmp_path / "etcd.log")).start()
    yield e
    e.stop()


def test_put_is_read_back_as_json(etcd):
    store = ps.PersistentStore("127.0.0.1", etcd.port, timeout=5, retries=2)
    assert store.reachable()
    value = {"clean_shutdown": False, "children": [{"uuid": "u1", "healthy": True}]}
    store.put("/openebs.io/mayastor/x/info", value)
    assert etcd.get_json("/openebs.io/mayastor/x/info") == value
    assert store.puts == 1


def test_a_put_to_a_stopped_etcd_fails_after_its_tries(etcd):
    store = ps.PersistentStore("127.0.0.1", etcd.port, timeout=1, retries=3, interval=0.1)
    etcd.pause()
    try:
        t0 = time.monotonic()
        with pytest.raises(ps.StoreUnavailable) as err:
            store.put("k", {"a": 1})
        assert time.monotonic() - t0 >= 3 * 1.0  # three tries of a 1 s timeout each
        assert "after 3 tries" in str(err.value) and err.value.code == "INTERNAL"
    finally:
        etcd.resume()
    store.put("k", {"a": 2})  # back: the same client works again
    assert etcd.get_json("k") == {"a": 2}


def test_start_up_waits_for_etcd_and_stops_on_request(tmp_path):
    port = free_port()
    store = ps.PersistentStore("127.0.0.1", port, timeout=1, retries=1, interval=0.2)
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    assert store.wait_until_reachable(stop) is False  # nothing there: waited until told to stop
    e = EtcdServer(str(tmp_path / "etcd"), str(tmp_path / "etcd.log"), port=port)
    done: list[bool] = []
    waiter = threading.Thread(target=lambda: done.append(store.wait_until_reachable(threading.Event())))
    waiter.start()
    try:
        time.sleep(0.5)
        assert done == []  # still waiting
        e.start()
        waiter.join(timeout=120)
        assert done == [True]
    finally:
        e.stop()


def test_no_store_puts_nothing():
    InfoPublisher(None).put(_Row(), [_Kid(1, "u", True)])  # no -p: a no-op, no etcd needed
    assert not InfoPublisher(None).enabled


@pytest.mark.parametrize("text,seconds", [("10s", 10), ("1m", 60), ("500ms", 1), ("0s", 1), ("2m", 60),
                                          ("1m30s", 60), ("5 s", 5), ("30sec", 30), ("1.5s", 1.5)])
def test_ps_timeout_like_io_engine(text, seconds):
    assert ps.parse_timeout(text) == seconds


@pytest.mark.parametrize("bad", ["", "10", "s", "ten seconds", "10parsecs", "-1s", "1s2"])
def test_bad_ps_timeouts_are_refused(bad):
    with pytest.raises(ValueError):
        ps.parse_timeout(bad)


@given(st.integers(min_value=-(1 << 70), max_value=1 << 70))
def test_ps_retries_is_a_u8(n):
    if 0 <= n <= 255:
        assert ps.parse_retries(str(n)) == n
    else:
        with pytest.raises(ValueError):
            ps.parse_retries(str(n))


@given(st.integers(min_value=-(1 << 20), max_value=1 << 20))
def test_endpoint_ports_over_their_range(port):
    text = f"etcd.example:{port}"
    if 0 < port < 65536:
        assert ps.parse_endpoint(text) == ("etcd.example", port)
    else:
        with pytest.raises(ValueError):
            ps.parse_endpoint(text)


@pytest.mark.parametrize("text,want", [
    ("mayastor-etcd", ("mayastor-etcd", 2379)), ("=mayastor-etcd:2379", None),
    ("10.0.0.5:2380", ("10.0.0.5", 2380)), ("[fd00::5]:2379", ("fd00::5", 2379)), ("fd00::5", ("fd00::5", 2379)),
    ("http://etcd:2379", ("etcd", 2379)), ("etcd:", None), ("etcd:x", None), ("", None), ("a/b:1", None),
    ("[fd00::5]x", None), ("-etcd", None)])
def test_endpoints(text, want):
    if want is None:
        with pytest.raises(ValueError):
            ps.parse_endpoint(text)
    else:
        assert ps.parse_endpoint(text) == want


def test_settings_check_every_flag_even_without_p():
    assert ps.settings(None, "10s", "30") is None
    with pytest.raises(ValueError):
        ps.settings(None, "forever", "30")
    assert ps.settings("etcd", "5s", "0") == ("etcd", 2379, 5.0, 0)


class _Row:
    uuid = "6a3c0e5e-2f7e-4d8f-9c5f-000000000001"
    nexus_info_key = None
    clean_shutdown = False


class _Kid:
    def __init__(self, id, uuid, healthy, uri=None):
        self.id, self.device_uuid, self.healthy = id, uuid, healthy
        self.uri = uri or f"bdev:///{uuid}?uuid={uuid}"


def test_nexus_info_value_as_io_engine_writes_it():
    row = _Row()
    kids = [_Kid(3, "c", False), _Kid(1, "a", True), _Kid(2, None, True, uri="malloc:///m")]
    assert key_of(row) == row.uuid
    row.nexus_info_key = "/openebs.io/mayastor/apis/v0/clusters/bdd/namespaces/default/volume/v/nexus/n/info"
    assert key_of(row) == row.nexus_info_key
    assert nexus_info(row, kids) == {"clean_shutdown": False, "children": [
        {"uuid": "a", "healthy": True}, {"uuid": "", "healthy": True}, {"uuid": "c", "healthy": False}]}
    assert nexus_info(row, kids, without=kids[1].uri, clean_shutdown=True) == {"clean_shutdown": True, "children": [
        {"uuid": "", "healthy": True}, {"uuid": "c", "healthy": False}]}


def test_the_last_healthy_child_stays_healthy(tmp_path):
    """io-engine never marks the last healthy child unhealthy in NexusInfo (the control plane
    rebuilds the volume from it); our SQLite health, which the put serialises, follows it."""
    from mayastor.locks import KeyedLocks
    from mayastor.nexus.service import NexusService
    from mayastor.paths import PathPolicy
    from mayastor.store import Nexus, NexusChild, open_store
    store = open_store(str(tmp_path / "s.db"))
    try:
        svc = NexusService("n1", store, None, None, KeyedLocks(), None, None, (4421, 8420), "", PathPolicy())
        with store.session() as s:
            s.add(Nexus(uuid=_Row.uuid, name="vol", size=1 << 20, state="online", lifecycle="ready"))
            s.flush()
            kids = [NexusChild(nexus_uuid=_Row.uuid, uri=f"malloc:///m{i}", position=i, state="online",
                               healthy=True) for i in range(3)]
            s.add_all(kids)
            s.flush()
            ids = [k.id for k in kids]

        def health():
            with store.session() as s:
                return [s.get(NexusChild, i).healthy for i in ids]
        svc.set_child(ids[0], "faulted", 6, healthy=False, fault=True)
        svc.set_child(ids[2], "faulted", 6, healthy=False, fault=True)
        assert health() == [False, True, False]
        svc.set_child(ids[1], "faulted", 6, healthy=False, fault=True)  # the last one: stays healthy
        assert health() == [False, True, False]
        svc.set_child(ids[0], "online", 0, healthy=True)  # rebuilt: healthy again
        svc.set_child(ids[1], "faulted", 6, healthy=False, fault=True)  # no longer the last
        assert health() == [True, False, False]
    finally:
        store.close()
