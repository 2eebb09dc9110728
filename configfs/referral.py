"""nvmet discovery referral: ``ports/<id>/referrals/<name>`` pointing hosts at another port."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .node import Attr, CFSNode
from .validate import check_plain_name

if TYPE_CHECKING:
    from .port import Port


class Referral(CFSNode):
    enabled = Attr("enable", bool, "1 publishes the referral in the discovery log")

    def __init__(self, port: Port, name: str, mode: str = "any"):
        self.port = port
        self.name = check_plain_name(name, "referral name")
        self.path = os.path.join(port.path, "referrals", name)
        self._setup(mode)

    def set_address(self, **addr: str) -> None:
        """Set addr_* attributes (trtype, adrfam, traddr, trsvcid, treq, portid); only while disabled."""
        self.write_attr_group("addr_", addr)

    @property
    def address(self) -> dict[str, str]:
        return self.read_attr_group("addr_")

    def delete(self) -> None:
        if self.exists and self.enabled:
            self.enabled = False
        self._rmdir()

    def dump(self) -> dict:
        return {"name": self.name, "addr": self.address, "enable": int(self.enabled)}

    def restore(self, data: dict) -> None:
        self.set_address(**data.get("addr", {}))
        if data.get("enable"):
            self.enabled = True
