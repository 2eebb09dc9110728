"""Nexus verify: compare every child's data segment by segment, name the segments that differ,
and optionally repair them.

1. Scan: each child's digests per window (remote children's from their own node over gRPC, so
   only digests cross the network; local ones from the leg device). Writes land on the legs one
   after the other, so a live nexus can show a segment that differs only for a moment.
2. Confirm: the suspects are digested again with the nexus's I/O held (its top device suspended:
   in-flight writes finish on every leg first), a few at a time. Only what still differs is reported.
3. Repair (asked for): with I/O held, the segment is read from a child holding the majority
   value (or the one the caller prefers when there is no majority) and written through the raid
   device, so md itself writes every leg; then it is digested again.

The nexus must be online with every child in sync and no rebuild running (FAILED_PRECONDITION
otherwise): verify answers "do the copies agree", not "which leg is still catching up".
"""

from __future__ import annotations

import logging
import mmap
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

from ..errors import FailedPrecondition, InvalidArgument, MayastorError
from ..nexus.uri import parse as parse_uri
from . import digests as D
from .peers import Peer, PeerError

log = logging.getLogger(__name__)

WINDOW_SEGMENTS = 256  # segments asked of every child at once
HOLD_SEGMENTS = 16  # suspects re-read per I/O hold: keeps each hold short


def mismatching(columns: list[list[int]]) -> list[int]:
    """Indices where the children's digests (one list per child, same length) are not all equal."""
    return [i for i, row in enumerate(zip(*columns)) if len(set(row)) > 1]


def pick_source(values: dict[str, int], order: list[str], prefer: str | None = None) -> tuple[str | None, str]:
    """The child to copy a differing segment from: the one preferred by the caller, or the first
    (in slot order) of a strict majority. None with the reason when there is no majority."""
    if prefer is not None:
        if prefer not in values:
            raise InvalidArgument(f"prefer: {prefer[:200]!r} is not a child of the nexus")
        return prefer, "preferred by the caller"
    counts = Counter(values.values())
    top, n = counts.most_common(1)[0]
    if n * 2 <= len(values):
        return None, "no majority among the children: pass prefer=<child uri> to choose the good copy"
    return next(u for u in order if values[u] == top), f"majority ({n} of {len(values)})"


@dataclass
class ChildScan:
    uri: str
    cid: int
    leg: str  # the leg's data device on this node (reads and, through md, repairs)
    peer: Peer | None  # the node serving its digests, None = read here
    ident: dict  # how that node names the replica ({"uuid": ..} or {"name": ..})
    data_offset: int = 0  # where nexus byte 0 lies on the replica (old nexuses: after inline metadata)
    via: str = "local"

    def digests(self, offset: int, length: int, segment: int, algorithm: str) -> list[int]:
        if self.peer is not None:
            try:
                out = self.peer.digests(self.ident, self.data_offset + offset, length, segment, algorithm)
                self.via = f"peer {self.peer.endpoint}"
                return out
            except PeerError as exc:
                # the node did not answer for this replica: read it through our own connection
                log.warning(
                    "verify: %s: digests from %s failed (%s); reading through the nexus's path",
                    self.uri,
                    self.peer.endpoint,
                    exc,
                )
                self.peer = None
                self.via = "nexus path"
        return D.scan(self.leg, offset, length, segment, algorithm)


class Verifier:
    def __init__(self, nexuses, grpc_port: int):
        self.nx, self.grpc_port = nexuses, grpc_port
        self._peers: dict[str, Peer] = {}
        self._pool: ThreadPoolExecutor | None = None  # digests of all children side by side

    # setup --------------------------------------------------------------------------------------
    def _children(self, row, kids, peers: dict[str, str]) -> list[ChildScan]:
        """The raid's children; a remote one gets the Peer of its node (one per endpoint, in self._peers)."""
        st = self.nx.stack(row.uuid)
        out = []
        for kid in self.nx.raid_members(row, kids):
            leg = st.leg_device(kid.id, "data")
            if leg is None:
                raise FailedPrecondition(f"child {kid.uri} has no leg device")
            u = parse_uri(kid.uri)
            peer, ident = None, {}
            if u.scheme == "nvmf":
                endpoint = peers.get(u.host, f"{u.host}:{self.grpc_port}")
                if endpoint not in self._peers:
                    self._peers[endpoint] = Peer(endpoint)
                peer = self._peers[endpoint]
                nqn_name = u.path.split(":", 1)[1] if ":" in u.path else u.path
                ident = {"uuid": u.uuid} if u.uuid else {"name": nqn_name}
            out.append(ChildScan(kid.uri, kid.id, leg, peer, ident, self.nx.data_offset(row)))
        return out

    def _check_ready(self, row, kids) -> None:
        if row.state != "online":
            raise FailedPrecondition(f"nexus {row.uuid} is {row.state}: verify needs every child online")
        bad = [k.uri for k in kids if k.position >= 0 and k.state != "online"]
        if bad or self.nx.rebuilds.of_nexus(row.uuid):
            raise FailedPrecondition(f"nexus {row.uuid} has children not in sync ({', '.join(bad) or 'rebuilding'})")
        status = self.nx.stack(row.uuid).status()
        if status is None or not status.in_sync:
            raise FailedPrecondition(f"nexus {row.uuid}: md is busy ({status.sync_action if status else 'no raid'})")

    @contextmanager
    def _io_held(self, uuid: str):
        """Suspend the published top device: writes in flight complete on all legs, new ones wait."""
        st = self.nx.stack(uuid)
        self.nx.ctl.suspend(st.top_name)
        try:
            yield
        finally:
            self.nx.ctl.resume(st.top_name)

    # the verify -------------------------------------------------------------------------------
    def verify(
        self,
        uuid: str,
        segment: int = D.DEFAULT_SEGMENT,
        algorithm: str = D.DEFAULT_ALGORITHM,
        repair: bool = False,
        prefer: str | None = None,
        peers: dict[str, str] | None = None,
    ) -> dict:
        began = time.monotonic()
        with self.nx.lock(uuid):
            row, kids = self.nx.running(uuid)
            self._check_ready(row, kids)
            size = row.size
            D.check_range(0, 0, segment, size, algorithm)  # the segment and algorithm
            try:
                children = self._children(row, kids, peers or {})
                if len(children) < 2:
                    raise FailedPrecondition(f"nexus {uuid} has {len(children)} child in its raid: nothing to compare")
                self._pool = ThreadPoolExecutor(max_workers=len(children), thread_name_prefix="verify")
                order = [c.uri for c in children]
                suspects = self._scan(children, size, segment, algorithm)
                confirmed = self._confirm(uuid, children, suspects, size, segment, algorithm)
                findings = []
                for i, values in confirmed:
                    off = i * segment
                    src, why = pick_source(values, order, prefer)
                    findings.append(
                        {
                            "offset": off,
                            "length": min(segment, size - off),
                            "digests": {u: f"{v:016x}" for u, v in values.items()},
                            "source": src,
                            "decision": why,
                            "repaired": False,
                        }
                    )
                if repair and findings:
                    self._repair(uuid, children, findings, segment, algorithm)
            finally:
                self._close()
            status = self.nx.stack(uuid).status()
        return {
            "uuid": uuid,
            "size": size,
            "segment": segment,
            "algorithm": algorithm,
            "segments": -(-size // segment),
            "children": [{"uri": c.uri, "via": c.via} for c in children],
            "transient": len(suspects) - len(confirmed),
            "mismatches": findings,
            "repaired": sum(1 for f in findings if f["repaired"]),
            "raid": {"sync_action": status.sync_action, "mismatch_cnt": status.mismatch_cnt} if status else None,
            "seconds": round(time.monotonic() - began, 3),
        }

    def _close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        for peer in self._peers.values():
            peer.close()
        self._peers.clear()

    def _digest_all(self, children, offset: int, length: int, segment: int, algorithm: str) -> list[list[int]]:
        pool = self._pool
        if pool is None:
            raise RuntimeError("digests are read only during a verify")
        futs = [pool.submit(c.digests, offset, length, segment, algorithm) for c in children]
        return [f.result() for f in futs]

    def _scan(self, children, size: int, segment: int, algorithm: str) -> list[int]:
        suspects = []
        window = WINDOW_SEGMENTS * segment
        for off in range(0, size, window):
            n = min(window, size - off)
            cols = self._digest_all(children, off, n, segment, algorithm)
            suspects += [off // segment + i for i in mismatching(cols)]
        return suspects

    def _confirm(self, uuid, children, suspects: list[int], size: int, segment: int, algorithm: str):
        """[(segment index, {uri: digest})] of the suspects that still differ with I/O held."""
        out = []
        for b in range(0, len(suspects), HOLD_SEGMENTS):
            batch = suspects[b : b + HOLD_SEGMENTS]
            with self._io_held(uuid):
                for i in batch:
                    off = i * segment
                    cols = self._digest_all(children, off, min(segment, size - off), segment, algorithm)
                    values = {c.uri: col[0] for c, col in zip(children, cols)}
                    if len(set(values.values())) > 1:
                        out.append((i, values))
        return out

    def _repair(self, uuid, children, findings: list[dict], segment: int, algorithm: str) -> None:
        st = self.nx.stack(uuid)
        raid = self.nx.ctl.info(st.raid_name).devnode
        legs = {c.uri: c.leg for c in children}
        buf = mmap.mmap(-1, segment)  # page aligned, as O_DIRECT wants
        for b in range(0, len(findings), HOLD_SEGMENTS):
            with self._io_held(uuid):
                for f in findings[b : b + HOLD_SEGMENTS]:
                    if f["source"] is None:
                        continue
                    _copy_through_md(legs[f["source"]], raid, f["offset"], f["length"], buf)
                    cols = self._digest_all(children, f["offset"], f["length"], segment, algorithm)
                    f["repaired"] = len({col[0] for col in cols}) == 1
                    f["after"] = f"{cols[0][0]:016x}"


def _copy_through_md(src: str, raid: str, offset: int, length: int, buf: mmap.mmap) -> None:
    """Read a segment from one leg and write it to the raid device: md writes every leg."""
    fi = os.open(src, os.O_RDONLY | os.O_DIRECT | os.O_CLOEXEC)
    try:
        fo = os.open(raid, os.O_WRONLY | os.O_DIRECT | os.O_CLOEXEC)
        try:
            mv = memoryview(buf)
            got = os.preadv(fi, [mv[:length]], offset)
            if got != length:
                raise MayastorError(f"short read of {src} at {offset}: {got} of {length}")
            put = os.pwritev(fo, [mv[:length]], offset)
            if put != length:
                raise MayastorError(f"short write to {raid} at {offset}: {put} of {length}")
            os.fsync(fo)
        finally:
            os.close(fo)
    finally:
        os.close(fi)
