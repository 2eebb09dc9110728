"""LVM pools: a volume group is the pool, its volumes are thin LVs of one thin pool in it.

* The VG is tagged ``mayastor`` while it is a pool (io-engine's tag: export removes it); a VG that
  exists already is imported, so users with LVM on their disks keep it.
* The thin pool (LV ``mayastor-thin``, error-when-full) is made with the first volume and takes the
  VG's free space then; GrowPool extends it over what the VG gained. Before that, the pool reports
  the VG as io-engine does (capacity = VG size, used = allocated extents).
* Every volume is a thin LV named after its uuid; a thick replica is a thin LV whose whole size is
  promised (the replica service counts it as used), so that it can be snapshotted like any other.
  Snapshots are read-only thin snapshots, clones writable thin snapshots of a snapshot.
* Replica properties live in LV tags (io-engine's keys plus ours, lvm_tools.escape), so an imported
  VG brings its replicas back; the row's thin_id is our key (tag ``mayastor.lv.key``), not lvm's id.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field

from ..errors import AlreadyExists, Internal, InvalidArgument, NotFound, ResourceExhausted
from ..kernel import block
from ..kernel.dm import DeviceMapper
from ..kernel.dm_targets import ThinPoolStatus, ThinStatus
from ..kernel.errors import KernelError
from . import allocation
from . import lvm_tools as lvm
from .backend import POOL_DEGRADED, POOL_FAULTED, POOL_ONLINE, POOL_TYPE_LVM, PoolBackend, PoolCondition

log = logging.getLogger(__name__)

THIN_POOL = "mayastor-thin"
TAG = "mayastor"
K = "mayastor.lv."  # io-engine's tag prefix: name, share, allowed_hosts, entity_id; ours: the rest
VG_FIELDS = "vg_name,vg_uuid,vg_size,vg_free,vg_extent_size,vg_tags,vg_attr,pv_name"
LV_FIELDS = "lv_name,lv_size,lv_tags,lv_attr,origin,pool_lv,thin_id,segtype"
REPORT_TTL = 1.0  # one ListPools asks for condition and used: one vgs for both
SHARES = {0: "off", 1: "nvmf"}


def check_vg_name(name: str) -> None:
    if not lvm.VG_NAME.fullmatch(name):
        raise InvalidArgument(f"LVM pool name {name!r}: a VG name is 1-127 of [A-Za-z0-9_+.-], not starting with '-'")
    if name.startswith("MAYASTOR"):  # its LVs' dm names could look like ours (MAYASTOR-<node>-...)
        raise InvalidArgument(f"LVM pool name {name!r}: names starting with MAYASTOR are reserved")


def _error(what: str, exc: lvm.LvmError) -> Exception:
    text = f"{what}: {exc}"
    if "insufficient free space" in exc.stderr or "Insufficient free space" in exc.stderr:
        return ResourceExhausted(text)
    return Internal(text)


# tags <-> records ----------------------------------------------------------------------------------
def tags_of(rec: dict) -> set[str]:
    """The tags that record a volume (values escaped, long ones split: lvm_tools.tags_for)."""
    t = {
        TAG,
        lvm.tag(K + "name", rec["name"]),
        lvm.tag(K + "share", SHARES.get(rec.get("share") or 0, "off")),
        lvm.tag(K + "key", str(rec["thin_id"])),
        lvm.tag(K + "kind", rec.get("kind") or "replica"),
        lvm.tag(K + "thin", "true" if rec.get("thin", True) else "false"),
    }
    for h in rec.get("allowed_hosts") or []:
        t.add(lvm.tag(K + "allowed_hosts", h))
    for key in ("entity_id", "txn_id", "created_at"):
        if rec.get(key):
            t.update(lvm.tags_for(K + key, str(rec[key])))
    if rec.get("source_uuid"):
        t.add(lvm.tag(K + "source", rec["source_uuid"]))
    if rec.get("discarded"):
        t.add(K + "discarded")
    return t


def record_of(lv: dict) -> dict | None:
    """A volume record from an LV's report row; None for an LV that is not ours."""
    pairs = lvm.parse_tags(lv.get("lv_tags", ""))
    if (TAG, None) not in pairs:
        return None

    def one(key: str) -> str | None:
        return lvm.joined(pairs, K + key)

    key = one("key")
    if key is None or not key.isdigit():
        return None  # an LV of io-engine's own LVM pools (plain linear): not a thin volume we can serve
    hosts = sorted(lvm.unescape(v) for k, v in pairs if k == K + "allowed_hosts" and v)
    return {
        "uuid": lv["lv_name"],
        "name": one("name") or lv["lv_name"],
        "thin_id": int(key),
        "size": int(lv["lv_size"]),
        "thin": one("thin") != "false",
        "entity_id": one("entity_id"),
        "share": 1 if one("share") == "nvmf" else 0,
        "allowed_hosts": hosts,
        "kind": one("kind") or "replica",
        "source_uuid": one("source"),
        "discarded": (K + "discarded", None) in pairs,
        "txn_id": one("txn_id"),
        "created_at": one("created_at"),
    }


# the volume group ----------------------------------------------------------------------------------
@dataclass
class VgReport:
    name: str
    uuid: str
    size: int
    free: int
    extent_size: int
    tags: list[str]
    attr: str
    pvs: list[str]

    @property
    def partial(self) -> bool:
        return len(self.attr) > 3 and self.attr[3] == "p"


def find_vg(name: str | None = None, uuid: str | None = None) -> VgReport | None:
    select = f"vg_name={name}" if name is not None else f"vg_uuid={uuid}"
    rows = lvm.report("vgs", "vg", VG_FIELDS, f"--select={select}")
    if not rows:
        return None
    r = rows[0]
    return VgReport(
        r["vg_name"],
        r["vg_uuid"],
        int(r["vg_size"]),
        int(r["vg_free"]),
        int(r["vg_extent_size"]),
        [t for t in r["vg_tags"].split(",") if t],
        r["vg_attr"],
        sorted({row["pv_name"] for row in rows if row.get("pv_name")}),
    )


@dataclass
class LvmPool(PoolBackend):
    uuid: str
    name: str
    disks: list[str]  # the PVs, as lvm names them
    ctl: DeviceMapper
    extent_size: int
    pooltype: int = POOL_TYPE_LVM
    _vg: VgReport | None = None
    _vg_at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def of(cls, vg: VgReport, ctl: DeviceMapper) -> LvmPool:
        pool = cls(vg.uuid, vg.name, list(vg.pvs), ctl, vg.extent_size)
        pool._vg, pool._vg_at = vg, time.monotonic()
        return pool

    # the VG report, shared by the calls of one listing ------------------------------------------
    def vg(self, fresh: bool = False) -> VgReport:
        with self._lock:
            if fresh or self._vg is None or time.monotonic() - self._vg_at > REPORT_TTL:
                found = find_vg(uuid=self.uuid)
                if found is None:
                    raise NotFound(f"volume group {self.name} ({self.uuid}) is not there")
                self._vg, self._vg_at = found, time.monotonic()
            return self._vg

    def _lv(self, lv: str) -> str:
        return f"{self.name}/{lv}"

    # numbers ------------------------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        try:
            return self.vg().size
        except (lvm.LvmError, NotFound):
            return 0

    @property
    def cluster_size(self) -> int:
        return self.extent_size

    @property
    def disk_capacity(self) -> int:
        total = 0
        for d in self.disks:
            try:
                total += block.size_bytes(d)
            except OSError:
                pass
        return total

    def _tpool_dm(self) -> str | None:
        """The dm name of the thin-pool target: lvm puts it under <pool>-tpool once thin LVs are
        active, under the pool's own name before."""
        base = lvm.dm_name(self.name, THIN_POOL)
        for name in (base + "-tpool", base):
            if self.ctl.exists(name) and self.ctl.table(name)[0].type == "thin-pool":
                return name
        return None

    def thin_pool_status(self) -> tuple[ThinPoolStatus, int] | None:
        """(status, data block bytes) of the thin pool; None when it is not made or not active."""
        name = self._tpool_dm()
        if name is None:
            return None
        block_sectors = int(self.ctl.table(name)[0].params.split()[2])
        return ThinPoolStatus.parse(self.ctl.status(name)[0].params), block_sectors * block.SECTOR

    def used(self) -> int:
        vg = self.vg()
        allocated = vg.size - vg.free
        found = self.thin_pool_status()
        if found is None:
            return allocated
        st, chunk = found
        return allocated - st.total_data_blocks * chunk + st.used_data_blocks * chunk

    def condition(self) -> PoolCondition:
        try:
            vg = self.vg()
            found = self.thin_pool_status()
        except (lvm.LvmError, KernelError, OSError, NotFound) as exc:
            return PoolCondition(POOL_FAULTED, None, f"volume group {self.name}: {exc}")
        st = found[0] if found else None
        if st is not None and st.failed:
            return PoolCondition(POOL_FAULTED, None, f"thin pool of {self.name} has failed")
        if vg.partial:
            return PoolCondition(POOL_DEGRADED, st, f"volume group {self.name} is missing physical volumes")
        if st is not None and (st.needs_check or st.mode != "rw"):
            return PoolCondition(POOL_DEGRADED, st, f"thin pool of {self.name} is {st.mode}")
        return PoolCondition(POOL_ONLINE, st, "")

    def out_of_space(self) -> bool:
        try:
            found = self.thin_pool_status()
        except KernelError:
            return False
        if found is None:
            return False
        st = found[0]
        return st.mode == "out_of_data_space" or st.used_data_blocks >= st.total_data_blocks

    def reported_disks(self) -> list[str]:
        return list(self.disks)

    def disk_devices(self) -> list[str]:
        return [os.path.realpath(d) for d in self.disks]

    def stats_device(self) -> str:
        base = lvm.dm_name(self.name, THIN_POOL)
        return base + "_tdata"

    # the thin pool ------------------------------------------------------------------------------
    def _has_lv(self, lv: str) -> bool:
        return bool(lvm.report("lvs", "lv", "lv_name", f"--select=vg_uuid={self.uuid} && lv_name={lv}"))

    def prepare_volumes(self) -> None:
        if self._tpool_dm() is not None:
            return
        try:
            if self._has_lv(THIN_POOL):
                lvm.run("lvchange", "-ay", self._lv(THIN_POOL))
                return
            vg = self.vg(fresh=True)
            if vg.free < 2 * self.extent_size:
                raise ResourceExhausted(f"volume group {self.name} has no free space for a thin pool")
            lvm.run("lvcreate", "--type", "thin-pool", "-l", "100%FREE", "-n", THIN_POOL, self.name)
            # lvcreate takes no --errorwhenfull for a thin pool; lvchange sets it at once
            lvm.run("lvchange", "--errorwhenfull", "y", self._lv(THIN_POOL))
        except lvm.LvmError as exc:
            raise _error(f"thin pool of {self.name}", exc) from None
        self.vg(fresh=True)
        log.info("LVM pool %s: thin pool %s made", self.name, THIN_POOL)

    def activate_thin_pool(self) -> None:
        """On import: the thin pool (when made) becomes active; its volumes follow one by one."""
        if self._tpool_dm() is None and self._has_lv(THIN_POOL):
            try:
                lvm.run("lvchange", "-ay", self._lv(THIN_POOL))
            except lvm.LvmError as exc:
                raise _error(f"activate the thin pool of {self.name}", exc) from None

    def deactivate_all(self) -> None:
        """Export: the thin pool goes inactive (its volumes must be inactive already)."""
        if self._has_lv(THIN_POOL):
            lvm.run("lvchange", "-an", self._lv(THIN_POOL))

    # volumes ------------------------------------------------------------------------------------
    def volume_dm_name(self, vol) -> str:
        return lvm.dm_name(self.name, vol.uuid)

    def _lv_row(self, uuid: str) -> dict | None:
        rows = lvm.report("lvs", "lv", LV_FIELDS, f"--select=vg_uuid={self.uuid} && lv_name={uuid}")
        return rows[0] if rows else None

    def make_volume(self, vol, origin=None) -> bool:
        try:
            lv = self._lv_row(vol.uuid)
            if lv is not None:
                rec = record_of(lv)
                if rec is None or rec["thin_id"] != vol.thin_id:
                    raise AlreadyExists(f"volume group {self.name} already has an LV named {vol.uuid}")
                return True
            tags = ["--addtag", TAG, "--addtag", lvm.tag(K + "key", str(vol.thin_id))]
            if origin is None:
                lvm.run("lvcreate", "-V", f"{vol.size}b", "-T", self._lv(THIN_POOL), "-n", vol.uuid, *tags)
            else:
                perm = ["-pr"] if vol.kind == "snapshot" else []
                lvm.run("lvcreate", "-s", "-kn", *perm, "-n", vol.uuid, *tags, self._lv(origin.uuid))
        except lvm.LvmError as exc:
            raise _error(f"create LV {vol.uuid} in {self.name}", exc) from None
        return True

    def activate(self, vol) -> None:
        if self.ctl.exists(self.volume_dm_name(vol)):
            return
        try:
            lvm.run("lvchange", "-ay", "-K", self._lv(vol.uuid))
        except lvm.LvmError as exc:
            raise _error(f"activate LV {vol.uuid}", exc) from None

    def resize_volume(self, vol) -> None:
        self.activate(vol)
        if block.size_bytes(self.ctl.info(self.volume_dm_name(vol)).devnode) >= vol.size:
            return
        try:
            lvm.run("lvextend", "-L", f"{vol.size}b", self._lv(vol.uuid))
        except lvm.LvmError as exc:
            raise _error(f"resize LV {vol.uuid}", exc) from None

    def deactivate(self, vol) -> None:
        if not self.ctl.exists(self.volume_dm_name(vol)):
            return
        try:
            lvm.run("lvchange", "-an", self._lv(vol.uuid))
        except lvm.LvmError as exc:
            raise _error(f"deactivate LV {vol.uuid}", exc) from None

    def delete_volume(self, vol) -> None:
        try:
            lv = self._lv_row(vol.uuid)
            if lv is None:
                return
            rec = record_of(lv)
            if rec is None or rec["thin_id"] != vol.thin_id:
                log.warning(
                    "LV %s/%s is not the volume recorded (key %s): left alone", self.name, vol.uuid, vol.thin_id
                )
                return
            lvm.run("lvremove", "-y", self._lv(vol.uuid))
        except lvm.LvmError as exc:
            raise _error(f"remove LV {vol.uuid}", exc) from None

    def mapped_bytes(self, vol) -> int:
        name = self.volume_dm_name(vol)
        if not self.ctl.exists(name):
            return 0
        st = ThinStatus.parse(self.ctl.status(name)[0].params)
        return st.mapped_sectors * block.SECTOR

    def mapped_extents(self, vol, size: int) -> list[tuple[int, int]]:
        lv = self._lv_row(vol.uuid)
        if lv is None or not str(lv.get("thin_id", "")).isdigit():
            raise Internal(f"LV {vol.uuid} of {self.name} has no thin id")
        tpool = self._tpool_dm()
        if tpool is None:
            raise Internal(f"the thin pool of {self.name} is not active")
        meta = self.ctl.info(lvm.dm_name(self.name, THIN_POOL + "_tmeta")).devnode
        return allocation.mapped_extents(self.ctl, tpool, meta, int(lv["thin_id"]), size)

    def write_catalog(self, records: list[dict]) -> None:
        """Bring each LV's tags to its record: one lvchange per LV whose tags differ."""
        wanted = {r["uuid"]: tags_of(r) for r in records}
        try:
            lvs = lvm.report("lvs", "lv", "lv_name,lv_tags", f"--select=vg_uuid={self.uuid}")
            for lv in lvs:
                want = wanted.get(lv["lv_name"])
                if want is None:
                    continue
                have = {t for t in lv["lv_tags"].split(",") if t}
                if have == want:
                    continue
                args = [a for t in sorted(have - want) for a in ("--deltag", t)]
                args += [a for t in sorted(want - have) for a in ("--addtag", t)]
                lvm.run("lvchange", *args, self._lv(lv["lv_name"]))
        except lvm.LvmError as exc:
            raise _error(f"record volumes in the tags of {self.name}", exc) from None

    def catalogued(self) -> list[dict]:
        lvs = lvm.report("lvs", "lv", LV_FIELDS, f"--select=vg_uuid={self.uuid}")
        return [r for r in (record_of(lv) for lv in lvs) if r is not None]

    def foreign_lvs(self) -> list[str]:
        """LVs of the VG that are neither our volumes nor our thin pool."""
        lvs = lvm.report("lvs", "lv", LV_FIELDS, f"--select=vg_uuid={self.uuid}")
        return [lv["lv_name"] for lv in lvs if lv["lv_name"] != THIN_POOL and record_of(lv) is None]


# the VG's life: create or import, export, destroy, grow -----------------------------------------------
def _same_disks(vg: VgReport, devices: list[str]) -> bool:
    return sorted(os.path.realpath(p) for p in vg.pvs) == sorted(os.path.realpath(d) for d in devices)


def open_vg(name: str, devices: list[str], uuid: str | None, ctl: DeviceMapper) -> LvmPool | None:
    """Import the VG ``name`` if it exists (None if not): its PVs must be exactly ``devices``; it is
    tagged as ours and its thin pool activated. io-engine refuses a uuid here (a VG has its own)."""
    try:
        vg = find_vg(name=name)
        if vg is None:
            return None
        if uuid is not None and uuid != vg.uuid:
            raise InvalidArgument(f"LVM pool {name}: a VG has its own uuid ({vg.uuid}); do not give one")
        if not _same_disks(vg, devices):
            raise InvalidArgument(
                f"LVM pool {name}: the volume group is on {', '.join(vg.pvs)}, not on {', '.join(devices)}"
            )
        if TAG not in vg.tags:
            lvm.run("vgchange", "-q", "--addtag", TAG, name)
        pool = LvmPool.of(find_vg(name=name) or vg, ctl)
        pool.activate_thin_pool()
    except lvm.LvmError as exc:
        raise _error(f"import LVM pool {name}", exc) from None
    return pool


def create_vg(name: str, devices: list[str], ctl: DeviceMapper) -> LvmPool:
    """A new VG tagged as ours on ``devices`` (checked by the caller: unused, unformatted)."""
    try:
        lvm.run("vgcreate", "-q", "--addtag", TAG, name, *devices)
        vg = find_vg(name=name)
    except lvm.LvmError as exc:
        raise _error(f"create LVM pool {name}", exc) from None
    if vg is None:
        raise Internal(f"volume group {name} is not there after vgcreate")
    log.info("LVM pool %s (%s) created on %s", name, vg.uuid, ", ".join(devices))
    return LvmPool.of(vg, ctl)


def export_vg(pool: LvmPool) -> None:
    """Its volumes are inactive already: the thin pool follows, then the tag goes."""
    try:
        pool.deactivate_all()
        lvm.run("vgchange", "-q", "--deltag", TAG, pool.name)
    except lvm.LvmError as exc:
        raise _error(f"export LVM pool {pool.name}", exc) from None


def destroy_vg(pool: LvmPool) -> None:
    """Our LVs (inactive already) and the thin pool go, and the VG and PV labels too unless the
    VG holds LVs that are not ours (then it is only untagged, as io-engine does)."""
    try:
        for lv in lvm.report("lvs", "lv", LV_FIELDS, f"--select=vg_uuid={pool.uuid}"):
            if record_of(lv) is not None:
                lvm.run("lvremove", "-y", pool._lv(lv["lv_name"]))
        if pool._has_lv(THIN_POOL):
            lvm.run("lvremove", "-y", pool._lv(THIN_POOL))
        foreign = pool.foreign_lvs()
        if foreign:
            log.warning("LVM pool %s: VG kept, it holds LVs that are not ours: %s", pool.name, ", ".join(foreign))
            lvm.run("vgchange", "-q", "--deltag", TAG, pool.name)
            return
        lvm.run("vgremove", "-y", pool.name)
        lvm.run("pvremove", "-y", *pool.disks)
    except lvm.LvmError as exc:
        raise _error(f"destroy LVM pool {pool.name}", exc) from None


def grow_vg(pool: LvmPool) -> None:
    """The PVs learn their devices' sizes; the thin pool (when made) takes what the VG gained."""
    try:
        for d in pool.disks:
            lvm.run("pvresize", "-q", d)
        vg = pool.vg(fresh=True)
        if vg.free >= pool.extent_size and pool._has_lv(THIN_POOL):
            lvm.run("lvextend", "-q", "-l", "+100%FREE", pool._lv(THIN_POOL))
        pool.vg(fresh=True)
    except lvm.LvmError as exc:
        raise _error(f"grow LVM pool {pool.name}", exc) from None
