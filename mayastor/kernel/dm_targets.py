"""Table builders and status parsers for the dm targets we use: linear, thin-pool, thin, raid (raid1).

Pure string work (no kernel access), tested on the host with strings captured from the VM.
Lengths and offsets are in 512-byte sectors throughout.
"""

from __future__ import annotations

from dataclasses import dataclass, field


# linear ---------------------------------------------------------------------------------
def linear_params(device: str, offset: int = 0) -> str:
    return f"{device} {offset}"


# thin-pool / thin ---------------------------------------------------------------------------
THIN_POOL_FEATURES = ("skip_block_zeroing", "ignore_discard", "no_discard_passdown", "read_only", "error_if_no_space")


def thin_pool_params(
    metadata_dev: str, data_dev: str, block_sectors: int, low_water_mark: int = 0, features: tuple[str, ...] = ()
) -> str:
    # data block size: multiple of 64 KiB (128 sectors), 128..2097152 sectors
    if block_sectors < 128 or block_sectors > 2097152 or block_sectors % 128:
        raise ValueError(f"thin-pool block size {block_sectors} sectors: must be a multiple of 128 in 128..2097152")
    for f in features:
        if f not in THIN_POOL_FEATURES:
            raise ValueError(f"unknown thin-pool feature {f!r}")
    feat = f" {len(features)} {' '.join(features)}" if features else " 0"
    return f"{metadata_dev} {data_dev} {block_sectors} {low_water_mark}{feat}"


def thin_params(pool_dev: str, dev_id: int, external_origin: str | None = None) -> str:
    if not 0 <= dev_id < (1 << 24):
        raise ValueError(f"thin device id {dev_id} out of range (24 bits)")
    return f"{pool_dev} {dev_id}" + (f" {external_origin}" if external_origin else "")


@dataclass(frozen=True)
class ThinPoolStatus:
    transaction_id: int
    used_metadata_blocks: int
    total_metadata_blocks: int
    used_data_blocks: int
    total_data_blocks: int
    held_metadata_root: int | None
    mode: str  # rw | ro | out_of_data_space
    discard_passdown: bool
    error_if_no_space: bool
    needs_check: bool
    metadata_low_watermark: int | None = None
    failed: bool = False

    @classmethod
    def parse(cls, params: str) -> ThinPoolStatus:
        words = params.split()
        if words and words[0] in ("Fail", "Error"):
            return cls(0, 0, 0, 0, 0, None, "fail", False, False, True, None, True)
        tid = int(words[0])
        um, tm = (int(x) for x in words[1].split("/"))
        ud, td = (int(x) for x in words[2].split("/"))
        held = None if words[3] == "-" else int(words[3])
        mode = words[4]
        rest = words[5:]
        discard = "discard_passdown" in rest
        error_if = "error_if_no_space" in rest
        needs_check = "needs_check" in rest
        lwm = None
        if rest and rest[-1].isdigit():
            lwm = int(rest[-1])
        return cls(tid, um, tm, ud, td, held, mode, discard, error_if, needs_check, lwm)


@dataclass(frozen=True)
class ThinStatus:
    mapped_sectors: int
    highest_mapped_sector: int | None
    failed: bool = False

    @classmethod
    def parse(cls, params: str) -> ThinStatus:
        words = params.split()
        if not words or words[0] == "Fail":
            return cls(0, None, True)
        mapped = int(words[0])
        highest = None if len(words) < 2 or words[1] == "-" else int(words[1])
        return cls(mapped, highest)


# era ----------------------------------------------------------------------------------------
def era_params(metadata_dev: str, origin_dev: str, block_sectors: int) -> str:
    """dm-era: a linear map of ``origin_dev`` that records, per block, the era it was last written in."""
    if block_sectors < 8 or block_sectors & (block_sectors - 1):
        raise ValueError(f"era block size {block_sectors} sectors: must be a power of two >= 8")
    return f"{metadata_dev} {origin_dev} {block_sectors}"


@dataclass(frozen=True)
class EraStatus:
    metadata_block_sectors: int
    used_metadata_blocks: int
    total_metadata_blocks: int
    current_era: int
    held_root: int | None  # a metadata snapshot is held for userspace

    @classmethod
    def parse(cls, params: str) -> EraStatus:
        w = params.split()
        used, total = (int(x) for x in w[1].split("/"))
        return cls(int(w[0]), used, total, int(w[2]), None if w[3] == "-" else int(w[3]))


# raid1 ------------------------------------------------------------------------------------
RAID1_FLAGS = ("sync", "nosync")


@dataclass
class Raid1Table:
    """A dm-raid raid1 constructor. ``legs`` are (meta, data) device strings, '-' for absent."""

    legs: list[tuple[str, str]]
    region_size: int | None = None
    sync: str | None = None  # "sync" | "nosync" | None
    rebuild: list[int] = field(default_factory=list)
    write_mostly: list[int] = field(default_factory=list)
    daemon_sleep: int | None = None
    min_recovery_rate: int | None = None
    max_recovery_rate: int | None = None
    max_write_behind: int | None = None

    def params(self) -> str:
        if not self.legs:
            raise ValueError("raid1 needs at least one leg")
        if self.sync is not None and self.sync not in RAID1_FLAGS:
            raise ValueError(f"sync must be one of {RAID1_FLAGS}")
        if self.sync and self.rebuild:
            raise ValueError("rebuild cannot be combined with sync/nosync")
        if self.region_size is not None and (self.region_size <= 0 or self.region_size & (self.region_size - 1)):
            raise ValueError(f"region_size {self.region_size} is not a power of two")
        for idx in self.rebuild + self.write_mostly:
            if not 0 <= idx < len(self.legs):
                raise ValueError(f"leg index {idx} out of range")
        if self.write_mostly and len(set(self.write_mostly)) >= len(self.legs):
            raise ValueError("at least one leg must not be write_mostly")
        for meta, data in self.legs:
            if meta != "-" and data == "-":
                raise ValueError("a leg with a metadata device needs a data device")
        words: list[str] = ["0"]  # chunk_size: mandatory, 0 for raid1
        if self.sync:
            words.append(self.sync)
        for idx in self.rebuild:
            words += ["rebuild", str(idx)]
        if self.daemon_sleep is not None:
            words += ["daemon_sleep", str(self.daemon_sleep)]
        if self.min_recovery_rate is not None:
            words += ["min_recovery_rate", str(self.min_recovery_rate)]
        if self.max_recovery_rate is not None:
            words += ["max_recovery_rate", str(self.max_recovery_rate)]
        for idx in self.write_mostly:
            words += ["write_mostly", str(idx)]
        if self.max_write_behind is not None:
            words += ["max_write_behind", str(self.max_write_behind)]
        if self.region_size is not None:
            words += ["region_size", str(self.region_size)]
        devs = [w for leg in self.legs for w in leg]
        return f"raid1 {len(words)} {' '.join(words)} {len(self.legs)} {' '.join(devs)}"

    @classmethod
    def parse(cls, params: str) -> Raid1Table:
        """Parse a ``dmsetup table`` raid1 line (params after the target type)."""
        words = params.split()
        if words[0] != "raid1":
            raise ValueError(f"not a raid1 table: {params!r}")
        n = int(words[1])
        opts = words[2 : 2 + n]
        ndev = int(words[2 + n])
        devs = words[3 + n : 3 + n + 2 * ndev]
        if len(devs) != 2 * ndev:
            raise ValueError(f"raid1 table lists {len(devs)} device words for {ndev} legs")
        t = cls(legs=[(devs[2 * i], devs[2 * i + 1]) for i in range(ndev)])
        i = 1  # opts[0] is chunk_size
        while i < len(opts):
            key = opts[i]
            if key in RAID1_FLAGS:
                t.sync = key
                i += 1
                continue
            val = int(opts[i + 1])
            if key == "rebuild":
                t.rebuild.append(val)
            elif key == "write_mostly":
                t.write_mostly.append(val)
            elif key in ("region_size", "daemon_sleep", "min_recovery_rate", "max_recovery_rate", "max_write_behind"):
                setattr(t, key, val)
            else:
                raise ValueError(f"unexpected raid1 parameter {key!r}")
            i += 2
        return t


def default_region_size(length: int) -> int:
    """dm-raid's default: 8192 sectors, or the next power of two of len/2^21 if larger."""
    need = -(-length // (1 << 21))
    size = 8192
    while size < need:
        size <<= 1
    return size


LEG_ALIVE = "A"
LEG_ALIVE_NOT_SYNCED = "a"
LEG_DEAD = "D"
LEG_ABSENT = "-"


@dataclass(frozen=True)
class RaidStatus:
    raid_type: str
    devices: int
    health: str
    sync_current: int
    sync_total: int
    sync_action: str
    mismatch_cnt: int
    data_offset: int | None = None
    journal: str | None = None

    @classmethod
    def parse(cls, params: str) -> RaidStatus:
        w = params.split()
        cur, total = (int(x) for x in w[3].split("/"))
        return cls(
            raid_type=w[0],
            devices=int(w[1]),
            health=w[2],
            sync_current=cur,
            sync_total=total,
            sync_action=w[4],
            mismatch_cnt=int(w[5]),
            data_offset=int(w[6]) if len(w) > 6 else None,
            journal=w[7] if len(w) > 7 else None,
        )

    @property
    def dead_legs(self) -> list[int]:
        return [i for i, c in enumerate(self.health) if c == LEG_DEAD]

    @property
    def in_sync(self) -> bool:
        return (
            self.sync_action == "idle"
            and self.sync_current == self.sync_total
            and all(c in (LEG_ALIVE, LEG_ABSENT) for c in self.health)
        )

    @property
    def progress(self) -> float:
        return self.sync_current / self.sync_total if self.sync_total else 1.0
