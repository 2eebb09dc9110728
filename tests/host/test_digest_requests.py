"""Digest request validation and per-segment scans of a file (the VM runs them on devices)."""

import os

import pytest

from mayastor._native.scan import digest_bytes
from mayastor.errors import InvalidArgument
from mayastor.health import digests

MiB = 1 << 20


def test_request_parsing_and_bounds():
    assert digests.parse_request({"length": MiB}) == (0, MiB, MiB, "xxh64")
    assert digests.check_range(4096, 3 * MiB, MiB, 4 * MiB, "crc32c") == 3
    for bad in ({"length": -1}, {"length": "1"}, {"length": True}, {}, {"length": 1, "algorithm": 3}):
        with pytest.raises(InvalidArgument):
            digests.parse_request(bad)
    for args in ((0, MiB, 0, MiB, "xxh3"), (100, MiB, MiB, 4 * MiB, "xxh3"), (0, MiB, 1000, MiB, "xxh3"),
                 (0, 128 * MiB, 128 * MiB, 1 << 30, "xxh3"),
                 (0, 2 * MiB, MiB, MiB, "xxh3"), (0, MiB, MiB, MiB, "sha1"),
                 (0, 65537 * 512, 512, 1 << 40, "xxh3")):
        with pytest.raises(InvalidArgument):
            digests.check_range(*args)


def test_scan_of_a_file_matches_digests_of_its_bytes(tmp_path):
    data = os.urandom(3 * MiB)
    f = tmp_path / "d"
    f.write_bytes(data)
    got = digests.scan(str(f), MiB, 2 * MiB, 512 * 1024, "crc32c")
    assert got == [digest_bytes(data[o:o + 512 * 1024], "crc32c") for o in range(MiB, 3 * MiB, 512 * 1024)]
