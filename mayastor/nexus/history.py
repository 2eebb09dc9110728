"""Rebuild jobs as the API reports them: the one in progress for a child, and a nexus's finished
rebuilds (GetRebuildHistory, ListRebuildHistory) in io-engine's windows."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from .. import validate
from ..errors import NotFound
from ..store import Nexus as Row
from ..store import RebuildJob
from ..store.db import Store
from ..store.models import RebuildState


def history_window(jobs: list, since, count: int | None, newest_first: bool) -> list:
    """Finished rebuilds (oldest first) ended after ``since``, the newest ``count`` of them."""
    if since is not None:
        jobs = [j for j in jobs if j.ended_at.replace(tzinfo=None) > since]
    if newest_first:
        jobs = jobs[::-1]
        return jobs if count is None else jobs[:count]
    return jobs if count is None else jobs[len(jobs) - min(count, len(jobs)) :]


class RebuildHistory:
    def __init__(self, store: Store):
        self.store = store

    def active(self, nexus_uuid: str, uri: str) -> RebuildJob:
        """The child's rebuild that has not ended (the newest); NOT_FOUND when there is none."""
        with self.store.session() as s:
            job = s.scalar(
                select(RebuildJob)
                .where(
                    RebuildJob.nexus_uuid == validate.uuid(nexus_uuid),
                    RebuildJob.dst_uri == uri,
                    RebuildJob.state.in_((RebuildState.INIT, RebuildState.RUNNING, RebuildState.PAUSED)),
                )
                .order_by(RebuildJob.id.desc())
            )
        if job is None:
            raise NotFound(f"no rebuild job for child {uri}")
        return job

    def finished(
        self, nexus_uuid: str, since=None, count: int | None = None, newest_first: bool = False
    ) -> tuple[Row, list[RebuildJob], datetime | None]:
        """A nexus's row, its finished rebuilds in the ``since``/``count`` window, and the newest
        end time among all of them (before the window)."""
        with self.store.session() as s:
            row = s.get(Row, nexus_uuid)
            if row is None:
                raise NotFound(f"nexus {nexus_uuid} not found")
            q = select(RebuildJob).where(RebuildJob.nexus_uuid == nexus_uuid, RebuildJob.ended_at.is_not(None))
            jobs = list(s.scalars(q.order_by(RebuildJob.ended_at, RebuildJob.id)))
        newest = jobs[-1].ended_at if jobs else None
        return row, history_window(jobs, since, count, newest_first), newest

    def nexus_uuids(self) -> list[str]:
        """Every nexus that is ready (each one is a key of ListRebuildHistory)."""
        with self.store.session() as s:
            return list(s.scalars(select(Row.uuid).where(Row.lifecycle == "ready")))
