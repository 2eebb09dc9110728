"""The dm devices of one nexus, bottom up:

    meta file     ── <nexus>-<cid>-meta   dm-linear over a loop device of a 4 MiB file on this node
                                          (<meta dir>/<nexus>-<cid>.meta): dm-raid superblock +
                                          write-intent bitmap
    child device  ── <nexus>-<cid>-data   dm-linear over the whole child: a nexus of size S runs on
                                          children of exactly S bytes (the control plane sizes
                                          replicas at the volume size)

Nexuses created before the metadata moved to the nexus's node (``meta_local`` false in SQLite)
keep it inline: ``-meta`` = the child's first 4 MiB, ``-data`` = the rest.
    <nexus>-raid                          dm-raid raid1 over the (meta, data) pairs, slot = child position
    <nexus>-era                           dm-era over the raid, only while a full rebuild copies: it
                                          records which blocks were written during the copy
    <nexus>                               dm-multipath (bio mode, queue_if_no_path) over the era or raid:
                                          the published device. When no healthy child is left the raid
                                          errors I/O; multipath then fails its only path and *queues* I/O
                                          instead of failing it (Mayastor freezes the nexus likewise).

All names carry the ownership tag, so reconcile can find and remove leftovers.
"""

from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass

from ..kernel import block, dm, loop
from ..kernel.block import SECTOR
from ..kernel.dm import ensure, remove
from ..kernel.dm_targets import Raid1Table, RaidStatus, era_params
from ..naming import Tags

META_SECTORS = 8192  # 4 MiB reserved at the start of every child (architecture.md)
META_BYTES = META_SECTORS * SECTOR
RAID_MAGIC = (0x64526D44).to_bytes(4, "little")  # dm_raid_superblock.magic ("DmRd")
DEFAULT_REGION_SECTORS = 2048  # 1 MiB bitmap regions: the granularity of a partial resync
ERA_BLOCK_SECTORS = 2048  # 1 MiB: what one write makes the full rebuild copy again


def region_sectors_for(length: int) -> int:
    """1 MiB, or the next power of two keeping the bitmap within md's 2^21 regions; never more
    than the device (dm-raid refuses a region larger than its length: a nexus below 1 MiB gets
    the largest power of two that fits)."""
    if length < DEFAULT_REGION_SECTORS:
        return 1 << (max(length, 1).bit_length() - 1)
    need = -(-length // (1 << 21))
    size = DEFAULT_REGION_SECTORS
    while size < need:
        size <<= 1
    return size


@dataclass(frozen=True)
class Leg:
    cid: int
    meta: str  # major:minor of the meta linear device
    data: str


def _devnum(path: str) -> str:
    major, minor = block.devnum(path)
    return f"{major}:{minor}"


def release_meta_file(path: str) -> None:
    """Detach the loop devices over a leg's metadata file and delete it (gone already: fine)."""
    for lo in loop.find_by_file(path):
        loop.detach(lo)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class NexusStack:
    era_block_bytes = ERA_BLOCK_SECTORS * SECTOR  # dm-era's tracking unit (the rebuild re-copies by it)

    def __init__(self, ctl: dm.DeviceMapper, tags: Tags, uuid: str, meta_dir: str | None = None, loop_tag: str = ""):
        self.ctl, self.tags, self.uuid = ctl, tags, uuid
        self.meta_dir, self.loop_tag = meta_dir, loop_tag

    @property
    def top_name(self) -> str:
        return self.tags.nexus(self.uuid)

    @property
    def raid_name(self) -> str:
        return self.tags.nexus(self.uuid, "raid")

    @property
    def era_name(self) -> str:
        return self.tags.nexus(self.uuid, "era")

    def leg_name(self, cid: int, part: str) -> str:
        return self.tags.nexus(self.uuid, f"{cid}-{part}")

    # legs ---------------------------------------------------------------------------------
    def meta_file(self, cid: int) -> str | None:
        return os.path.join(self.meta_dir, f"{self.uuid}-{cid}.meta") if self.meta_dir else None

    def ensure_leg(self, cid: int, device: str, local_meta: bool = False) -> Leg:
        """The leg's meta and data devices (idempotent; re-pointed when the child's device node
        changed, e.g. after an nvme reconnect): metadata in a file on this node and the whole
        child as data, or (``local_meta`` false) the child split into both."""
        size = block.size_bytes(device) // SECTOR
        if local_meta:
            src = _devnum(device)
            meta_src = self._meta_loop(cid)
            meta = ensure(self.ctl, self.leg_name(cid, "meta"), [dm.Target(0, META_SECTORS, "linear", f"{meta_src} 0")])
            data = ensure(self.ctl, self.leg_name(cid, "data"), [dm.Target(0, size, "linear", f"{src} 0")])
            return Leg(cid, meta.devnum, data.devnum)
        if size <= META_SECTORS:
            raise ValueError(f"{device} is smaller than the {META_BYTES >> 20} MiB metadata area")
        src = _devnum(device)
        meta = ensure(self.ctl, self.leg_name(cid, "meta"), [dm.Target(0, META_SECTORS, "linear", f"{src} 0")])
        data = ensure(
            self.ctl, self.leg_name(cid, "data"), [dm.Target(0, size - META_SECTORS, "linear", f"{src} {META_SECTORS}")]
        )
        return Leg(cid, meta.devnum, data.devnum)

    def ensure_error_leg(self, cid: int, sectors: int) -> Leg:
        """Point a child's slot at dm-error: md faults the leg at its next I/O and keeps the
        regions written meanwhile dirty in the bitmap, so a later revive (suspend/resume with
        the real devices back) resyncs only those. A '- -' slot would not: md then takes the
        returning leg as in sync."""
        name = self.leg_name(cid, "data")
        if self.ctl.exists(name):
            live = self.ctl.table(name)
            sectors = max(sectors, live[0].length) if live else sectors
        meta = ensure(self.ctl, self.leg_name(cid, "meta"), [dm.Target(0, META_SECTORS, "error", "")])
        data = ensure(self.ctl, name, [dm.Target(0, sectors, "error", "")])
        return Leg(cid, meta.devnum, data.devnum)

    def leg_is_error(self, cid: int) -> bool:
        name = self.leg_name(cid, "data")
        return self.ctl.exists(name) and self.ctl.table(name)[0].type == "error"

    def leg_is_on(self, cid: int, device: str) -> bool:
        """Whether the child's data leg maps ``device`` (and not another node of the same child)."""
        name = self.leg_name(cid, "data")
        if not self.ctl.exists(name):
            return False
        live = self.ctl.table(name)
        return bool(live) and live[0].type == "linear" and live[0].params.split()[0] == _devnum(device)

    def leg_device(self, cid: int, part: str) -> str | None:
        name = self.leg_name(cid, part)
        return self.ctl.info(name).devnode if self.ctl.exists(name) else None

    def _leg_node(self, cid: int, part: str) -> str:
        dev = self.leg_device(cid, part)
        if dev is None:
            raise FileNotFoundError(errno.ENOENT, "no such leg device", self.leg_name(cid, part))
        return dev

    def leg_has_superblock(self, cid: int) -> bool:
        """Read past the page cache: md writes its superblocks with its own bios, and a page
        cached by the wipe below still reads as zeros (a leg in sync then looked new and was
        loaded with 'rebuild': md recovered it from its peer)."""
        return block.read_direct(self._leg_node(cid, "meta"), 0, 4096)[:4] == RAID_MAGIC

    def wipe_leg_superblock(self, cid: int) -> None:
        """A leg without the magic is a new device to dm-raid; stale superblocks confuse it."""
        block.write_direct(self._leg_node(cid, "meta"), 0, bytes(4096))

    def remove_leg(self, cid: int) -> None:
        """The leg's devices and its metadata file go (the child leaves the nexus, or the nexus goes)."""
        remove(self.ctl, self.leg_name(cid, "data"))
        remove(self.ctl, self.leg_name(cid, "meta"))
        path = self.meta_file(cid)
        if path is not None:
            release_meta_file(path)

    def _meta_loop(self, cid: int) -> str:
        """major:minor of the loop device over this leg's metadata file (made sparse and empty
        the first time: md then sees no superblock; kept across restarts and reboots)."""
        path = self.meta_file(cid)
        if self.meta_dir is None or path is None:
            raise ValueError(f"nexus {self.uuid}: no metadata directory for its legs")
        os.makedirs(self.meta_dir, mode=0o700, exist_ok=True)
        if not os.path.exists(path):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                os.ftruncate(fd, META_BYTES)
            finally:
                os.close(fd)
        attached = loop.find_by_file(path)
        lo = attached[0] if attached else loop.attach(path, tag=self.loop_tag)
        return f"7:{lo.index}"

    def existing_legs(self) -> list[int]:
        prefix = self.tags.nexus(self.uuid) + "-"
        out = set()
        for d in self.ctl.list_devices():
            if d.name.startswith(prefix):
                head = d.name[len(prefix) :].split("-", 1)[0]
                if head.isdigit():
                    out.add(int(head))
        return sorted(out)

    # raid and top ---------------------------------------------------------------------------
    def raid_table(
        self, legs: list[Leg], sectors: int, region: int, rebuild: list[int] | None = None, nosync: bool = False
    ) -> list[dm.Target]:
        t = Raid1Table(
            legs=[(leg.meta, leg.data) for leg in legs],
            region_size=region,
            rebuild=list(rebuild or []),
            sync="nosync" if nosync else None,
        )
        return [dm.Target(0, sectors, "raid", t.params())]

    def load_raid(self, targets: list[dm.Target]) -> dm.DeviceInfo:
        """Create the raid device, or swap its table (suspend + resume); the same table is left alone."""
        return ensure(self.ctl, self.raid_name, targets)

    def live_raid_table(self) -> Raid1Table | None:
        if not self.ctl.exists(self.raid_name):
            return None
        t = self.ctl.table(self.raid_name)
        return Raid1Table.parse(t[0].params) if t and t[0].type == "raid" else None

    def path_devnum(self) -> str:
        """What the top device maps: the era layer while a full rebuild runs, else the raid."""
        name = self.era_name if self.ctl.exists(self.era_name) else self.raid_name
        return self.ctl.info(name).devnum

    @staticmethod
    def top_targets(sectors: int, path: str) -> list[dm.Target]:
        params = f"3 queue_if_no_path queue_mode bio 0 1 1 round-robin 0 1 1 {path} 1"
        return [dm.Target(0, sectors, "multipath", params)]

    def ensure_top(self, sectors: int) -> dm.DeviceInfo:
        return ensure(self.ctl, self.top_name, self.top_targets(sectors, self.path_devnum()))

    def load_top_over_raid(self, sectors: int) -> None:
        """Load (not resume) a top table mapping the raid directly, e.g. to leave out the era layer."""
        self.ctl.load(self.top_name, self.top_targets(sectors, self.ctl.info(self.raid_name).devnum))

    def point_top_at_raid(self, sectors: int) -> None:
        """Swap the top's table for one over the raid: I/O held only for the suspend/resume."""
        self.load_top_over_raid(sectors)
        self.ctl.suspend(self.top_name)
        self.ctl.resume(self.top_name)

    def ensure_era(self, meta_devnum: str, sectors: int) -> dm.DeviceInfo:
        raid = self.ctl.info(self.raid_name).devnum
        return ensure(
            self.ctl, self.era_name, [dm.Target(0, sectors, "era", era_params(meta_devnum, raid, ERA_BLOCK_SECTORS))]
        )

    def era_meta_devnum(self) -> str | None:
        if not self.ctl.exists(self.era_name):
            return None
        t = self.ctl.table(self.era_name)
        return t[0].params.split()[0] if t else None

    def reinstate(self) -> None:
        """Give the top device its path back after it failed (no healthy child) and queued I/O."""
        try:
            self.ctl.message(self.top_name, f"reinstate_path {self.path_devnum()}")
        except dm.DmError:
            pass  # path is active already

    def top_path_failed(self) -> bool:
        st = self.ctl.status(self.top_name)
        # multipath status: ... <path> <A|F> <fail count> ...; 'F' means the path failed
        words = st[0].params.split() if st else []
        path = self.path_devnum()
        return path in words and words[words.index(path) + 1] == "F"

    def status(self) -> RaidStatus | None:
        if not self.ctl.exists(self.raid_name):
            return None
        st = self.ctl.status(self.raid_name, noflush=True)
        return RaidStatus.parse(st[0].params) if st and st[0].type == "raid" else None

    def top_device(self) -> str:
        return self.ctl.info(self.top_name).devnode

    def exists(self) -> bool:
        return self.ctl.exists(self.top_name)

    def fail_held_io(self) -> bool:
        """I/O the top device holds fails instead of reaching the children, which another nexus
        may own by now: a shut-down nexus's (top suspended: an error table goes live) or a nexus's
        with no healthy child (path failed, I/O queued: fail_if_no_path). True when there was any
        such top device. Before an unpublish: nvmet's namespace disable waits for that I/O."""
        if not self.ctl.exists(self.top_name):
            return False
        info = self.ctl.info(self.top_name)
        if not info.suspended:
            try:
                if not self.top_path_failed():
                    return False
                self.ctl.message(self.top_name, "fail_if_no_path")
            except dm.DmError:
                return False  # no raid under it (a teardown cut short): teardown fails what it holds
            return True
        sectors = sum(t.length for t in self.ctl.table(self.top_name))
        if sectors:
            self.ctl.load(self.top_name, [dm.Target(0, sectors, "error", "")])
        self.ctl.resume(self.top_name)
        return True

    def teardown(self) -> None:
        """Remove top, raid and every leg device of this nexus (idempotent). I/O the top device
        holds (no healthy child) is failed first, or nobody could ever close it."""
        if self.ctl.exists(self.top_name):
            try:
                self.ctl.message(self.top_name, "fail_if_no_path")
            except dm.DmError:
                pass
        for attempt in range(50):  # openers woken by the failed I/O need a moment to close
            try:
                remove(self.ctl, self.top_name)
                break
            except dm.DmError as exc:
                if exc.errno != errno.EBUSY or attempt == 49:
                    raise
                time.sleep(0.1)
        remove(self.ctl, self.era_name)
        remove(self.ctl, self.raid_name)
        for cid in self.existing_legs():
            self.remove_leg(cid)
