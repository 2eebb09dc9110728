#!/usr/bin/env python3
"""Rebuild and scan benchmark (prints ratios measured side by side in one run, asserts nothing).
Run natively as root on a kernel with dm-thin/dm-raid, or in the test VM:

    VM_TIMEOUT=1800 scripts/vm-run --memory 8G -- .venv/bin/python bench/rebuild.py

Everything lives on RAM-backed files (tmpfs under /run) so the devices, not a disk, are measured:
  1. copier vs `dd iflag=direct oflag=direct bs=1M`, same source and destination loop devices;
  2. scanner vs `dd iflag=direct bs=1M of=/dev/null` raw read of the same device; scanner in memory;
  3. thin-aware copy (mapping + zero skip) vs full copy of a 1 GiB thin volume holding 100 MiB;
  4. the kernel's md recovery of the same 1 GiB (dm-raid `rebuild 1`, default rate limits) as reference.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from mayastor._native._buffer import AlignedBuffer  # noqa: E402
from mayastor._native.copy import fill  # noqa: E402
from mayastor._native.scan import ALGORITHMS, crc32c_hardware, digest_buffer, scan_range  # noqa: E402
from mayastor.kernel import dm, loop  # noqa: E402
from mayastor.kernel.dm_targets import RaidStatus, ThinStatus, thin_params, thin_pool_params  # noqa: E402
from mayastor.pool.allocation import mapped_extents  # noqa: E402
from mayastor.rebuild.copier import CopyJob  # noqa: E402

MiB = 1 << 20
SECT = 512
PREFIX = "bench-rb-"


def timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    r = fn()
    return time.perf_counter() - t, r


def sparse(path: str, size: int) -> str:
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def dd(*args: str) -> None:
    subprocess.run(["dd", "bs=1M", "status=none", *args], check=True)


def best(fn, runs: int) -> float:
    return min(timed(fn)[0] for _ in range(runs))


def scan(dev: str, size: int, algorithm: str = "xxh64", read: int = 4 * MiB) -> bytes:
    fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
    try:
        return scan_range(fd, 0, size, 4 * MiB, AlignedBuffer(read), algorithm)
    finally:
        os.close(fd)


def raw_devices(work: str, size: int, runs: int, loops: list) -> None:
    src = loop.attach(sparse(f"{work}/raw-src.img", size))
    dst = loop.attach(sparse(f"{work}/raw-dst.img", size))
    loops += [src, dst]
    dd("if=/dev/urandom", f"of={src.path}", f"count={size // MiB}", "oflag=direct")
    n = size // MiB
    t_dd = best(lambda: dd(f"if={src.path}", f"of={dst.path}", f"count={n}", "iflag=direct", "oflag=direct"), runs)
    t_cp = best(lambda: CopyJob(src.path, dst.path, [(0, size)], skip_zero=False).run(), runs)
    t_dr = best(lambda: dd(f"if={src.path}", "of=/dev/null", f"count={n}", "iflag=direct"), runs)
    print(f"copier vs dd (O_DIRECT, 1 MiB, {n} MiB loop->loop): copier {n / t_cp:7.0f} MiB/s, "
          f"dd {n / t_dd:7.0f} MiB/s, ratio {t_dd / t_cp:5.2f} (goal >= 0.9)")
    # 4 MiB reads as mayastor/health/digests.py scans; 1 MiB (dd's block size here) for comparison
    for algorithm, read in [(a, 4 * MiB) for a in ALGORITHMS] + [("xxh64", MiB)]:
        t_sc = best(lambda: scan(src.path, size, algorithm, read), runs)
        print(f"scanner ({algorithm:6}, {read >> 20} MiB reads) vs dd raw read ({n} MiB): scanner {n / t_sc:6.0f} "
              f"MiB/s, dd {n / t_dr:7.0f} MiB/s, ratio {t_dr / t_sc:5.2f} (goal >= 0.9)")
    buf = AlignedBuffer(64 * MiB)
    with open("/dev/urandom", "rb") as r:  # real data: untouched pages would all be one zero page in cache
        for i in range(64):
            fill(buf, r.read(MiB), i * MiB)
    for algorithm in ALGORITHMS:
        t_mem = best(lambda: [digest_buffer(buf, 64 * MiB, algorithm) for _ in range(16)], runs)
        print(f"scanner in memory ({algorithm}, 1 GiB through a 64 MiB buffer): {1 / t_mem:5.2f} GiB/s"
              + (f", CPU instruction: {crc32c_hardware(True)}" if algorithm == "crc32c" else ""))


def thin_devices(ctl: dm.DeviceMapper, work: str, runs: int, loops: list, made: list, md_limit: float) -> None:
    vol = 1024 * MiB
    meta = loop.attach(sparse(f"{work}/tmeta.img", 64 * MiB))
    data = loop.attach(sparse(f"{work}/tdata.img", 3 * vol))
    loops += [meta, data]
    pool = PREFIX + "pool"

    def mk(name: str, table: list[dm.Target]) -> dm.DeviceInfo:
        ctl.create(PREFIX + name)
        made.append(PREFIX + name)
        ctl.load(PREFIX + name, table)
        info = ctl.resume(PREFIX + name)
        dm.devnode(info.minor)
        return info

    pinfo = mk("pool", [dm.Target(0, 3 * vol // SECT, "thin-pool", thin_pool_params(meta.path, data.path, 128))])
    ids = iter(range(1, 1000))

    def thin() -> tuple[str, int]:
        i = next(ids)
        ctl.message(pool, f"create_thin {i}")
        return mk(f"t{i}", [dm.Target(0, vol // SECT, "thin", thin_params(pinfo.devnum, i))]).devnode, i

    def drop(dev: str, i: int) -> None:
        name = PREFIX + f"t{i}"
        ctl.remove(name)
        made.remove(name)
        ctl.message(pool, f"delete {i}")

    src, sid = thin()
    with open("/dev/urandom", "rb") as r:
        chunk = r.read(MiB)
    fd = os.open(src, os.O_WRONLY)
    for k in range(100):  # 100 MiB spread over the volume
        os.pwrite(fd, chunk, (k * 10 + 1) * MiB)
    os.fsync(fd)
    os.close(fd)
    mapped = lambda i: ThinStatus.parse(ctl.status(PREFIX + f"t{i}")[0].params).mapped_sectors * SECT  # noqa: E731
    src_mapped = mapped(sid)
    want = scan(src, vol)
    results = {}
    for label, fn in (
        ("thin-aware (mapping + zero skip)", lambda d: CopyJob(src, d, mapped_extents(ctl, pool, meta.path, sid, vol)).run()),
        ("zero skip only (no mapping)", lambda d: CopyJob(src, d, [(0, vol)]).run()),
        ("full copy (no skipping)", lambda d: CopyJob(src, d, [(0, vol)], skip_zero=False).run()),
    ):
        times = []
        for _ in range(runs):
            dst, did = thin()
            t, _ = timed(lambda: fn(dst))
            times.append(t)
            alloc = mapped(did)
            same = scan(dst, vol) == want
            drop(dst, did)
        results[label] = min(times)
        print(f"{label:34} {min(times):6.2f} s  target allocated {alloc / MiB:6.0f} MiB "
              f"({alloc / src_mapped * 100:5.1f} % of source)  identical={same}")
    full = results["full copy (no skipping)"]
    print(f"thin-aware / full copy time: {results['thin-aware (mapping + zero skip)'] / full:5.3f} (goal <= 0.2)")

    # the kernel's own recovery of the same volume onto a fresh thin target, for reference
    dst, did = thin()
    m0 = loop.attach(sparse(f"{work}/rmeta0.img", 4 * MiB))
    m1 = loop.attach(sparse(f"{work}/rmeta1.img", 4 * MiB))
    loops += [m0, m1]
    dev = lambda p: f"{os.major(os.stat(p).st_rdev)}:{os.minor(os.stat(p).st_rdev)}"  # noqa: E731
    mk("raid", [dm.Target(0, vol // SECT, "raid", f"raid1 3 0 region_size 2048 1 {dev(m0.path)} {dev(src)}")])
    ctl.suspend(PREFIX + "raid")
    ctl.load(PREFIX + "raid", [dm.Target(0, vol // SECT, "raid",
             f"raid1 5 0 region_size 2048 rebuild 1 2 {dev(m0.path)} {dev(src)} {dev(m1.path)} {dev(dst)}")])
    t0 = time.perf_counter()
    ctl.resume(PREFIX + "raid")
    while True:
        st = RaidStatus.parse(ctl.status(PREFIX + "raid")[0].params)
        t_md = time.perf_counter() - t0
        if st.in_sync or t_md > md_limit:
            break
        time.sleep(0.2)
    if "D" in st.health:
        raise RuntimeError(f"md recovery failed: leg health {st.health} (see dmesg)")
    done = 1.0 if st.in_sync else st.progress
    if done < 1.0:  # md is slow here: give the rate it reached rather than wait it out
        print(f"kernel md recovery: {done * 100:5.1f} % of 1 GiB after {t_md:5.0f} s ({st.sync_action}); "
              f"at that rate the whole would take {t_md / max(done, 1e-6):6.0f} s")
        t_md = t_md / max(done, 1e-6)
    else:
        print(f"kernel md recovery of the same 1 GiB (default rate limits): {t_md:6.2f} s")
    print(f"  target allocated {mapped(did) / MiB:6.0f} MiB; thin-aware copy is "
          f"{t_md / results['thin-aware (mapping + zero skip)']:5.1f}x faster than md's recovery")
    ctl.remove(PREFIX + "raid")
    made.remove(PREFIX + "raid")
    drop(dst, did)


def main() -> int:
    sys.stdout.reconfigure(line_buffering=True)  # results appear as measured, even if the VM times out
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=512, help="size of the raw copy/scan devices")
    ap.add_argument("--runs", type=int, default=3, help="best of N for each timing")
    ap.add_argument("--md-seconds", type=float, default=180, help="how long to let md recover before extrapolating")
    ap.add_argument("--raw-only", action="store_true", help="only the copier/scanner vs dd part")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="bench-rebuild-", dir="/run" if os.path.isdir("/run") else None)
    # our own RAM-backed filesystem: /run's default tmpfs (half the RAM) is too small for 1 GiB copies
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6g", "bench", work], check=True)
    loops: list = []
    made: list[str] = []
    with dm.DeviceMapper() as ctl:
        try:
            raw_devices(work, args.size_mib * MiB, args.runs, loops)
            for lo in loops:  # free their RAM before the thin part
                loop.detach(lo)
            loops.clear()
            for f in ("raw-src.img", "raw-dst.img"):
                os.unlink(os.path.join(work, f))
            if not args.raw_only:
                thin_devices(ctl, work, args.runs, loops, made, args.md_seconds)
        finally:
            for name in reversed(made):
                ctl.remove(name)
            for lo in loops:
                loop.detach(lo)
            subprocess.run(["umount", work])
            subprocess.run(["rm", "-rf", work])
    return 0


if __name__ == "__main__":
    sys.exit(main())
