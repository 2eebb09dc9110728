"""SQLAlchemy models of the node's desired state. Schema changes go through migrations/."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, ForeignKey, Integer, String, UniqueConstraint, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


# Lifecycle of a pool or replica row: intent recorded first, kernel work, then done.
LIFECYCLE = ("creating", "ready", "destroying")
KINDS = ("replica", "snapshot", "clone")


class Pool(Base):
    __tablename__ = "pools"

    uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    disks: Mapped[list] = mapped_column(JSON)  # URIs as given by the user
    cluster_size: Mapped[int] = mapped_column(BigInteger)  # dm-thin data block size, bytes
    lifecycle: Mapped[str] = mapped_column(String(16), default="creating")
    # dm-thin transaction id last committed; fences SQLite against the pool's own metadata
    transaction_id: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    replicas: Mapped[list["Replica"]] = relationship(back_populates="pool")


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
