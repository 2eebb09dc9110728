"""The kernel facts a full rebuild stands on: dm-era reports the blocks written since an era, a
multipath device with no path queues I/O until a path is loaded, and a raid1 recreated from
zeroed metadata with `nosync` takes identical legs as in sync without copying."""

from __future__ import annotations

import os
import threading

from mayastor.kernel import dm, era
from mayastor.kernel.dm_targets import RaidStatus, era_params

from .util import pattern, read_direct, write_direct

S = 512
MiB = 1 << 20


def test_era_tracks_blocks_written_since_an_era(dmc, make_loop, make_dm):
    meta, origin = make_loop(8), make_loop(64)
    dev = make_dm("era", [dm.Target(0, 64 * MiB // S, "era", era_params(meta.path, origin.path, 2048))])
    e0 = era.status(dmc, "mstest-era").current_era
    write_direct(dev.devnode, 3 * MiB, pattern(1, 2 * MiB))  # blocks 3, 4
    e1 = era.checkpoint(dmc, "mstest-era")
    assert e1 > e0
    write_direct(dev.devnode, 10 * MiB + 4096, pattern(2, 4096))  # block 10
    write_direct(dev.devnode, 3 * MiB, pattern(3, 4096))  # block 3 again
    since0 = era.written_since(dmc, "mstest-era", meta.path, e0)
    since1 = era.written_since(dmc, "mstest-era", meta.path, e1)
    print("era", e0, e1, since0, since1)
    assert since0 == [(3, 2), (10, 1)]
    assert since1 == [(3, 1), (10, 1)]
    assert era.status(dmc, "mstest-era").held_root is None  # the snapshot was dropped
    assert read_direct(dev.devnode, 10 * MiB + 4096, 4096) == pattern(2, 4096)


def test_suspended_top_holds_writes_and_delivers_them_to_the_new_table(dmc, make_loop, make_dm):
    """The final step of a full rebuild: the published device is suspended (I/O held, not failed),
    the devices under it change, and the table loaded meanwhile receives the held writes."""
    a, b = make_loop(16), make_loop(16)
    n = 16 * MiB // S
    num = lambda lo: f"{os.major(os.stat(lo.path).st_rdev)}:{os.minor(os.stat(lo.path).st_rdev)}"  # noqa: E731
    mp = "3 queue_if_no_path queue_mode bio 0 1 1 round-robin 0 1 1 {} 1"
    top = make_dm("q", [dm.Target(0, n, "multipath", mp.format(num(a)))])
    dmc.suspend("mstest-q")
    done = threading.Event()
    err: list[BaseException] = []

    def writer():
        try:
            write_direct(top.devnode, MiB, pattern(7, 4096))
        except BaseException as exc:  # noqa: BLE001
            err.append(exc)
        done.set()

    threading.Thread(target=writer, daemon=True).start()
    assert not done.wait(1.0)  # held while suspended
    dmc.load("mstest-q", [dm.Target(0, n, "multipath", mp.format(num(b)))])
    dmc.resume("mstest-q")
    assert done.wait(10) and not err
    assert read_direct(b.path, MiB, 4096) == pattern(7, 4096)
    assert read_direct(a.path, MiB, 4096) == bytes(4096)


def test_raid1_reloaded_from_zeroed_metadata_with_nosync_takes_a_copied_leg_in_sync(dmc, make_loop, make_dm):
    (m0, d0), (m1, d1) = [(make_loop(4), make_loop(32)) for _ in range(2)]
    num = lambda lo: f"{os.major(os.stat(lo.path).st_rdev)}:{os.minor(os.stat(lo.path).st_rdev)}"  # noqa: E731
    n = 32 * MiB // S
    # dm-raid refuses an empty '- -' slot for a device it never had ("New device injected ...");
    # so the array runs without the new child, with a bitmap that has seen writes
    make_dm("r", [dm.Target(0, n, "raid", f"raid1 3 0 region_size 2048 1 {num(m0)} {num(d0)}")])
    raid = dmc.info("mstest-r").devnode
    for i in range(8):
        write_direct(raid, i * 3 * MiB, pattern(i, MiB))
    # the copy brings the new leg level with the old one (I/O held above); then, with the raid
    # suspended, every leg's superblock is zeroed and a table with both legs and nosync swapped in:
    # all legs new, so dm-raid builds a new array and takes them as in sync
    dmc.suspend("mstest-r")
    for off in range(0, 32 * MiB, 4 * MiB):  # past the page cache, as the copier: md wrote d0 with its own bios
        write_direct(d1.path, off, read_direct(d0.path, off, 4 * MiB))
    for m in (m0, m1):
        write_direct(m.path, 0, bytes(4096))
    dmc.load("mstest-r", [dm.Target(0, n, "raid", f"raid1 4 0 region_size 2048 nosync 2 "
                                                  f"{num(m0)} {num(d0)} {num(m1)} {num(d1)}")])
    dmc.resume("mstest-r")
    st = RaidStatus.parse(dmc.status("mstest-r")[0].params)
    print("raid", st)
    assert st.health == "AA" and st.in_sync and st.sync_current == st.sync_total
    write_direct(raid, 0, pattern(9, 4096))
    assert read_direct(d1.path, 0, 4096) == pattern(9, 4096) == read_direct(d0.path, 0, 4096)
    dmc.message("mstest-r", "check")
    for _ in range(300):
        st = RaidStatus.parse(dmc.status("mstest-r")[0].params)
        if st.sync_action == "idle":
            break
        threading.Event().wait(0.1)
    assert st.sync_action == "idle" and st.mismatch_cnt == 0
    # a second activation reads the new superblocks: both legs still in sync, nothing to resync
    dmc.suspend("mstest-r")
    dmc.load("mstest-r", [dm.Target(0, n, "raid", f"raid1 3 0 region_size 2048 2 "
                                                  f"{num(m0)} {num(d0)} {num(m1)} {num(d1)}")])
    dmc.resume("mstest-r")
    st = RaidStatus.parse(dmc.status("mstest-r")[0].params)
    assert st.health == "AA" and st.in_sync
