"""Open the state database, bringing its schema to the newest migration first."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from ..errors import Internal
from ..kernel import mountinfo

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
# The newest migration. A database already there skips importing Alembic at start (seconds under
# emulation); tests/host/test_store.py checks this equals Alembic's head.
SCHEMA_HEAD = "0008"


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


# SQLite's WAL keeps its index in a shared mapping of <db>-shm, which host-shared and network
# filesystems do not offer (on the test VM's 9p share every read then fails with "disk I/O
# error"); there the database uses a rollback journal instead.
NO_SHARED_MMAP = ("9p", "nfs", "nfs4", "cifs", "smb3", "fuse.sshfs")


def journal_mode(path: str, mounts: list[mountinfo.Mount] | None = None) -> str:
    try:
        fs = mountinfo.filesystem_of(os.path.abspath(path), mounts)
    except OSError:
        return "WAL"
    return "DELETE" if fs in NO_SHARED_MMAP else "WAL"


def _sqlite_pragmas(mode: str):
    def apply(dbapi_conn, _record) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA journal_mode={mode}")  # WAL: readers do not block the writer
        cur.execute("PRAGMA synchronous=FULL")  # an acknowledged change survives power loss
        cur.close()

    return apply


class Store:
    def __init__(self, engine: Engine):
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back on an exception."""
        with self._sessions.begin() as s:
            yield s

    @contextmanager
    def snapshot(self) -> Iterator[Session]:
        """A read-only session whose reads all see one committed state. A plain session does not:
        the sqlite3 driver opens no transaction for SELECTs, so a write committed between two of
        them (a nexus row, then its children) would show half of it. The objects read stay
        usable after the block, as a closed session's do (detached, never expired)."""
        with self._sessions() as s:
            s.connection().exec_driver_sql("BEGIN")
            try:
                yield s
            finally:
                s.expunge_all()  # before the rollback, which would expire them
                s.rollback()

    def revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def ping(self) -> None:
        """Raises when the state file cannot be read."""
        from sqlalchemy import text

        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def close(self) -> None:
        self.engine.dispose()


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    if head is None:
        raise RuntimeError("the migrations directory has no head revision")
    return head


def open_store(path: str) -> Store:
    """Open (creating if needed) the SQLite file at ``path`` and upgrade it to the newest schema."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    url = f"sqlite:///{os.path.abspath(path)}"
    engine = create_engine(url, connect_args={"timeout": 30})  # wait for the writer, don't fail
    event.listen(engine, "connect", _sqlite_pragmas(journal_mode(path)))
    stored = _stored_revision(path)
    if stored is None and _is_empty(path):
        _create_at_head(engine)
    elif stored != SCHEMA_HEAD:
        from alembic import command

        with engine.begin() as conn:
            cfg = alembic_config(url)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    return Store(engine)


def _create_at_head(engine: Engine) -> None:
    """A new database gets the models' schema at once and is stamped with the newest revision:
    running every migration from the first costs seconds under emulation at each fresh start.
    tests/host/test_store.py checks that both ways build the same schema."""
    from .models import Base

    with engine.begin() as conn:
        Base.metadata.create_all(conn)
        conn.exec_driver_sql(
            "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
            "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
        )
        conn.exec_driver_sql("INSERT INTO alembic_version (version_num) VALUES (?)", (SCHEMA_HEAD,))


def _is_empty(path: str) -> bool:
    """No file yet, or a file without a single table (what sqlite3 leaves after a bare open)."""
    if not os.path.exists(path):
        return True
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
    except sqlite3.Error:
        return False
    finally:
        conn.close()


def _stored_revision(path: str) -> str | None:
    if not os.path.exists(path):
        return None
    conn = sqlite3.connect(path)
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        return row[0] if row else None
    except sqlite3.Error:
        return None
    finally:
        conn.close()


M = TypeVar("M")


def required(session: Session, model: type[M], key: object) -> M:
    """``session.get`` of a row the caller's lock keeps in place: its absence is a bug, said so."""
    row = session.get(model, key)
    if row is None:
        raise Internal(f"{getattr(model, '__tablename__', model.__name__)} {key} is missing from the database")
    return row
