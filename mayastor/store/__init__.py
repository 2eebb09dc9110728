"""Desired state in SQLite: SQLAlchemy models (models.py) and the database handle (db.py).

SQLite is the source of truth for what should exist; the kernel is what does exist. Every
mutating call records its intent (``lifecycle='creating'`` etc.) before touching the kernel and its
completion after, so reconcile after a crash knows what was half done.
"""

from .db import Store, open_store
from .models import Base, Bdev, Nexus, NexusChild, Pool, RebuildJob, Replica

__all__ = ["Base", "Bdev", "Nexus", "NexusChild", "Pool", "RebuildJob", "Replica", "Store", "open_store"]
