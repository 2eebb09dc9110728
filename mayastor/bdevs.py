"""Block devices made by URI (io-engine's BdevRpc): RAM disks (``malloc:///``), null devices
(``null:///``, a dm-zero device: reads are zeros, writes go nowhere, as SPDK's null bdev), files
and devices (``aio://``, ``uring://``). They can be shared over NVMe-oF (NQN
``nqn.2019-05.io.openebs:<name>``) and used by a nexus on this node as ``bdev:///<name>``.

Each one is a row in SQLite (brought back at start); their RAM disks live in their own name space
(not the nexus children's nor the pools'), and their dm names carry a hash of the name.

``list`` shows what io-engine lists as bdevs: these, the pools' disks, the replicas (named by uuid,
aliased ``<pool>/<name>``) and the nexuses."""

from __future__ import annotations

import hashlib
import logging
import os
import uuid as _uuid
from dataclasses import dataclass

from sqlalchemy import select

from . import ramdisk, validate
from .errors import AlreadyExists, FailedPrecondition, Internal, InvalidArgument, NotFound
from .exports import Export, NvmfTarget, Share
from .kernel import block, dm
from .kernel.dm import ensure, remove
from .kernel.errors import KernelError
from .naming import Tags
from .nexus.children import ChildContext, device_for
from .nexus.uri import ChildUri
from .nexus.uri import parse as parse_uri
from .pool.label_pool import LabelPool
from .store import Bdev as Row
from .store import Nexus as NexusRow
from .store import NexusChild as ChildRow
from .store import Replica as ReplicaRow

log = logging.getLogger(__name__)

KINDS = ("malloc", "null", "aio", "uring")
PRODUCT = {
    "malloc": "Malloc disk",
    "null": "Null disk",
    "aio": "AIO disk",
    "uring": "URING disk",
    "replica": "Logical Volume",
    "nexus": "Nexus CAS Driver v0.0.1",
}
RAM_SCOPE = "bdevs/{node}"


@dataclass(frozen=True)
class BdevView:
    """One listed bdev, whatever made it."""

    name: str
    uuid: str
    num_blocks: int
    blk_size: int
    uri: str
    product_name: str
    share_uri: str
    claimed_by: str = ""  # "" = not claimed ("Orphaned" on the wire, as io-engine)
    aliases: str = ""


def _with_uuid(uri: str, uuid: str) -> str:
    if "uuid=" in uri:
        return uri
    return f"{uri}{'&' if '?' in uri else '?'}uuid={uuid}"


class BdevService:
    def __init__(self, store, ctl: dm.DeviceMapper, tags: Tags, target: NvmfTarget, ctx: ChildContext):
        self.store, self.ctl, self.tags, self.target, self.ctx = store, ctl, tags, target, ctx

    # kernel devices ------------------------------------------------------------------------------
    def dm_name(self, name: str) -> str:
        return f"{self.tags.prefix}bdev-{hashlib.sha256(name.encode()).hexdigest()[:32]}"

    def _ram(self, parsed: ChildUri) -> ramdisk.RamDisk:
        size, blk = ramdisk.check(parsed.path, parsed.params)
        return ramdisk.RamDisk(RAM_SCOPE.format(node=self.tags.node), parsed.path, size, blk)

    def _open(self, parsed: ChildUri, name: str) -> str:
        if parsed.scheme == "malloc":
            return self._ram(parsed).open(self.ctx.loop_tag)
        if parsed.scheme == "null":
            size, _ = ramdisk.check(parsed.path, parsed.params)
            return ensure(self.ctl, self.dm_name(name), [dm.Target(0, size // block.SECTOR, "zero", "")]).devnode
        return device_for(parsed, self.ctx).open()

    def _close(self, parsed: ChildUri, name: str) -> None:
        if parsed.scheme == "malloc":
            self._ram(parsed).destroy()
        elif parsed.scheme == "null":
            remove(self.ctl, self.dm_name(name))
        else:
            device_for(parsed, self.ctx).close()

    def _device_of(self, row: Row) -> str:
        return self._open(parse_uri(row.uri), row.name)

    def device(self, name: str, uuid: str | None = None) -> str | None:
        """The block device of the bdev ``name`` (for ``bdev:///<name>?uuid=`` children), None if none."""
        row = self._row(name)
        if row is None:
            return None
        if uuid and uuid != row.uuid:
            raise InvalidArgument(f"bdev {name} has uuid {row.uuid}, not {uuid}")
        return self._device_of(row)

    def loop_files(self) -> set[str]:
        """Files our bdevs keep on loop devices (the start-up sweep of unheld loops leaves them)."""
        with self.store.session() as s:
            rows = list(s.scalars(select(Row).where(Row.kind != "null")))
        out = set()
        for r in rows:
            p = parse_uri(r.uri)
            out.add(os.path.realpath(self._ram(p).file if p.scheme == "malloc" else p.path))
        return out

    # create / destroy ----------------------------------------------------------------------------
    def create(self, uri: str) -> BdevView:
        parsed = parse_uri(uri)
        if parsed.scheme not in KINDS:
            raise InvalidArgument(
                f"bdev {uri[:200]!r}: {parsed.scheme} devices are not made by CreateBdev here "
                f"(known: {', '.join(KINDS)})"
            )
        if parsed.scheme == "null" and parsed.blk_size not in (None, 512):
            raise InvalidArgument(f"bdev {uri[:200]!r}: null devices have 512-byte blocks here")
        name = parsed.path
        if parsed.scheme in ("aio", "uring"):
            device_for(parsed, self.ctx).check()
        self._refuse_taken(name)
        uuid = parsed.uuid or str(_uuid.uuid4())
        with self.store.session() as s:
            s.add(Row(name=name, uri=parsed.uri, uuid=uuid, kind=parsed.scheme, share=Share.NONE, allowed_hosts=[]))
        try:
            self._open(parsed, name)
        except BaseException as exc:
            self._forget(name)
            try:
                self._close(parsed, name)
            except (KernelError, OSError) as undo:
                log.warning("bdev %s: undoing a failed create: %s", name, undo)
            if isinstance(exc, (KernelError, OSError)):
                raise Internal(f"create bdev {name}: {exc}") from None
            raise
        log.info("bdev %s created from %s", name, parsed.uri)
        return self.view(name)

    def _refuse_taken(self, name: str) -> None:
        with self.store.session() as s:
            if s.scalar(select(Row.name).where(Row.name == name)) is not None:
                raise AlreadyExists(f"bdev {name} already exists")
            if (
                s.scalar(select(ReplicaRow.uuid).where(ReplicaRow.name == name)) is not None
                or s.scalar(select(NexusRow.uuid).where(NexusRow.name == name)) is not None
            ):
                raise AlreadyExists(f"the name {name} belongs to a replica or nexus (one NQN space)")

    def destroy(self, uri_or_name: str) -> None:
        row = self._row(uri_or_name) or self._row_by_uri(uri_or_name)
        if row is None:
            raise NotFound(f"bdev {uri_or_name[:200]} not found")
        users = self.nexuses_using(row.name)
        if users:  # io-engine hot-removes the child; here the bdev stays until its nexus lets go
            raise FailedPrecondition(
                f"bdev {row.name} is a child of nexus {', '.join(users)}; remove it from the nexus first"
            )
        if row.share == Share.NVMF:
            self.unshare(row.name)
        try:
            self._close(parse_uri(row.uri), row.name)
        except (KernelError, OSError) as exc:
            raise Internal(f"destroy bdev {row.name}: {exc}") from None
        self._forget(row.name)
        log.info("bdev %s destroyed", row.name)

    def nexuses_using(self, name: str) -> list[str]:
        """Nexuses of this node with the bdev as a child (``bdev:///<name>``)."""
        with self.store.session() as s:
            kids = list(s.execute(select(ChildRow.nexus_uuid, ChildRow.uri)))
        out = []
        for nexus, uri in kids:
            try:
                p = parse_uri(uri)
            except InvalidArgument:
                continue
            if p.scheme == "bdev" and p.path == name:
                out.append(nexus)
        return sorted(set(out))

    def _forget(self, name: str) -> None:
        with self.store.session() as s:
            row = s.get(Row, name)
            if row is not None:
                s.delete(row)

    def bring_up(self) -> None:
        """At start: every recorded bdev opened again, and shared again when it was."""
        with self.store.session() as s:
            rows = list(s.scalars(select(Row)))
        for row in rows:
            try:
                dev = self._device_of(row)
                if row.share == Share.NVMF:
                    self.target.expose(Export(row.name, row.uuid, dev, tuple(row.allowed_hosts)))
            except Exception as exc:  # noqa: BLE001 (one bad bdev must not stop the node)
                log.error("bdev %s could not be brought back: %s", row.name, exc)

    # share ---------------------------------------------------------------------------------------
    def share(self, name: str, protocol: int, allowed_hosts: list[str]) -> BdevView:
        if protocol != Share.NVMF:
            raise InvalidArgument(f"share protocol {protocol}: bdevs are shared over NVMf only")
        hosts = validate.host_nqns(allowed_hosts)
        row = self._row(name)
        if row is None:
            raise NotFound(f"bdev {name[:200]} not found")
        validate.name(row.name, "bdev name (its NQN tail)")
        self.target.expose(Export(row.name, row.uuid, self._device_of(row), tuple(hosts)))
        with self.store.session() as s:
            r = s.get(Row, row.name)
            r.share, r.allowed_hosts = Share.NVMF, hosts
        return self.view(row.name)

    def unshare(self, name: str) -> None:
        row = self._row(name)
        if row is None:
            raise NotFound(f"bdev {name[:200]} not found")
        if row.share == Share.NVMF:
            try:
                self.target.withdraw(row.name, row.uuid, self._device_of(row))
            except KernelError as exc:
                raise FailedPrecondition(f"unshare bdev {row.name}: {exc}") from None
        with self.store.session() as s:
            r = s.get(Row, row.name)
            r.share, r.allowed_hosts = Share.NONE, []

    # views ---------------------------------------------------------------------------------------
    def _row(self, name: str) -> Row | None:
        with self.store.session() as s:
            return s.get(Row, name)

    def _row_by_uri(self, uri: str) -> Row | None:
        try:
            parsed = parse_uri(uri)
        except InvalidArgument:
            return None
        row = self._row(parsed.path)
        return row if row is not None and parse_uri(row.uri).scheme == parsed.scheme else None

    def view(self, name: str) -> BdevView:
        row = self._row(name)
        if row is None:
            raise NotFound(f"bdev {name[:200]} not found")
        dev = self._device_of(row)
        blk = block.logical_block_size(dev)
        share = self.target.uri(row.name, row.uuid) if row.share == Share.NVMF else f"bdev:///{row.name}"
        return BdevView(
            row.name,
            row.uuid,
            block.size_bytes(dev) // blk,
            blk,
            _with_uuid(row.uri, row.uuid),
            PRODUCT[row.kind],
            share,
        )

    def list_own(self) -> list[BdevView]:
        with self.store.session() as s:
            names = list(s.scalars(select(Row.name).order_by(Row.created_at)))
        out = []
        for n in names:
            try:
                out.append(self.view(n))
            except (NotFound, KernelError, OSError) as exc:
                log.warning("bdev %s not listed: %s", n, exc)
        return out


def listing(node, name: str | None = None) -> list[BdevView]:
    """What io-engine's ListBdevs shows: CreateBdev's devices, each pool's disks (claimed by the
    pool), each replica, snapshot and clone (named by uuid, aliased <pool>/<name>) and each nexus."""
    out = list(node.bdevs.list_own())
    for pool in node.pools.list():
        if not isinstance(pool, LabelPool):  # an LVM pool's PVs are lvm's, not bdevs of ours
            continue
        for uri, d, entry in zip(pool.reported_disks(), pool.open_disks, pool.label.disks):
            blk = block.logical_block_size(d.device)
            out.append(
                BdevView(
                    d.uri.path[1:] if d.uri.is_ram else d.uri.path,
                    entry.disk_uuid,
                    d.size // blk,
                    blk,
                    uri,
                    PRODUCT[d.uri.scheme],
                    "",
                    "lvol",
                )
            )
    for v in node.replicas.list(kinds=("replica", "clone", "snapshot")):
        r = v.row
        out.append(
            BdevView(
                r.uuid,
                r.uuid,
                r.size // 512,
                512,
                f"bdev:///{r.uuid}?uuid={r.uuid}",
                PRODUCT["replica"],
                v.uri,
                aliases=f"{v.pool.name}/{r.name}",
            )
        )
    for n in node.nexuses.list():
        out.append(
            BdevView(
                n.row.name,
                n.row.uuid,
                n.row.size // 512,
                512,
                f"nexus:///{n.row.name}",
                PRODUCT["nexus"],
                n.device_uri or f"bdev:///{n.row.name}",
            )
        )
    return [b for b in out if name is None or b.name == name]
