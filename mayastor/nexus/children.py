"""URI -> block device registry for nexus children (Mayastor's ``bdev/dev.rs`` idea, kernel parts).

Each scheme has a small ChildDevice class: ``open()`` returns the block device node and is
idempotent (after a daemon restart it adopts what the kernel still has: the loop device of a file,
the nvme controller of a subsystem, the nbd device carrying our backend tag); ``close()`` releases
what ``open()`` attached and is idempotent too.
"""

from __future__ import annotations

import errno
import hashlib
import os
import uuid as _uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import ramdisk
from ..errors import FailedPrecondition, InvalidArgument, NotFound
from ..host_identity import host_identity
from ..kernel import block, loop, nvme_fabrics
from ..kernel.errors import KernelError
from ..naming import Tags, nqn_for
from ..paths import PathPolicy
from . import fence
from .reservation import Reservation
from .stack import META_BYTES
from .uri import ChildUri

if TYPE_CHECKING:  # types only: both services use the nexus package
    from ..bdevs import BdevService
    from ..replica.service import ReplicaService

# nvme-tcp host settings for remote children: fail I/O to md quickly so a lost leg is faulted
# (instead of hanging the nexus), keep reconnecting so a returning target comes back by itself.
NVMF_RECONNECT_DELAY = 1
NVMF_FAST_IO_FAIL_TMO = 1
NVMF_CTRL_LOSS_TMO = -1
NVMF_KEEP_ALIVE_TMO = 5


@dataclass
class ChildContext:
    node: str
    replicas: ReplicaService  # local replica lookup
    loop_tag: str
    paths: PathPolicy  # which files and devices aio/uring children may open
    bdevs: BdevService | None = None  # bdev:/// children that are not replicas


class ChildDevice:
    def __init__(self, uri: ChildUri, ctx: ChildContext):
        self.uri, self.ctx = uri, ctx

    def check(self) -> None:
        """Refuse, before anything is recorded or opened, a child that can never be used."""

    def open(self) -> str:
        raise NotImplementedError

    def open_fenced(self, resv: Reservation) -> str:
        """``open`` for a nexus that fences with NVMe reservations: the device its I/O must go
        through for the reservation to hold it off (the same as ``open`` but for local replicas)."""
        return self.open()

    def close(self) -> None:
        pass

    def fence(self, dev: str, resv: Reservation) -> bool:
        """Take the nexus's NVMe reservation on this child (see fence.py); False when the child
        has no NVMe namespace a foreign nexus could reach."""
        return False

    def fenced(self, resv: Reservation) -> bool:
        """After its I/O failed: did another host take the reservation from this nexus?"""
        return False

    @property
    def tag(self) -> str:
        """A short stable token naming this child in kernel objects we attach for it."""
        return hashlib.sha256(self.uri.uri.encode()).hexdigest()[:16]


class LocalReplica(ChildDevice):
    """A replica (or a CreateBdev bdev) of this node, used through its device-mapper device.

    A nexus that fences (NVMe reservations on) uses a replica that is shared with reservations
    through its own share instead, over a loopback controller of this node: another node's nexus
    that takes the reservation on that share then locks this one out of the local leg too, the
    same as out of its remote legs. Without that the local leg would take the old nexus's writes
    after the preempt (md acknowledges a write one leg took)."""

    def _row(self):
        row = self.ctx.replicas.by_name(self.uri.path)
        if row is not None and self.uri.uuid and row.uuid != self.uri.uuid:
            raise InvalidArgument(f"child {self.uri.uri}: replica {self.uri.path} has uuid {row.uuid}")
        return row

    def open(self) -> str:
        row = self._row()
        if row is None and self.ctx.bdevs is not None:
            dev = self.ctx.bdevs.device(self.uri.path, self.uri.uuid)  # a bdev made by CreateBdev
            if dev is not None:
                return dev
        if row is None:
            raise NotFound(f"child {self.uri.uri}: no replica or bdev named {self.uri.path!r} on this node")
        return self.ctx.replicas.device(row)

    def open_fenced(self, resv: Reservation) -> str:
        row = self._row()
        target = self.ctx.replicas.target
        if row is None or not target.reservations_on(row.name):
            return self.open()  # not shared (nobody else reaches it) or no reservations to fence with
        share = self._share(row.uuid)
        target.admit_local(row.name, share.hostnqn)
        try:
            return share.open()
        except FailedPrecondition:
            target.release_local(row.name)
            raise

    def _share(self, row_uuid: str | None = None) -> Nvmf:
        """The replica's own share as an NVMe-oF child of this node (the loopback controller)."""
        target = self.ctx.replicas.target
        ns_uuid = row_uuid or self.uri.uuid
        share = Nvmf(
            ChildUri(
                uri=target.uri(self.uri.path, ns_uuid or ""),
                scheme="nvmf",
                path=nqn_for(self.uri.path),
                host=target.address,
                port=target.port,
                uuid=ns_uuid,
            ),
            self.ctx,
        )
        share.namespace_timeout = 30  # the wait for the loopback namespace it has always had
        return share

    def _share_namespace(self):
        row = self._row()
        return self._share(row.uuid).namespace() if row is not None else None

    def close(self) -> None:
        self._share().close()
        self.ctx.replicas.target.release_local(self.uri.path)

    def fence(self, dev: str, resv: Reservation) -> bool:
        ns = self._share_namespace()
        if ns is None or ns.path != dev:
            return False  # used through its device-mapper device: not reachable by another host
        return fence.take(dev, self._share().hostid, resv, f"child {self.uri.uri} (through its share)")

    def fenced(self, resv: Reservation) -> bool:
        ns = self._share_namespace()
        return ns is not None and fence.fenced(ns.path, self._share().hostid, resv)


class FileOrDevice(ChildDevice):
    def check(self) -> None:
        self._target()

    def _target(self):
        return self.ctx.paths.check(
            self.uri.path, f"child {self.uri.uri}", META_BYTES + 4096, Tags(self.ctx.node).nexus_prefix
        )

    def open(self) -> str:
        target = self._target()
        path = target.path
        if target.kind == "block":
            dev = path
        else:
            found = [lo for lo in loop.find_by_file(path) if block.size_bytes(lo.path) > 0]
            dev = (
                found[0].path
                if found
                else loop.attach(path, tag=self.ctx.loop_tag, block_size=self.uri.blk_size or 0).path
            )
        if self.uri.blk_size and block.logical_block_size(dev) != self.uri.blk_size:
            raise InvalidArgument(f"child {self.uri.uri}: block size is {block.logical_block_size(dev)}")
        return dev

    def close(self) -> None:
        if not os.path.isfile(self.uri.path):
            return
        for dev in loop.find_by_file(self.uri.path):
            if loop.status(dev)["file_name"] == self.ctx.loop_tag and not block.holders(dev.path):
                loop.detach(dev)


class Malloc(ChildDevice):
    """A RAM disk (mayastor/ramdisk.py), in the nexus children's name space."""

    @property
    def disk(self) -> ramdisk.RamDisk:
        size, blk = ramdisk.check(self.uri.path, self.uri.params)
        return ramdisk.RamDisk(self.ctx.node, self.uri.path, size, blk)

    def size(self) -> int:
        return self.disk.size

    def open(self) -> str:
        return self.disk.open(self.ctx.loop_tag)

    def close(self) -> None:
        self.disk.destroy()


class Nvmf(ChildDevice):
    """A remote replica through the kernel nvme-tcp host, found by the namespace uuid."""

    namespace_timeout = 10  # seconds from the connect until the namespace's node shows

    @property
    def hostnqn(self) -> str:
        return self._host()[0]

    @property
    def hostid(self) -> str:
        return self._host()[1]

    def _host(self) -> tuple[str, str]:
        """The host NQN this child connects as (the node's, or the URI's ``hostnqn``) and its host id."""
        ident = host_identity(self.ctx.node)
        hostnqn = self.uri.params.get("hostnqn") or ident.hostnqn
        hostid = ident.hostid if hostnqn == ident.hostnqn else str(_uuid.uuid5(_uuid.NAMESPACE_URL, hostnqn))
        return hostnqn, hostid

    def _opts(self) -> nvme_fabrics.ConnectOptions:
        hostnqn, hostid = self._host()
        return nvme_fabrics.ConnectOptions(
            nqn=self.uri.path,
            traddr=self.uri.host,
            trsvcid=self.uri.port,
            hostnqn=hostnqn,
            hostid=hostid,
            reconnect_delay=NVMF_RECONNECT_DELAY,
            ctrl_loss_tmo=NVMF_CTRL_LOSS_TMO,
            fast_io_fail_tmo=NVMF_FAST_IO_FAIL_TMO,
            keep_alive_tmo=NVMF_KEEP_ALIVE_TMO,
        )

    def controllers(self) -> list[nvme_fabrics.Controller]:
        o = self._opts()
        return nvme_fabrics.find_controllers(o.nqn, o.traddr, str(o.trsvcid), o.hostnqn)

    def open(self) -> str:
        if not self.uri.uuid:
            raise InvalidArgument(f"child {self.uri.uri}: nvmf children need ?uuid=<replica uuid>")
        if not self.controllers():
            try:
                nvme_fabrics.connect(self._opts())
            except nvme_fabrics.AlreadyConnectedError:
                pass
            except KernelError as exc:
                raise FailedPrecondition(f"child {self.uri.uri}: cannot connect: {exc}") from None
        try:
            return nvme_fabrics.wait_for_namespace(
                self.uri.uuid, timeout=self.namespace_timeout, hostnqn=self._opts().hostnqn
            ).path
        except KernelError as exc:
            self.close()
            raise FailedPrecondition(f"child {self.uri.uri}: {exc}") from None

    def close(self) -> None:
        for c in self.controllers():
            nvme_fabrics.disconnect(c)

    def namespace(self) -> nvme_fabrics.NamespaceDevice | None:
        return nvme_fabrics.find_namespace(self.uri.uuid, self.hostnqn) if self.uri.uuid else None

    def fence(self, dev: str, resv: Reservation) -> bool:
        return fence.take(dev, self.hostid, resv, f"child {self.uri.uri}")

    def fenced(self, resv: Reservation) -> bool:
        ns = self.namespace()
        return ns is not None and fence.fenced(ns.path, self.hostid, resv)


class Nbd(ChildDevice):
    # pyroute2 (netlink) is imported on first use: it costs a fifth of the daemon's start-up
    @property
    def backend(self) -> str:
        return f"mayastor:{self.ctx.node}:{self.tag}"

    def _find(self):
        from ..kernel import nbd_sysfs

        return nbd_sysfs.connected_to(self.backend)

    def open(self) -> str:
        # sysfs and the handshake first: a server that is down or silent fails here, before the
        # netlink client (pyroute2, seconds to import under emulation) is even loaded
        from ..kernel import nbd_proto

        dev = self._find()
        if dev is not None:
            return dev.path
        addr = nbd_proto.parse_uri(f"nbd://{self.uri.host}:{self.uri.port}/{self.uri.path}")
        try:
            sock, info = nbd_proto.handshake(addr)
        except (OSError, nbd_proto.NbdProtocolError) as exc:
            raise FailedPrecondition(f"child {self.uri.uri}: cannot connect: {exc}") from None
        from ..kernel import nbd

        try:
            return nbd.attach(sock, info, self.uri.uri, backend=self.backend).path
        except (KernelError, OSError) as exc:
            raise FailedPrecondition(f"child {self.uri.uri}: cannot attach: {exc}") from None

    def close(self) -> None:
        from ..kernel import nbd

        dev = self._find()
        if dev is not None:
            try:
                nbd.disconnect(dev)
            except KernelError as exc:
                if exc.errno != errno.ENODEV:
                    raise


REGISTRY: dict[str, type[ChildDevice]] = {
    "bdev": LocalReplica,
    "aio": FileOrDevice,
    "uring": FileOrDevice,
    "malloc": Malloc,
    "nvmf": Nvmf,
    "nbd": Nbd,
}


def device_for(uri: ChildUri, ctx: ChildContext) -> ChildDevice:
    kind = REGISTRY.get(uri.scheme)
    if kind is None:  # a URI kind that only CreateBdev makes (null://)
        raise InvalidArgument(
            f"child {uri.uri[:200]}: {uri.scheme} devices are not nexus children here; "
            "make one with CreateBdev and use bdev:///<name>"
        )
    return kind(uri, ctx)
