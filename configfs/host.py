"""nvmet host: ``hosts/<hostnqn>``, the target of subsystems' ``allowed_hosts`` links."""

from __future__ import annotations

import os

from .node import NVMET_ROOT, CFSNode
from .validate import check_nqn


class Host(CFSNode):
    def __init__(self, nqn: str, mode: str = "any", root: str = NVMET_ROOT):
        self.nqn = check_nqn(nqn)
        self.root = root
        self.path = os.path.join(root, "hosts", nqn)
        self._setup(mode)

    def delete(self) -> None:
        self._rmdir()

    def dump(self) -> dict:
        return {"nqn": self.nqn}
