"""WipeReplica's chunk plan and method checks (pure logic; the wipes themselves run in the VM)."""

import pytest

from mayastor.errors import InvalidArgument
from mayastor.health import wipe

MiB = 1 << 20


def test_whole_replica_is_one_chunk_when_no_chunk_size():
    p = wipe.plan("u", 64 * MiB, 0, 512)
    assert (p.chunk_size, p.last_chunk_size, p.total_chunks) == (64 * MiB, 64 * MiB, 1)
    assert list(wipe.chunks(p)) == [(0, 64 * MiB)]


def test_last_chunk_takes_the_remainder():
    p = wipe.plan("u", 10 * MiB, 4 * MiB, 512)
    assert (p.chunk_size, p.last_chunk_size, p.total_chunks) == (4 * MiB, 2 * MiB, 3)
    assert list(wipe.chunks(p)) == [(0, 4 * MiB), (4 * MiB, 4 * MiB), (8 * MiB, 2 * MiB)]
    assert p.remaining_bytes == 10 * MiB


@pytest.mark.parametrize("total,chunk,block,why", [
    (0, 0, 512, "no size"),
    (MiB, 2 * MiB, 512, "larger"),
    (MiB, 1000, 512, "multiple"),
    (MiB + 512, 4096, 4096, "multiple"),  # whole chunks, but a last one that is not whole blocks
    (1024 * MiB, MiB, 512, "Too many"),
])
def test_bad_chunking_is_refused(total, chunk, block, why):
    with pytest.raises(InvalidArgument, match=why):
        wipe.plan("u", total, chunk, block)


def test_methods():
    assert wipe.check_method(wipe.CHECKSUM, wipe.CRC32C) == wipe.CHECKSUM
    with pytest.raises(InvalidArgument, match="not implemented"):
        wipe.check_method(wipe.WRITE_PATTERN)
    with pytest.raises(InvalidArgument, match="Invalid"):
        wipe.check_method(9)
    with pytest.raises(InvalidArgument, match="Crc32c only"):
        wipe.check_method(wipe.CHECKSUM, 3)


def test_checksum_run_over_a_file_reports_running_then_final_crc(tmp_path):
    import os
    from mayastor._native.scan import CRC32C_XOR, crc32c, digest_bytes
    data = os.urandom(3 * MiB)
    f = tmp_path / "r"
    f.write_bytes(data)
    p = wipe.plan("u", len(data), MiB, 512)
    seen = [(x.wiped_chunks, x.crc32) for x in wipe.run(str(f), wipe.CHECKSUM, p, lambda: False)]
    assert seen[0] == (0, None)
    assert seen[1] == (1, crc32c(data[:MiB]))  # running, not inverted (as io-engine streams it)
    assert seen[-1] == (3, digest_bytes(data, "crc32c"))
    assert seen[-1][1] == crc32c(data) ^ CRC32C_XOR
    p = wipe.plan("u", len(data), MiB, 512)
    assert len(list(wipe.run(str(f), wipe.CHECKSUM, p, lambda: True))) == 1  # cancelled: stops at once
