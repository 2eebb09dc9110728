"""Pure logic of the node daemon: input validation, disk URIs, the replica catalog, dm name tags,
per-object locks and the daemon's address flags."""

import dataclasses
import threading
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mayastor import validate
from mayastor.daemon import grpc_address
from mayastor.errors import DeadlineExceeded, InvalidArgument
from mayastor.locks import KeyedLocks
from mayastor.pool import catalog
from mayastor.pool.disk import parse
from mayastor.naming import Tags


@pytest.mark.parametrize("name", ["pvc-1", "a", "Pool_1.x:y", "x" * validate.NAME_MAX])
def test_good_names(name):
    assert validate.name(name) == name


@pytest.mark.parametrize("name", ["", "a/b", "..", ".", "-x", "a\0b", "a b", "x" * (validate.NAME_MAX + 1),
                                  "é", "a\nb", "../etc"])
def test_bad_names(name):
    with pytest.raises(InvalidArgument):
        validate.name(name)


@pytest.mark.parametrize("name", ["6a3c0e5e-2f7e-4d8f-9c5f-000000000001/1", "snap", "a/b/c", "s.1:x/2"])
def test_snapshot_names_of_the_control_plane(name):
    assert validate.snapshot_name(name) == name  # the agent's "<snapshot uuid>/<txn id>"


@pytest.mark.parametrize("name", ["", "/a", "a/", "a//b", "a/../b", "a/./b", "../x", "a b/1", "é/1", "a/\n",
                                  "x" * (validate.NAME_MAX + 1)])
def test_bad_snapshot_names(name):
    with pytest.raises(InvalidArgument):
        validate.snapshot_name(name)


@given(st.text(max_size=300))
def test_names_that_pass_are_safe_path_components(s):
    try:
        validate.name(s)
    except InvalidArgument:
        return
    assert "/" not in s and "\0" not in s and s not in (".", "..") and len(s.encode()) <= validate.NAME_MAX


def test_uuids_are_normalised_and_checked():
    u = str(uuid.uuid4())
    assert validate.uuid(u.upper()) == u
    for bad in ("", "xyz", u[:-1], u + "0", u.replace("-", ""), "{" + u + "}"):
        with pytest.raises(InvalidArgument):
            validate.uuid(bad)


def test_host_nqns():
    good = "nqn.2014-08.org.nvmexpress:uuid:" + str(uuid.uuid4())
    assert validate.host_nqns([good, good]) == [good]
    for bad in ("", "host1", "nqn.19-05.io:x", "nqn.2019-05.x:a/b", "nqn.2019-05.io:" + "x" * 300):
        with pytest.raises(InvalidArgument):
            validate.host_nqns([bad])


@pytest.mark.parametrize("uri,path,scheme", [
    ("/dev/sdb", "/dev/sdb", "aio"),
    ("aio:///dev/sdb", "/dev/sdb", "aio"),
    ("uring:///dev/nvme0n1", "/dev/nvme0n1", "uring"),
    ("aio:///var/lib/p.img?size_mb=64", "/var/lib/p.img", "aio"),
    ("aio:///dev/sdb?blk_size=4096&uuid=" + "0" * 8 + "-0000-0000-0000-" + "0" * 12, "/dev/sdb", "aio"),
])
def test_disk_uris(uri, path, scheme):
    d = parse(uri)
    assert (d.path, d.scheme) == (path, scheme)


@pytest.mark.parametrize("uri,canonical", [
    ("malloc:///disk0?size_mb=100", "malloc:///disk0?size_mb=100"),
    ("malloc:///d.1?num_blocks=2048&blk_size=4096&uuid=" + "0" * 8 + "-0000-0000-0000-" + "0" * 12,
     "malloc:///d.1?num_blocks=2048&blk_size=4096"),
    ("malloc:///disk0?size_mb=0100", "malloc:///disk0?size_mb=100"),
])
def test_ram_pool_disks_keep_their_size_in_the_stored_form(uri, canonical):
    """The stored form must bring the RAM disk back with its size and block size after a restart;
    it never names a file path, and is not the same disk as a file of that name."""
    d = parse(uri)
    assert d.is_ram and d.canonical == canonical and parse(d.canonical) == dataclasses.replace(d, uuid=None)
    assert d.key != parse("aio:///disk0").key


@pytest.mark.parametrize("uri", [
    "malloc:///disk0", "malloc:///disk0?size_mb=1&num_blocks=2", "malloc:///disk0?size_mb=100&blk_size=1024",
    "malloc:///a/b?size_mb=1", "malloc:///../x?size_mb=1", "malloc:///?size_mb=1", "malloc://h/x?size_mb=1",
    "malloc:///x?size_mb=0", "malloc:///x?size_mb=1&rescan=1", "malloc:///-x?size_mb=1",
    "malloc:///x?size_mb=" + str((1 << 20) + 1),
])
def test_bad_ram_pool_disks(uri):
    with pytest.raises(InvalidArgument):
        parse(uri)


@pytest.mark.parametrize("uri", [
    "", "dev/sdb", "nvmf://h/x", "pcie:///0000:00:01.0", "aio://host/dev/sdb", "aio:///dev/sdb?foo=1",
    "aio:///dev/sdb?blk_size=1000", "aio:///x?size_mb=0", "aio:///x?size_mb=-1", "aio:///dev/../etc/passwd",
    "/dev/./sdb", "/dev//sdb", "aio:///dev/sdb?blk_size=512&blk_size=512", "aio:///a\0b", "/x/", "aio:///dev/sdb#f",
    "aio:///dev/sdb?uuid=nope",
])
def test_bad_disk_uris(uri):
    with pytest.raises(InvalidArgument):
        parse(uri)


def test_catalog_round_trip_and_damage(tmp_path):
    dev = tmp_path / "disk"
    dev.write_bytes(bytes(1 << 20))
    assert catalog.read(str(dev)).generation == 0
    c = catalog.Catalog(0, [{"uuid": "u1", "thin_id": 1}])
    catalog.write(str(dev), c)
    c.replicas.append({"uuid": "u2", "thin_id": 2})
    catalog.write(str(dev), c)
    back = catalog.read(str(dev))
    assert back.generation == 2 and [r["uuid"] for r in back.replicas] == ["u1", "u2"]
    # a torn write of the newest slot: the previous generation is still there
    raw = bytearray(dev.read_bytes())
    raw[catalog.SLOTS[0] + 40] ^= 0xFF  # generation 2 lives in slot 0
    dev.write_bytes(bytes(raw))
    back = catalog.read(str(dev))
    assert back.generation == 1 and [r["uuid"] for r in back.replicas] == ["u1"]


def test_catalog_too_big_is_refused():
    big = catalog.Catalog(0, [{"uuid": str(uuid.uuid4()), "n": __import__("os").urandom(200).hex()} for _ in range(5000)])
    with pytest.raises(catalog.CatalogError):
        big.encode()


def test_tags():
    t = Tags("node-1")
    u = str(uuid.uuid4())
    assert t.parse(t.pool(u, "tpool")) == ("pool", u, "tpool")
    assert t.parse(t.thin(u)) == ("thin", u, "")
    assert t.parse(Tags("node-2").thin(u)) is None
    assert t.parse("MAYASTOR-node-1x-thin-" + u) is None
    assert len(Tags("n" * 63).pool(u, "tpool")) < 128  # dm names and uuids are limited to 127 bytes


def test_keyed_locks_are_per_key():
    locks = KeyedLocks()
    inside = threading.Barrier(2, timeout=5)

    def hold(key):
        with locks.hold(key):
            inside.wait()  # both threads are inside their lock at once: different keys don't serialise

    ts = [threading.Thread(target=hold, args=(k,)) for k in ("pool-a", "pool-b")]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    with locks.hold("pool-a"):
        err = []
        t = threading.Thread(target=lambda: _try(locks, "pool-a", err))
        t.start()
        t.join()
        assert isinstance(err[0], DeadlineExceeded)


def _try(locks, key, err):
    try:
        with locks.hold(key, timeout=0.1):
            err.append(None)
    except DeadlineExceeded as exc:
        err.append(exc)


@pytest.mark.parametrize("argv,expected", [
    ([], "[::]:10124"),
    (["-g", "127.0.0.1"], "127.0.0.1:10124"),
    (["-g", "10.0.0.1:1234"], "10.0.0.1:1234"),
    (["-g", "[::1]:99"], "[::1]:99"),
    (["--grpc-ip", "10.1.1.1", "--grpc-port", "5000"], "10.1.1.1:5000"),
])
def test_grpc_address(argv, expected):
    from mayastor.daemon import build_parser
    assert grpc_address(build_parser().parse_args(argv)) == expected


def test_bad_grpc_address():
    from mayastor.daemon import build_parser
    with pytest.raises(ValueError):
        grpc_address(build_parser().parse_args(["-g", "not-an-ip"]))


@pytest.mark.parametrize("host,port,expected", [
    ("10.0.0.1", 10124, "10.0.0.1:10124"), ("fd00::1", 2379, "[fd00::1]:2379"), ("[fd00::1]", 1, "[fd00::1]:1"),
    ("core", "50051", "core:50051"), ("::", 10124, "[::]:10124"),
])
def test_host_port_brackets_ipv6_literals_once(host, port, expected):
    from mayastor.netaddr import host_port
    assert host_port(host, port) == expected
