"""SQLAlchemy models of the node's desired state. Schema changes go through migrations/."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, ForeignKey, Integer, String, UniqueConstraint, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from ..validate import U64_MAX


def utcnow() -> datetime:
    return datetime.now(UTC)


class UInt64(TypeDecorator):
    """A uint64 of the wire (reservation keys: the control plane draws them from a uuid's low 64
    bits, so half are >= 2**63) in SQLite's signed 64-bit INTEGER: stored as its two's-complement
    bit pattern, read back unsigned. The column stays BIGINT, so no migration is needed; values
    below 2**63 are stored exactly as before."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if not 0 <= value <= U64_MAX:
            raise ValueError(f"{value} is not a uint64")
        return value - (1 << 64) if value >= 1 << 63 else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value + (1 << 64) if value < 0 else value


class Base(DeclarativeBase):
    pass


# Lifecycle of a pool or replica row: intent recorded first, kernel work, then done.
LIFECYCLE = ("creating", "ready", "destroying")
KINDS = ("replica", "snapshot", "clone")


class Pool(Base):
    __tablename__ = "pools"

    uuid: Mapped[str] = mapped_column(
        String(36), primary_key=True
    )  # LVM pools: the VG uuid (38 chars; SQLite keeps any length)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    disks: Mapped[list] = mapped_column(JSON)  # URIs as given by the user
    cluster_size: Mapped[int] = mapped_column(BigInteger)  # dm-thin data block size (LVM: extent size), bytes
    pooltype: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # PoolType wire value
    lifecycle: Mapped[str] = mapped_column(String(16), default="creating")
    # dm-thin transaction id last committed; fences SQLite against the pool's own metadata
    transaction_id: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    replicas: Mapped[list[Replica]] = relationship(back_populates="pool")


class Replica(Base):
    __tablename__ = "replicas"
    __table_args__ = (UniqueConstraint("pool_uuid", "thin_id"),)

    uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    pool_uuid: Mapped[str] = mapped_column(ForeignKey("pools.uuid"))
    thin_id: Mapped[int] = mapped_column(Integer)  # dm-thin device id inside the pool (24 bits)
    size: Mapped[int] = mapped_column(BigInteger)  # bytes, as requested
    thin: Mapped[bool] = mapped_column(Boolean, default=True)
    entity_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    share: Mapped[int] = mapped_column(Integer, default=0)  # ShareProtocol wire value
    allowed_hosts: Mapped[list] = mapped_column(JSON, default=list)
    lifecycle: Mapped[str] = mapped_column(String(16), default="creating")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    kind: Mapped[str] = mapped_column(String(16), default="replica", server_default="replica")  # KINDS
    # snapshot: uuid of the replica it was taken of; clone: uuid of the snapshot it came from
    source_uuid: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    discarded: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    txn_id: Mapped[str | None] = mapped_column(String(255), nullable=True)

    pool: Mapped[Pool] = relationship(back_populates="replicas")


# Nexus state (one explicit machine, persisted on every transition; see docs/architecture notes).
NEXUS_STATES = ("init", "online", "degraded", "faulted", "shutting_down", "shutdown")
CHILD_STATES = ("unknown", "online", "degraded", "faulted")


class RebuildState(StrEnum):
    """A rebuild job's state (rows keep the string; grpc/nexus.py maps it to the wire)."""

    INIT = "init"
    RUNNING = "running"
    STOPPED = "stopped"
    PAUSED = "paused"
    FAILED = "failed"
    COMPLETED = "completed"


REBUILD_STATES = tuple(RebuildState)


class Nexus(Base):
    __tablename__ = "nexuses"

    uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    size: Mapped[int] = mapped_column(BigInteger)  # bytes the nexus exposes
    state: Mapped[str] = mapped_column(String(16), default="init")  # NEXUS_STATES
    lifecycle: Mapped[str] = mapped_column(String(16), default="creating")
    min_cntl_id: Mapped[int] = mapped_column(Integer, default=1)
    max_cntl_id: Mapped[int] = mapped_column(Integer, default=0xFFEF)
    resv_key: Mapped[int] = mapped_column(UInt64, default=0)  # uint64 on the wire
    preempt_key: Mapped[int] = mapped_column(UInt64, default=0)
    resv_type: Mapped[int] = mapped_column(Integer, default=5, server_default="5")  # NvmeReservation wire value
    preempt_policy: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # NexusNvmePreemption
    share: Mapped[int] = mapped_column(Integer, default=0)  # ShareProtocol wire value
    published: Mapped[bool] = mapped_column(Boolean, default=False)  # share NONE = local device
    allowed_hosts: Mapped[list] = mapped_column(JSON, default=list)
    ana_state: Mapped[int] = mapped_column(Integer, default=1)  # NvmeAnaState wire value
    ana_grpid: Mapped[int] = mapped_column(Integer, default=0)  # nvmet ANA group (2..128) while published
    region_sectors: Mapped[int] = mapped_column(Integer, default=2048)  # raid1 bitmap region
    # NexusInfo equivalent: did the nexus stop cleanly (children consistent)?
    clean_shutdown: Mapped[bool] = mapped_column(Boolean, default=False)
    nexus_info_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # raid metadata in files on this node (children carry data only); false: inline, 4 MiB per child
    meta_local: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    rebuild_rate: Mapped[int] = mapped_column(UInt64, default=0, server_default="0")  # copier bytes/s, 0 = unlimited
    # bumped whenever the raid is rebuilt from zeroed metadata: a child whose superblock is from an
    # older epoch must be wiped (treated as new) before it rejoins
    metadata_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    children: Mapped[list[NexusChild]] = relationship(
        back_populates="nexus", cascade="all, delete-orphan", order_by="NexusChild.position"
    )


class NexusChild(Base):
    __tablename__ = "nexus_children"
    __table_args__ = (UniqueConstraint("nexus_uuid", "uri"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    nexus_uuid: Mapped[str] = mapped_column(ForeignKey("nexuses.uuid", ondelete="CASCADE"))
    uri: Mapped[str] = mapped_column(String(1024))
    position: Mapped[int] = mapped_column(Integer)  # leg index in the raid1 table
    state: Mapped[str] = mapped_column(String(16), default="unknown")  # CHILD_STATES
    reason: Mapped[int] = mapped_column(Integer, default=0)  # ChildStateReason wire value
    device_uuid: Mapped[str | None] = mapped_column(String(36), nullable=True)
    healthy: Mapped[bool] = mapped_column(Boolean, default=True)  # NexusInfo: safe to rebuild from
    fault_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    metadata_epoch: Mapped[int] = mapped_column(
        Integer, default=0, server_default="0"
    )  # epoch its raid superblock belongs to

    nexus: Mapped[Nexus] = relationship(back_populates="children")


class RebuildJob(Base):
    """A rebuild, running or finished: finished rows are the rebuild history (kept in SQLite,
    unlike Mayastor's in-memory history)."""

    __tablename__ = "rebuild_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    nexus_uuid: Mapped[str] = mapped_column(String(36), index=True)
    src_uri: Mapped[str] = mapped_column(String(1024))
    dst_uri: Mapped[str] = mapped_column(String(1024))
    state: Mapped[str] = mapped_column(String(16), default=RebuildState.INIT)  # REBUILD_STATES
    partial: Mapped[bool] = mapped_column(Boolean, default=False)
    blocks_total: Mapped[int] = mapped_column(BigInteger, default=0)
    blocks_recovered: Mapped[int] = mapped_column(BigInteger, default=0)
    blocks_transferred: Mapped[int] = mapped_column(BigInteger, default=0)
    block_size: Mapped[int] = mapped_column(Integer, default=512)
    checkpoint: Mapped[int] = mapped_column(BigInteger, default=0)  # next byte to copy after a restart
    phase: Mapped[str] = mapped_column(String(16), default="", server_default="")  # full rebuild: copy, delta, final
    era: Mapped[int | None] = mapped_column(Integer, nullable=True)  # dm-era era the copy pass began in
    bytes_read: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    bytes_written: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Bdev(Base):
    """A block device made by CreateBdev (mayastor/bdevs.py)."""

    __tablename__ = "bdevs"

    name: Mapped[str] = mapped_column(String(1024), primary_key=True)
    uri: Mapped[str] = mapped_column(String(1024))  # as given (parsed and checked)
    uuid: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(16))  # the URI scheme
    share: Mapped[int] = mapped_column(Integer, default=0)  # ShareProtocol wire value
    allowed_hosts: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
