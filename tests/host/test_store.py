"""The state database: migrations applied at open, schema equal to the models, constraints enforced."""

import sqlite3

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.exc import IntegrityError

from mayastor.store import Base, Pool, Replica, open_store
from mayastor.store.db import head_revision


@pytest.fixture
def store(tmp_path):
    s = open_store(str(tmp_path / "state" / "mayastor.db"))
    yield s
    s.close()


def test_new_database_is_at_head(store):
    from mayastor.store.db import SCHEMA_HEAD
    assert store.revision() == head_revision() == SCHEMA_HEAD


def test_migrated_schema_equals_models(store):
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_reopen_keeps_data_and_is_idempotent(tmp_path):
    path = str(tmp_path / "m.db")
    s = open_store(path)
    with s.session() as db:
        db.add(Pool(uuid="p1", name="pool-1", disks=["/dev/vdb"], cluster_size=4 << 20, lifecycle="ready"))
    s.close()
    s = open_store(path)
    with s.session() as db:
        assert db.get(Pool, "p1").disks == ["/dev/vdb"]
    s.close()


def test_constraints(store):
    with store.session() as db:
        db.add(Pool(uuid="p1", name="pool-1", disks=["/dev/vdb"], cluster_size=4 << 20))
    with pytest.raises(IntegrityError):  # replica in a pool that does not exist
        with store.session() as db:
            db.add(Replica(uuid="r0", name="r0", pool_uuid="nope", thin_id=1, size=1 << 30))
    with pytest.raises(IntegrityError):  # duplicate pool name
        with store.session() as db:
            db.add(Pool(uuid="p2", name="pool-1", disks=["/dev/vdc"], cluster_size=4 << 20))
    with store.session() as db:
        db.add(Replica(uuid="r1", name="r1", pool_uuid="p1", thin_id=1, size=1 << 30))
    with pytest.raises(IntegrityError):  # two replicas on one thin device id
        with store.session() as db:
            db.add(Replica(uuid="r2", name="r2", pool_uuid="p1", thin_id=1, size=1 << 30))
    with store.session() as db:
        r = db.get(Replica, "r1")
        assert r.lifecycle == "creating" and r.allowed_hosts == [] and r.thin and r.share == 0


def test_unversioned_file_is_refused_or_upgraded(tmp_path):
    # A file holding tables but no alembic_version is not ours: upgrading must fail, not corrupt it.
    path = tmp_path / "foreign.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE pools (x INTEGER)")
    con.commit()
    con.close()
    with pytest.raises(Exception):
        open_store(str(path))


def old_database(tmp_path, revision: str, *inserts: str) -> str:
    """A database file at an older revision holding the rows ``inserts`` write."""
    from alembic import command
    from sqlalchemy import create_engine

    from mayastor.store.db import alembic_config

    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"
    engine = create_engine(url)
    with engine.begin() as conn:
        cfg = alembic_config(url)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        for sql in inserts:
            conn.exec_driver_sql(sql)
    engine.dispose()
    return str(path)


def test_upgrade_of_an_older_database_keeps_its_rows(tmp_path):
    """A database file written at revision 0001 is brought to head at open, rows intact."""
    s = open_store(old_database(
        tmp_path, "0001",
        "INSERT INTO pools VALUES ('p1', 'pool-1', '[\"/dev/vdb\"]', 4194304, 'ready', 3, '2026-01-01 00:00:00')",
        "INSERT INTO replicas (uuid, name, pool_uuid, thin_id, size, thin, share, allowed_hosts, lifecycle, "
        "created_at) VALUES ('r1', 'rep-1', 'p1', 1, 1048576, 1, 1, '[]', 'ready', '2026-01-01 00:00:00')"))
    assert s.revision() == head_revision()
    with s.session() as db:
        r = db.get(Replica, "r1")
        assert (r.name, r.kind, r.discarded, r.source_uuid) == ("rep-1", "replica", False, None)
        assert db.get(Pool, "p1").transaction_id == 3
    s.close()


def test_journal_mode_follows_the_filesystem():
    from mayastor.kernel.mountinfo import filesystem_of, parse_mountinfo
    from mayastor.store.db import journal_mode
    info = parse_mountinfo("1 0 0:20 / / ro,relatime - 9p /dev/root ro,trans=virtio\n"
            "2 1 0:30 / /tmp rw - overlay virtme_rw_overlay7 rw\n"
            "3 1 0:31 / /work/main rw - 9p virtme.initmount0 rw\n"
            "4 3 0:32 / /work/main/my\\040state rw - ext4 /dev/vda rw\n")
    assert filesystem_of("/work/main/.state/state.db", info) == "9p"
    assert journal_mode("/work/main/.state/state.db", info) == "DELETE"  # WAL needs a shared mmap
    assert journal_mode("/tmp/x/state.db", info) == "WAL"
    assert journal_mode("/work/main/my state/state.db", info) == "WAL"
    assert filesystem_of("/work/mainly/x", info) == "9p"  # /work/main is not a prefix of /work/mainly


def test_a_snapshot_sees_one_committed_state(tmp_path):
    """Reads in Store.snapshot() do not see a write committed between them (a plain sqlite3
    session would: the driver opens no transaction for SELECTs)."""
    s = open_store(str(tmp_path / "snap.db"))
    with s.session() as db:
        db.add(Pool(uuid="p1", name="before", disks=["/dev/vdb"], cluster_size=4 << 20, lifecycle="ready"))
    try:
        with s.snapshot() as snap:
            assert snap.get(Pool, "p1").name == "before"
            other = sqlite3.connect(str(tmp_path / "snap.db"), timeout=30)
            other.execute("UPDATE pools SET name = 'after' WHERE uuid = 'p1'")
            other.commit()
            other.close()
            snap.expire_all()
            assert snap.get(Pool, "p1").name == "before"
            kept = snap.get(Pool, "p1")
        assert kept.name == "before" and kept.disks == ["/dev/vdb"]  # usable after the block
        with s.session() as db:
            assert db.get(Pool, "p1").name == "after"
    finally:
        s.close()


def test_nexuses_from_before_0005_keep_their_metadata_on_the_children(tmp_path):
    """A nexus recorded at 0004 keeps the inline layout (its children hold 4 MiB of raid metadata);
    one recorded afterwards by the service defaults to the same unless told otherwise."""
    from mayastor.store import Nexus

    s = open_store(old_database(
        tmp_path, "0004",
        "INSERT INTO nexuses (uuid, name, size, state, lifecycle, min_cntl_id, max_cntl_id, resv_key, "
        "preempt_key, share, published, allowed_hosts, ana_state, ana_grpid, region_sectors, clean_shutdown, "
        "created_at) VALUES ('n1', 'vol', 1048576, 'online', 'ready', 1, 65519, 0, 0, 0, 0, '[]', 1, 0, 2048, "
        "0, '2026-01-01 00:00:00')"))
    try:
        with s.session() as db:
            assert db.get(Nexus, "n1").meta_local is False
            db.add(Nexus(uuid="n2", name="vol2", size=1 << 20, meta_local=True))
        with s.session() as db:
            assert db.get(Nexus, "n2").meta_local is True
    finally:
        s.close()


def test_nexuses_from_before_0006_get_io_engines_default_reservation_type(tmp_path):
    """Rows recorded at 0005 read back WriteExclusiveAllRegs / ArgKey, io-engine's defaults for a
    request naming neither; their keys are kept."""
    from mayastor.store import Nexus

    s = open_store(old_database(
        tmp_path, "0005",
        "INSERT INTO nexuses (uuid, name, size, state, lifecycle, min_cntl_id, max_cntl_id, resv_key, "
        "preempt_key, share, published, allowed_hosts, ana_state, ana_grpid, region_sectors, clean_shutdown, "
        "meta_local, created_at) VALUES ('n1', 'vol', 1048576, 'online', 'ready', 1, 2, -2, 0, 0, 0, '[]', 1, 0, "
        "2048, 0, 1, '2026-01-01 00:00:00')"))
    try:
        with s.session() as db:
            n = db.get(Nexus, "n1")
            assert (n.resv_key, n.resv_type, n.preempt_policy) == ((1 << 64) - 2, 5, 0)
    finally:
        s.close()


def schema_of(path: str) -> dict:
    """Every table's columns (type, nullability, default), keys, indexes and checks, as SQLite reports them."""
    from sqlalchemy import create_engine, inspect
    engine = create_engine(f"sqlite:///{path}")
    try:
        insp = inspect(engine)
        out = {}
        for t in sorted(insp.get_table_names()):
            out[t] = {
                "columns": sorted((c["name"], str(c["type"]), c["nullable"], c["default"]) for c in insp.get_columns(t)),
                "pk": insp.get_pk_constraint(t)["constrained_columns"],
                "fks": sorted((tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]),
                               tuple(sorted(f["options"].items()))) for f in insp.get_foreign_keys(t)),
                "indexes": sorted((tuple(i["column_names"]), bool(i["unique"])) for i in insp.get_indexes(t)),
                "uniques": sorted(tuple(u["column_names"]) for u in insp.get_unique_constraints(t)),
                "checks": sorted(" ".join(c["sqltext"].split()) for c in insp.get_check_constraints(t)),
            }
        return out
    finally:
        engine.dispose()


def test_a_new_database_has_the_schema_every_migration_builds(tmp_path):
    """A fresh file is made from the models and stamped at head (no migration run): the same
    tables, columns, defaults, keys, indexes and checks as running every migration from the first."""
    fresh = tmp_path / "fresh.db"
    open_store(str(fresh)).close()
    migrated = old_database(tmp_path, "head")
    assert schema_of(str(fresh)) == schema_of(migrated)
    con = sqlite3.connect(fresh)
    assert con.execute("SELECT version_num FROM alembic_version").fetchall() == [(head_revision(),)]
    con.close()
    # an empty file (what a bare sqlite3 open leaves) is new too
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    s = open_store(str(empty))
    assert s.revision() == head_revision()
    s.close()
