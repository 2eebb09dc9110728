"""nvmet port: ``ports/<id>`` with its address, subsystem links, ANA groups and referrals.

The first subsystem link enables the port (the listener is bound then), so bind errors such as
an address in use surface on `add_subsystem`; addr_* writes on an enabled port fail with EACCES.
"""

from __future__ import annotations

import os

from .ana import AnaGroup
from .node import NVMET_ROOT, Attr, CFSNode, kernel_op
from .referral import Referral
from .validate import check_portid, check_subsystem_nqn

TRTYPES = ("tcp", "rdma", "fc", "loop")
ADRFAMS = ("ipv4", "ipv6", "ib", "fc")


class Port(CFSNode):
    trtype = Attr("addr_trtype", str, "transport: tcp, rdma, fc, loop")
    adrfam = Attr("addr_adrfam", str, "address family: ipv4, ipv6, ib, fc")
    traddr = Attr("addr_traddr", str, "listen address")
    trsvcid = Attr("addr_trsvcid", str, "listen port (service id)")
    treq = Attr("addr_treq", str, "secure channel requirement")

    def __init__(self, portid: int, mode: str = "any", root: str = NVMET_ROOT):
        self.portid = check_portid(portid)
        self.root = root
        self.path = os.path.join(root, "ports", str(portid))
        self._setup(mode)

    def set_address(
        self, trtype: str = "tcp", adrfam: str = "ipv4", traddr: str = "", trsvcid: str | int = 4420, **extra: str
    ) -> None:
        if trtype not in TRTYPES:
            raise ValueError(f"invalid trtype {trtype!r}: one of {TRTYPES}")
        if adrfam not in ADRFAMS:
            raise ValueError(f"invalid adrfam {adrfam!r}: one of {ADRFAMS}")
        values = {"trtype": trtype, "adrfam": adrfam, "traddr": traddr, "trsvcid": str(trsvcid), **extra}
        self.write_attr_group("addr_", values)

    @property
    def address(self) -> dict[str, str]:
        return self.read_attr_group("addr_")

    @property
    def params(self) -> dict[str, str]:
        return self.read_attr_group("param_")

    # subsystem links -------------------------------------------------------------
    @property
    def subsystems(self) -> list[str]:
        return self._list_links("subsystems")

    @property
    def enabled(self) -> bool:
        return bool(self.subsystems)

    def add_subsystem(self, nqn: str) -> None:
        check_subsystem_nqn(nqn)
        target = os.path.join(self.root, "subsystems", nqn)
        link = os.path.join(self.path, "subsystems", nqn)
        kernel_op(
            "link subsystem to port",
            link,
            lambda: os.symlink(target, link),
            keywords=("nvmet", "port", "transport", "address"),
        )

    def remove_subsystem(self, nqn: str) -> None:
        link = os.path.join(self.path, "subsystems", check_subsystem_nqn(nqn))
        if os.path.islink(link):
            kernel_op("unlink subsystem from port", link, lambda: os.unlink(link))

    # ANA groups and referrals ------------------------------------------------------
    def ana_group(self, grpid: int, mode: str = "any") -> AnaGroup:
        return AnaGroup(self, grpid, mode)

    @property
    def ana_groups(self) -> list[AnaGroup]:
        return [AnaGroup(self, int(g), "lookup") for g in self._list_dirs("ana_groups")]

    def referral(self, name: str, mode: str = "any") -> Referral:
        return Referral(self, name, mode)

    @property
    def referrals(self) -> list[Referral]:
        return [Referral(self, r, "lookup") for r in self._list_dirs("referrals")]

    def delete(self) -> None:
        if not self.exists:
            return
        for nqn in self.subsystems:
            self.remove_subsystem(nqn)
        for ref in self.referrals:
            ref.delete()
        for grp in self.ana_groups:
            grp.delete()
        self._rmdir()

    # save / restore ----------------------------------------------------------------
    def dump(self) -> dict:
        return {
            "portid": self.portid,
            "addr": self.address,
            "param": self.params,
            "ana_groups": [g.dump() for g in self.ana_groups],
            "referrals": [r.dump() for r in self.referrals],
            "subsystems": self.subsystems,
        }
