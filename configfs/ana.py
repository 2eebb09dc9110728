"""nvmet ANA group of a port: ``ports/<id>/ana_groups/<grpid>/ana_state``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .node import Attr, CFSNode
from .validate import check_ana_grpid

if TYPE_CHECKING:
    from .port import Port

ANA_STATES = ("optimized", "non-optimized", "inaccessible", "persistent-loss", "change")


class AnaGroup(CFSNode):
    """Group 1 exists on every port and cannot be deleted; groups 2..128 start inaccessible."""

    _state = Attr("ana_state", str)

    def __init__(self, port: Port, grpid: int, mode: str = "any"):
        self.port = port
        self.grpid = check_ana_grpid(grpid)
        self.path = os.path.join(port.path, "ana_groups", str(grpid))
        self._setup("lookup" if grpid == 1 and mode == "any" else mode)

    @property
    def state(self) -> str:
        return self._state

    @state.setter
    def state(self, value: str) -> None:
        if value not in ANA_STATES:
            raise ValueError(f"invalid ANA state {value!r}: one of {', '.join(ANA_STATES)}")
        self._state = value

    def delete(self) -> None:
        if self.grpid != 1:
            self._rmdir()

    def dump(self) -> dict:
        return {"grpid": self.grpid, "ana": {"state": self.state}}
