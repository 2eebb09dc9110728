"""Named points where the daemon can be made to die by SIGKILL, for crash-consistency tests.

``MAYASTOR_CRASHPOINT=<name>`` kills the process the first time it reaches that point; unset (the
normal case) it costs one dict lookup. The kill is real: nothing is flushed or cleaned up.
"""

from __future__ import annotations

import os
import signal

_WANTED = ""
_armed = False


def arm() -> None:
    """Called once the daemon serves: crash points never fire during start-up reconcile. The
    variable is read here, not at import, so a process forked after the import sees its own."""
    global _armed, _WANTED
    _WANTED = os.environ.get("MAYASTOR_CRASHPOINT", "")
    _armed = bool(_WANTED)


def hit(name: str) -> None:
    if _armed and _WANTED == name:
        os.kill(os.getpid(), signal.SIGKILL)
