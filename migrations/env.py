"""Alembic environment: used by mayastor.store.open_store (with a live connection) and by the
``alembic`` command line (with sqlalchemy.url)."""

from alembic import context
from sqlalchemy import create_engine

from mayastor.store.models import Base

config = context.config
target_metadata = Base.metadata


def migrate(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run() -> None:
    conn = config.attributes.get("connection")
    if conn is not None:
        migrate(conn)
        return
    with create_engine(config.get_main_option("sqlalchemy.url")).begin() as connection:
        migrate(connection)


run()
