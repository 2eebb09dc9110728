"""Which paths may be opened for writing: the file rules (block devices are checked in the VM,
tests/kernel/test_safety.py). Nothing here opens anything for writing."""

import os

import pytest

from mayastor.errors import InvalidArgument, NotFound
from mayastor.paths import PathPolicy

MiB = 1 << 20


@pytest.fixture
def disks(tmp_path):
    d = tmp_path / "disks"
    d.mkdir()
    return d


def check(policy, path, create=False, min_bytes=MiB):
    return policy.check(str(path), "disk", min_bytes, "MAYASTOR-n-pool-", create=create)


def test_files_under_the_disk_dirs_only(disks, tmp_path):
    policy = PathPolicy.of([str(disks)])
    good = disks / "a.img"
    with open(good, "wb") as f:
        f.truncate(8 * MiB)
    assert check(policy, good).kind == "file"
    sub = disks / "sub"
    sub.mkdir()
    assert check(policy, sub / "new.img", create=True).exists is False
    assert not (sub / "new.img").exists()
    outside = tmp_path / "b.img"
    with open(outside, "wb") as f:
        f.truncate(8 * MiB)
    with pytest.raises(InvalidArgument, match="--disk-dir"):
        check(policy, outside)
    with pytest.raises(InvalidArgument, match="--disk-dir"):
        check(policy, tmp_path / "missing.img", create=True)
    with pytest.raises(InvalidArgument, match="--disk-dir"):
        check(PathPolicy(), good)  # no directories configured: no files at all


def test_links_sizes_and_special_files(disks, tmp_path):
    policy = PathPolicy.of([str(disks)])
    (disks / "to-passwd").symlink_to("/etc/passwd")
    with pytest.raises(InvalidArgument):
        check(policy, disks / "to-passwd")
    victim = tmp_path / "victim.img"
    with open(victim, "wb") as f:
        f.truncate(8 * MiB)
    os.link(victim, disks / "hard.img")
    with pytest.raises(InvalidArgument, match="hard links"):
        check(policy, disks / "hard.img")
    tiny = disks / "tiny.img"
    tiny.write_bytes(b"x" * 1000)
    with pytest.raises(InvalidArgument, match="1000 bytes"):
        check(policy, tiny)
    for path in ("/proc/sys/kernel/core_pattern", "/sys/kernel/mm", "/proc/self/mem"):
        with pytest.raises(InvalidArgument, match="never holds disks"):
            check(policy, path)
    for path in ("/dev/null", "/dev/zero", "/etc"):
        with pytest.raises(InvalidArgument):
            check(policy, path)
    # NOT_FOUND: the agent deletes the spec of a pool whose disk is not there (io-engine's
    # "Failed to create a BDEV" means the same to it)
    with pytest.raises(NotFound):
        check(policy, "/dev/no-such-disk")
    with pytest.raises(NotFound):
        check(policy, disks / "missing.img")  # in a disk dir, but nothing asked to create it


@pytest.mark.parametrize("bad", ["relative", "/", "/dev", "/dev/shm", "/proc", "/sys/fs"])
def test_disk_dirs_themselves_are_checked(bad):
    with pytest.raises(ValueError):
        PathPolicy.of([bad])
