"""The Cython copier and scanner on regular files (pure logic: chunking, zero skipping, digests),
and the driver's pacing, pause/stop and checkpoint resume. Block devices are covered in the VM."""

import hashlib
import os
import struct
import threading
import time

import pytest

from mayastor._native._buffer import AlignedBuffer
from mayastor._native import copy as ncopy
from mayastor._native import scan as nscan
from mayastor.pool.allocation import clip_extents, merge_extents, parse_thin_dump
from mayastor.rebuild.copier import CopyJob, Stopped, remaining_extents

MiB = 1 << 20


def _file(path, size, writes=()):
    with open(path, "wb") as f:
        f.truncate(size)
        for off, data in writes:
            f.seek(off)
            f.write(data)
    return str(path)


def _sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_buffer_must_be_aligned_multiple():
    with pytest.raises(ValueError):
        AlignedBuffer(1000)
    assert len(AlignedBuffer(MiB)) == MiB


def test_copy_range_skips_zero_chunks_and_copies_the_rest(tmp_path):
    src = _file(tmp_path / "s", 8 * MiB, [(3 * MiB + 5, os.urandom(100_000)), (8 * MiB - 10, b"x" * 10)])
    dst = _file(tmp_path / "d", 8 * MiB)
    buf = AlignedBuffer(MiB)
    s, d = os.open(src, os.O_RDONLY), os.open(dst, os.O_RDWR)
    try:
        read, written = ncopy.copy_range(s, d, 0, 8 * MiB, buf, True)
    finally:
        os.close(s), os.close(d)
    assert read == 8 * MiB and written == 2 * MiB  # two 1 MiB chunks hold data
    assert _sha(src) == _sha(dst)


def test_copy_range_without_skip_writes_everything(tmp_path):
    src = _file(tmp_path / "s", 4 * MiB)
    dst = _file(tmp_path / "d", 4 * MiB, [(0, b"\xff" * (4 * MiB))])
    buf = AlignedBuffer(MiB)
    s, d = os.open(src, os.O_RDONLY), os.open(dst, os.O_RDWR)
    try:
        assert ncopy.copy_range(s, d, MiB, 2 * MiB, buf, False) == (2 * MiB, 2 * MiB)
    finally:
        os.close(s), os.close(d)
    data = open(dst, "rb").read()
    assert data[:MiB] == b"\xff" * MiB and data[MiB:3 * MiB] == bytes(2 * MiB) and data[3 * MiB:] == b"\xff" * MiB


def test_copy_range_reports_failing_side(tmp_path):
    src = _file(tmp_path / "s", MiB, [(0, b"a")])
    buf = AlignedBuffer(MiB)
    s = os.open(src, os.O_RDONLY)
    ro = os.open(src, os.O_RDONLY)
    try:
        with pytest.raises(OSError) as err:
            ncopy.copy_range(s, ro, 0, MiB, buf, True)
        assert "write destination at byte 0" in str(err.value)
    finally:
        os.close(s), os.close(ro)


def test_all_zero_finds_a_single_bit():
    buf = AlignedBuffer(MiB)
    ncopy.fill(buf, bytes(MiB))
    assert ncopy.all_zero(buf, MiB)
    ncopy.fill(buf, b"\x01", MiB - 1)
    assert not ncopy.all_zero(buf, MiB) and ncopy.all_zero(buf, MiB - 1)


def test_scan_digests_per_segment_match_digest_of_bytes(tmp_path):
    data = os.urandom(5 * MiB + 4096)
    path = _file(tmp_path / "s", len(data), [(0, data)])
    buf = AlignedBuffer(MiB)
    fd = os.open(path, os.O_RDONLY)
    try:
        out = nscan.scan_range(fd, 0, len(data), 2 * MiB, buf)  # segments larger than the buffer
        by_algo = {a: nscan.scan_range(fd, 0, len(data), 2 * MiB, buf, a) for a in nscan.ALGORITHMS}
        tiny = nscan.scan_range(fd, 8192, MiB + 4096, 4096, buf)  # many segments in one read
        odd = nscan.scan_range(fd, 4096, 3 * MiB, 512 * 1024, buf)  # smaller, at an offset
        with pytest.raises(OSError):
            nscan.scan_range(fd, 0, len(data) + 1, MiB, buf)
    finally:
        os.close(fd)
    got = struct.unpack(f"<{len(out) // 8}Q", out)
    want = [nscan.digest_bytes(data[i:i + 2 * MiB]) for i in range(0, len(data), 2 * MiB)]
    assert list(got) == want and len(want) == 3
    assert list(struct.unpack(f"<{257 * 1}Q", tiny[:257 * 8])) == [
        nscan.digest_bytes(data[8192 + i * 4096:8192 + (i + 1) * 4096]) for i in range(257)]
    assert len(tiny) == 257 * 8
    for a, raw in by_algo.items():
        assert list(struct.unpack("<3Q", raw)) == [nscan.digest_bytes(data[i:i + 2 * MiB], a)
                                                   for i in range(0, len(data), 2 * MiB)]
    got = struct.unpack("<6Q", odd)
    assert list(got) == [nscan.digest_bytes(data[4096 + i * 512 * 1024:4096 + (i + 1) * 512 * 1024]) for i in range(6)]
    assert nscan.digest_bytes(b"a") != nscan.digest_bytes(b"b")


def test_digest_algorithms_known_values():
    assert nscan.DEFAULT == "xxh64"
    assert nscan.digest_bytes(b"") == 0xEF46DB3751D8E999  # XXH64, seed 0
    assert nscan.digest_bytes(b"", "xxh3") == 0x2D06800538D394C2  # XXH3-64, seed 0
    assert len({nscan.digest_bytes(b"abc", a) for a in nscan.ALGORITHMS}) == 3


def _crc32c_bitwise(data: bytes) -> int:
    """The textbook bit-at-a-time CRC-32C, the reference the native code is held to."""
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


@pytest.mark.parametrize("hardware", [True, False])
def test_crc32c_known_values_and_both_implementations(hardware):
    used = nscan.crc32c_hardware(hardware)
    try:
        assert used == (hardware and used)  # the table code when asked; the instruction if the CPU has it
        # RFC 3720 B.4 and the common check value
        assert nscan.digest_bytes(bytes(32), "crc32c") == 0x8A9136AA
        assert nscan.digest_bytes(b"\xff" * 32, "crc32c") == 0x62A8AB43
        assert nscan.digest_bytes(bytes(range(32)), "crc32c") == 0x46DD794E
        assert nscan.digest_bytes(b"123456789", "crc32c") == 0xE3069283
        data = os.urandom(4099)
        for n in (0, 1, 7, 8, 9, 63, 4099):  # tails shorter than a word
            assert nscan.digest_bytes(data[:n], "crc32c") == _crc32c_bitwise(data[:n])
        # the running value continues across calls
        part = nscan.crc32c(data[:1000])
        assert nscan.crc32c(data[1000:], part) ^ nscan.CRC32C_XOR == _crc32c_bitwise(data)
    finally:
        nscan.crc32c_hardware(True)


def test_crc32c_of_a_range_and_per_segment(tmp_path):
    data = os.urandom(3 * MiB + 512)
    path = _file(tmp_path / "c", len(data) + MiB, [(MiB, data)])
    buf = AlignedBuffer(MiB)
    fd = os.open(path, os.O_RDONLY)
    try:
        crc = nscan.CRC32C_INITIAL
        for off in range(0, len(data), 1536 * 1024):  # chunks not a multiple of the buffer
            n = min(1536 * 1024, len(data) - off)
            crc = nscan.crc32c_range(fd, MiB + off, n, buf, crc)
        segs = nscan.scan_range(fd, MiB, len(data), MiB, buf, "crc32c")
        with pytest.raises(OSError):
            nscan.crc32c_range(fd, MiB, len(data) + MiB + 1, buf)
        with pytest.raises(ValueError):
            nscan.scan_range(fd, 0, MiB, MiB, buf, "md5")
    finally:
        os.close(fd)
    assert crc ^ nscan.CRC32C_XOR == nscan.digest_bytes(data, "crc32c")
    got = struct.unpack("<4Q", segs)
    assert list(got) == [nscan.digest_bytes(data[i:i + MiB], "crc32c") for i in range(0, len(data), MiB)]


def test_thin_dump_xml_to_byte_extents():
    xml = """<superblock uuid="" time="1" transaction="3" data_block_size="128" nr_data_blocks="100">
      <device dev_id="1" mapped_blocks="5" transaction="0" creation_time="0" snap_time="1">
        <range_mapping origin_begin="0" data_begin="10" length="2" time="0"/>
        <single_mapping origin_block="2" data_block="40" time="1"/>
        <single_mapping origin_block="9" data_block="41" time="1"/>
      </device>
      <device dev_id="2" mapped_blocks="1" transaction="0" creation_time="0" snap_time="1">
        <single_mapping origin_block="5" data_block="3" time="0"/>
      </device></superblock>"""
    block, ext = parse_thin_dump(xml, 1)
    assert block == 64 * 1024
    assert ext == [(0, 3 * 64 * 1024), (9 * 64 * 1024, 64 * 1024)]
    assert parse_thin_dump(xml, 7)[1] == []
    assert clip_extents(ext, 9 * 64 * 1024 + 100) == [(0, 3 * 64 * 1024), (9 * 64 * 1024, 100)]
    assert merge_extents([(10, 5), (0, 10), (12, 1), (30, 0)]) == [(0, 15)]


def test_remaining_extents_from_a_checkpoint():
    ext = [(0, 10), (20, 10), (40, 5)]
    assert remaining_extents(ext, 0) == ext
    assert remaining_extents(ext, 25) == [(25, 5), (40, 5)]
    assert remaining_extents(ext, 45) == []


def test_job_stops_checkpoints_and_resumes_to_an_identical_copy(tmp_path):
    size = 64 * MiB
    src = _file(tmp_path / "s", size, [(i * 4 * MiB, os.urandom(MiB)) for i in range(16)])
    dst = _file(tmp_path / "d", size)
    checkpoints = []
    job = CopyJob(src, dst, [(0, size)], direct=False, rate=64 * MiB, checkpoint_every=0.05,
                  on_checkpoint=lambda p: checkpoints.append(p.position))
    t = threading.Thread(target=lambda: pytest.raises(Stopped, job.run))
    t.start()
    time.sleep(0.3)
    job.pause()
    assert job.parked.wait(10)
    paused_at = job.progress.position
    assert checkpoints[-1] == paused_at  # a pause checkpoints
    time.sleep(0.3)
    assert job.progress.position == paused_at  # nothing moves while paused
    job.stop()
    t.join(10)
    assert not t.is_alive()
    mid = checkpoints[-1]
    assert 0 < mid < size
    again = CopyJob(src, dst, [(0, size)], direct=False, start=mid)
    p = again.run()
    assert p.read == size - mid and p.position == size
    assert _sha(src) == _sha(dst)
