"""Nexus: a dm-raid raid1 over children, published over nvmet or as a local device. The service
creates, destroys and lists nexuses; core.py holds what every nexus call uses, operations.py the
calls that change a running nexus."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select

from configfs.subsystem import CNTLID_MAX

from .. import validate
from ..errors import AlreadyExists, Internal, InvalidArgument, NotFound
from ..exports import Share
from ..kernel.block import SECTOR
from ..kernel.errors import KernelError
from ..rebuild.full import release_era_meta
from ..store import Nexus as Row
from ..store import NexusChild as ChildRow
from ..store import RebuildJob
from ..store import Replica as ReplicaRow
from . import state as S
from .children import device_for
from .core import BLOCK, NexusView
from .operations import NexusOperations
from .reservation import Reservation
from .stack import region_sectors_for
from .uri import ChildUri
from .uri import parse as parse_uri

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NexusArgs:
    """CreateNexus's arguments (0 cntlids: nvmet's whole range)."""

    name: str
    uuid: str
    size: int
    children: tuple[str, ...]
    min_cntlid: int = 0
    max_cntlid: int = 0
    reservation: Reservation = Reservation()
    nexus_info_key: str = ""


class NexusService(NexusOperations):
    # create / destroy ---------------------------------------------------------------------------
    def create(self, args: NexusArgs) -> NexusView:
        name, uuid, size, children = args.name, args.uuid, args.size, list(args.children)
        min_cntlid, max_cntlid, reservation = args.min_cntlid, args.max_cntlid, args.reservation
        nexus_info_key = args.nexus_info_key
        uuid = validate.uuid(uuid, "nexus uuid")
        name = validate.name(name or uuid, "nexus name")
        if size <= 0 or size % BLOCK or size > validate.SIZE_MAX:
            raise InvalidArgument(f"nexus size {size} must be a positive multiple of {BLOCK} up to {validate.SIZE_MAX}")
        if not children:
            raise InvalidArgument("a nexus needs at least one child")
        parsed = [parse_uri(c) for c in children]
        if len({p.uri for p in parsed}) != len(parsed):
            raise InvalidArgument("the same child is listed twice")
        for p in parsed:  # paths it may never open are refused before anything is recorded
            device_for(p, self.ctx).check()
        lo, hi = min_cntlid or 1, max_cntlid or CNTLID_MAX
        if not 1 <= lo < hi <= CNTLID_MAX:  # nvmet, unlike SPDK, cannot hand out a range of one id
            raise InvalidArgument(f"invalid controller id range {lo}..{hi} (1 <= min < max <= {CNTLID_MAX})")
        if len(nexus_info_key) > 255:
            raise InvalidArgument("nexus info key too long")
        with self.lock(uuid):
            # node-wide only while names and children are claimed (the intent rows); children are
            # opened afterwards, so a slow network child never holds up other creates
            with self.locks.hold("nexus-claims"):
                existing = self._check_new(name, uuid, size, parsed)
                if existing is not None:
                    return existing
                self._record_intent(name, uuid, size, parsed, lo, hi, reservation, nexus_info_key)
            return self._build(name, uuid)

    def _record_intent(
        self,
        name: str,
        uuid: str,
        size: int,
        parsed: list[ChildUri],
        lo: int,
        hi: int,
        resv: Reservation,
        nexus_info_key: str,
    ) -> None:
        with self.store.session() as s:
            s.add(
                Row(
                    uuid=uuid,
                    name=name,
                    size=size,
                    state="init",
                    lifecycle="creating",
                    min_cntl_id=lo,
                    max_cntl_id=hi,
                    resv_key=resv.key,
                    preempt_key=resv.preempt_key,
                    resv_type=resv.type,
                    preempt_policy=resv.policy,
                    region_sectors=region_sectors_for(size // SECTOR),
                    nexus_info_key=nexus_info_key or None,
                    meta_local=self.meta_dir is not None,
                )
            )
            s.flush()
            for i, p in enumerate(parsed):
                s.add(
                    ChildRow(
                        nexus_uuid=uuid,
                        uri=p.uri,
                        position=i,
                        state="online",
                        reason=S.R_NONE,
                        device_uuid=p.uuid,
                        healthy=True,
                    )
                )

    def _build(self, name: str, uuid: str) -> NexusView:
        """Open the children and assemble the stack of a recorded nexus (its lock held); on
        failure everything, the intent rows included, is removed again."""
        row, kids = self.load_any(uuid)
        try:
            self.apply(row, kids, fresh={k.id for k in kids}, nosync=True)
            self.infos.put(row, kids)  # before it is listed, as io-engine's Create
        except BaseException as exc:
            self.teardown(row, kids)
            with self.store.session() as s:
                s.delete(s.get(Row, uuid))
            if isinstance(exc, (KernelError, OSError, ValueError)):
                raise Internal(f"create nexus {name}: {exc}") from None
            raise
        with self.store.session() as s:
            r = s.get(Row, uuid)
            r.lifecycle = "ready"
            r.state = S.transition(r.state, "online")
        log.info("nexus %s (%s) created over %d children", name, uuid, len(kids))
        return self.view(uuid)

    def _check_new(self, name: str, uuid: str, size: int, parsed: list[ChildUri]) -> NexusView | None:
        uris = [p.uri for p in parsed]
        with self.store.session() as s:
            row = s.get(Row, uuid)
            if row is not None:
                kids = list(s.scalars(select(ChildRow.uri).where(ChildRow.nexus_uuid == uuid)))
                if row.name == name and row.size == size and sorted(kids) == sorted(uris):
                    return None if row.lifecycle != "ready" else self.view(uuid)
                raise AlreadyExists(f"nexus {uuid} exists with other arguments")
            if s.scalar(select(Row.uuid).where(Row.name == name)) is not None:
                raise AlreadyExists(f"a nexus named {name} exists already")
            replica = s.scalar(select(ReplicaRow.uuid).where(ReplicaRow.name == name))
            if replica is not None:  # one NQN space: nqn.2019-05.io.openebs:<name>
                raise AlreadyExists(f"the name {name} belongs to replica {replica} (its NQN would be shared)")
            ids = {p.uuid for p in parsed if p.uuid}
            clash = s.scalar(select(ChildRow).where(ChildRow.uri.in_(uris))) or (
                s.scalar(select(ChildRow).where(ChildRow.device_uuid.in_(ids))) if ids else None
            )
            if clash is not None:
                raise InvalidArgument(f"child {clash.uri} belongs to nexus {clash.nexus_uuid}")
        return None

    def teardown(self, row: Row, kids: list[ChildRow]) -> None:
        if self.stack(row.uuid).fail_held_io():  # first: nvmet's namespace disable waits for held I/O
            log.info("nexus %s: the I/O it held is failed, not written", row.name)
        if row.share == Share.NVMF or row.ana_grpid:
            self.unpublish_kernel(row)
        st = self.stack(row.uuid)
        era_meta = st.era_meta_devnum()
        st.teardown()
        release_era_meta(era_meta, self.node, row.uuid)
        for kid in kids:
            self.close_child(row.uuid, kid)

    def destroy(self, uuid: str) -> None:
        uuid = validate.uuid(uuid, "nexus uuid")
        self.rebuilds.stop_nexus(uuid)
        with self.lock(uuid):
            with self.store.session() as s:
                row = s.get(Row, uuid)
                if row is None:
                    raise NotFound(f"nexus {uuid} not found")
                row.lifecycle = "destroying"
            self.finish_destroy(uuid)

    def finish_destroy(self, uuid: str) -> None:
        row, kids = self.load_any(uuid)
        try:
            self.teardown(row, kids)
        except (KernelError, OSError) as exc:
            raise Internal(f"destroy nexus {row.name}: {exc}") from None
        if row.lifecycle != "creating":  # a create that never finished was never put
            self._put_clean_shutdown(row, kids)
        with self.store.session() as s:
            s.delete(s.get(Row, uuid))
            for job in s.scalars(select(RebuildJob).where(RebuildJob.nexus_uuid == uuid)):
                s.delete(job)
        log.info("nexus %s (%s) destroyed", row.name, uuid)

    def list(self, name: str | None = None, uuid: str | None = None) -> list[NexusView]:
        with self.store.session() as s:
            q = select(Row.uuid).where(Row.lifecycle == "ready")
            if name:
                q = q.where(Row.name == name)
            if uuid:
                q = q.where(Row.uuid == uuid)
            uuids = list(s.scalars(q.order_by(Row.name)))
        return [self.view(u) for u in uuids]

    def info(self, key: str) -> dict:
        """NexusInfo equivalent: clean shutdown flag and each child's health, by uuid or info key."""
        with self.store.session() as s:
            row = s.scalar(select(Row).where((Row.uuid == key) | (Row.nexus_info_key == key)))
            if row is None:
                raise NotFound(f"no nexus info under {key}")
            kids = list(s.scalars(select(ChildRow).where(ChildRow.nexus_uuid == row.uuid)))
            return {
                "clean_shutdown": row.clean_shutdown,
                "children": [{"uuid": k.device_uuid or "", "uri": k.uri, "healthy": k.healthy} for k in kids],
            }
