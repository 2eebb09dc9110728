"""Bring nexuses back at start (after a clean stop, kill -9 or a reboot), after the pools.

Finished rows are reassembled from their children's superblocks: a raid device still in the
kernel with the same table is adopted untouched, otherwise the table is loaded again and md
resyncs only what the bitmaps mark dirty. Children that cannot be opened get a '- -' slot and
are FAULTED (recoverable: ChildOperation online brings them back). Unfinished creates are rolled
back, unfinished destroys finished; published nexuses are republished.
"""

from __future__ import annotations

import logging
import os

from sqlalchemy import select

from ..errors import MayastorError
from ..exports import Share
from ..kernel.errors import KernelError
from ..store import Nexus as Row
from ..store import NexusChild as ChildRow
from . import state as S
from .stack import release_meta_file

log = logging.getLogger(__name__)


def reconcile_nexuses(node) -> None:
    svc = node.nexuses
    with node.store.session() as s:
        uuids = list(s.scalars(select(Row.uuid)))
    for uuid in uuids:
        try:
            _one(svc, uuid)
        except (MayastorError, KernelError, OSError) as exc:
            log.error("nexus %s could not be brought back: %s", uuid, exc)
    _drop_orphan_meta_files(svc)


def _drop_orphan_meta_files(svc) -> None:
    """Metadata files of nexuses or children SQLite no longer has (a crash between the row's
    removal and the file's): detached and deleted."""
    if not svc.meta_dir or not os.path.isdir(svc.meta_dir):
        return
    with svc.store.session() as s:
        kept = {f"{u}-{cid}.meta" for u, cid in s.execute(select(ChildRow.nexus_uuid, ChildRow.id))}
    for name in os.listdir(svc.meta_dir):
        if not name.endswith(".meta") or name in kept:
            continue
        path = os.path.join(svc.meta_dir, name)
        log.info("removing orphan nexus metadata file %s", path)
        try:
            release_meta_file(path)
        except OSError as exc:
            log.error("orphan %s: %s", path, exc)


def _one(svc, uuid: str) -> None:
    row, kids = svc.load_any(uuid)
    if row.lifecycle == "creating":
        log.info("rolling back unfinished create of nexus %s", row.name)
        svc.teardown(row, kids)
        with svc.store.session() as s:
            s.delete(s.get(Row, uuid))
        return
    if row.lifecycle == "destroying":
        svc.finish_destroy(uuid)
        return
    if row.state in ("shutting_down", "shutdown"):
        return  # stays down (and its kernel devices, if any, stay suspended) until destroyed
    faulted = False
    for kid in kids:
        if not svc.in_table(kid):
            continue
        try:
            svc.device_of(kid).open()
        except (MayastorError, KernelError, OSError) as exc:
            log.warning(
                "nexus %s: child %s cannot be opened (%s); faulted until it is brought online", row.name, kid.uri, exc
            )
            svc.set_child(kid.id, "faulted", S.R_IO_FAILURE, healthy=False, fault=True)
            faulted = True
    row, kids = svc.load_any(uuid)
    svc.apply(row, kids)
    if row.published and row.share == Share.NVMF:
        svc.publish_kernel(row)
    with svc.store.session() as s:
        s.get(Row, uuid).clean_shutdown = False
    svc.refresh_state(uuid)
    if faulted:
        svc.persist_info_unanswered(uuid)
    log.info("nexus %s (%s) is back", row.name, uuid)
