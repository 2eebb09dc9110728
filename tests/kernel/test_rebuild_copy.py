"""The Cython copier and scanner on real dm-thin volumes: thin-aware copy (mapping from a metadata
snapshot, zero chunks skipped) keeps the target thin and identical; pause/stop/resume on devices."""

from __future__ import annotations

import os
import threading

import pytest

from mayastor._native._buffer import AlignedBuffer
from mayastor._native.scan import scan_range
from mayastor.kernel import block, dm
from mayastor.kernel.dm_targets import ThinStatus, thin_params, thin_pool_params
from mayastor.pool.allocation import mapped_extents
from mayastor.rebuild.copier import CopyJob, Stopped

from .util import pattern, write_direct

MiB = 1 << 20
SECT = 512
VOL = 256 * MiB
BLOCK = 64 * 1024  # thin data block


def _digests(dev: str, size: int) -> bytes:
    fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
    try:
        return scan_range(fd, 0, size, 4 * MiB, AlignedBuffer(MiB))
    finally:
        os.close(fd)


def _mapped(dmc, name: str) -> int:
    return ThinStatus.parse(dmc.status(name)[0].params).mapped_sectors * SECT


@pytest.fixture
def thin_pool(dmc, make_loop, make_dm):
    meta, data = make_loop(16), make_loop(768)
    pool = make_dm("cpool", [dm.Target(0, 768 * MiB // SECT, "thin-pool",
                                       thin_pool_params(meta.path, data.path, BLOCK // SECT))])

    def volume(thin_id: int) -> dm.DeviceInfo:
        dmc.message("mstest-cpool", f"create_thin {thin_id}")
        return make_dm(f"cvol{thin_id}", [dm.Target(0, VOL // SECT, "thin", thin_params(pool.devnum, thin_id))])

    return meta, volume


def test_thin_aware_copy_keeps_target_thin_and_identical(dmc, thin_pool):
    meta, volume = thin_pool
    src, thin_dst, full_dst = volume(1), volume(2), volume(3)
    # 24 MiB of data in 1 MiB pieces across the volume, plus one block of zeros written explicitly
    for i in range(24):
        write_direct(src.devnode, (i * 10 + 3) * MiB, pattern(i, MiB))
    write_direct(src.devnode, 250 * MiB, bytes(MiB))
    src_mapped = _mapped(dmc, "mstest-cvol1")
    assert src_mapped == 25 * MiB

    extents = mapped_extents(dmc, "mstest-cpool", meta.path, 1, VOL)
    assert sum(n for _, n in extents) == src_mapped
    assert extents[0] == (3 * MiB, MiB)
    # the held metadata snapshot was released: a second reservation works
    dmc.message("mstest-cpool", "reserve_metadata_snap")
    dmc.message("mstest-cpool", "release_metadata_snap")

    p = CopyJob(src.devnode, thin_dst.devnode, extents).run()
    assert p.read == src_mapped and p.written == 24 * MiB  # the zero block is read, not written
    assert _mapped(dmc, "mstest-cvol2") <= 1.1 * src_mapped
    full = CopyJob(src.devnode, full_dst.devnode, [(0, VOL)], skip_zero=False).run()
    assert full.written == VOL and _mapped(dmc, "mstest-cvol3") == VOL
    want = _digests(src.devnode, VOL)
    assert _digests(thin_dst.devnode, VOL) == want == _digests(full_dst.devnode, VOL)
    # a changed block changes exactly its segment's digest
    write_direct(thin_dst.devnode, 9 * MiB, pattern(99, 4096))
    got = _digests(thin_dst.devnode, VOL)
    diff = [i for i in range(0, len(got), 8) if got[i:i + 8] != want[i:i + 8]]
    assert diff == [(9 * MiB // (4 * MiB)) * 8]


def test_pause_stop_and_resume_from_checkpoint_on_devices(dmc, thin_pool):
    _, volume = thin_pool
    src, dst = volume(4), volume(5)
    for i in range(0, 256, 8):
        write_direct(src.devnode, i * MiB, pattern(i, MiB))
    checkpoints: list[int] = []
    job = CopyJob(src.devnode, dst.devnode, [(0, VOL)], rate=32 * MiB, checkpoint_every=0.1,
                  on_checkpoint=lambda p: checkpoints.append(p.position))
    err: list[BaseException] = []

    def run():
        try:
            job.run()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            err.append(exc)

    t = threading.Thread(target=run)
    t.start()
    while not checkpoints:
        t.join(0.05)
    job.pause()
    assert job.parked.wait(30)
    at = job.progress.position
    assert 0 < at < VOL and checkpoints[-1] == at
    job.resume()
    while job.progress.position == at:
        t.join(0.05)
    job.stop()
    t.join(60)
    assert len(err) == 1 and isinstance(err[0], Stopped)
    mid = checkpoints[-1]
    assert at < mid < VOL
    rest = CopyJob(src.devnode, dst.devnode, [(0, VOL)], start=mid).run()
    assert rest.read == VOL - mid
    assert _digests(dst.devnode, VOL) == _digests(src.devnode, VOL)
    assert block.size_bytes(dst.devnode) == VOL
