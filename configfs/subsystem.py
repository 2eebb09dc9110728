"""nvmet subsystem: ``subsystems/<nqn>`` with namespaces and allowed_hosts links."""

from __future__ import annotations

import functools
import os

from .host import Host
from .namespace import Namespace
from .node import NVMET_ROOT, Attr, CFSNode, kernel_op
from .validate import check_nqn, check_subsystem_nqn

CNTLID_MAX = 0xFFEF  # NVME_CNTLID_MAX: ids above are reserved


class Subsystem(CFSNode):
    allow_any_host = Attr("attr_allow_any_host", bool, "accept every host NQN (no allowed_hosts links)")
    serial = Attr("attr_serial", str, "controller serial number (settable until first discovery)")
    model = Attr("attr_model", str, "controller model string (settable until first discovery)")
    version = Attr("attr_version", str, "NVMe version reported, e.g. 1.3")
    cntlid_min = Attr("attr_cntlid_min", int, "lowest controller id handed out")
    cntlid_max = Attr("attr_cntlid_max", int, "highest controller id handed out")

    def __init__(self, nqn: str, mode: str = "any", root: str = NVMET_ROOT):
        self.nqn = check_subsystem_nqn(nqn)
        self.root = root
        self.path = os.path.join(root, "subsystems", nqn)
        self._setup(mode)

    def set_cntlid_range(self, lo: int, hi: int) -> None:
        """Set the controller id range. nvmet keeps min < max at every write (either write
        that would make them meet is EINVAL), so the order depends on the range it has now."""
        if not 1 <= lo < hi <= CNTLID_MAX:
            raise ValueError(f"controller id range {lo}..{hi}: nvmet needs 1 <= min < max <= {CNTLID_MAX:#x}")
        if lo >= self.cntlid_max:
            self.cntlid_max, self.cntlid_min = hi, lo
        else:
            self.cntlid_min, self.cntlid_max = lo, hi

    # namespaces ---------------------------------------------------------------
    def namespace(self, nsid: int, mode: str = "any") -> Namespace:
        return Namespace(self, nsid, mode)

    @property
    def namespaces(self) -> list[Namespace]:
        return [Namespace(self, int(n), "lookup") for n in self._list_dirs("namespaces")]

    # allowed hosts -------------------------------------------------------------
    @property
    def allowed_hosts(self) -> list[str]:
        return self._list_links("allowed_hosts")

    def add_allowed_host(self, nqn: str) -> Host:
        """Link hosts/<nqn> (created if needed) into allowed_hosts; turns allow_any_host off first."""
        host = Host(check_nqn(nqn), "any", self.root)
        if self.allow_any_host:
            self.allow_any_host = False
        link = os.path.join(self.path, "allowed_hosts", nqn)
        if not os.path.islink(link):
            kernel_op("allow host", link, lambda: os.symlink(host.path, link))
        return host

    def remove_allowed_host(self, nqn: str) -> None:
        link = os.path.join(self.path, "allowed_hosts", check_nqn(nqn))
        if os.path.islink(link):
            kernel_op("disallow host", link, lambda: os.unlink(link))

    def set_allowed_hosts(self, nqns: list[str]) -> None:
        """Make allowed_hosts exactly ``nqns``; an empty list means any host may connect."""
        wanted = [check_nqn(n) for n in nqns]
        for nqn in self.allowed_hosts:
            if nqn not in wanted:
                self.remove_allowed_host(nqn)
        for nqn in wanted:
            self.add_allowed_host(nqn)
        if not wanted and not self.allow_any_host:
            self.allow_any_host = True

    # teardown ------------------------------------------------------------------
    def ports(self) -> list[int]:
        """Ids of the ports this subsystem is linked into."""
        ports_dir = os.path.join(self.root, "ports")
        found = []
        for portid in sorted(os.listdir(ports_dir), key=int) if os.path.isdir(ports_dir) else []:
            if os.path.islink(os.path.join(ports_dir, portid, "subsystems", self.nqn)):
                found.append(int(portid))
        return found

    def delete(self) -> None:
        """Unlink from ports, delete namespaces and host links, then the subsystem (kernel-facts 4.2 order)."""
        if not self.exists:
            return
        for portid in self.ports():
            link = os.path.join(self.root, "ports", str(portid), "subsystems", self.nqn)
            kernel_op("unlink subsystem from port", link, functools.partial(os.unlink, link))
        for ns in self.namespaces:
            ns.delete()
        for nqn in self.allowed_hosts:
            self.remove_allowed_host(nqn)
        self._rmdir()

    # save / restore ------------------------------------------------------------
    def dump(self) -> dict:
        return {
            "nqn": self.nqn,
            "attr": self.read_attr_group("attr_"),
            "allowed_hosts": self.allowed_hosts,
            "namespaces": [ns.dump() for ns in self.namespaces],
        }

    def restore_attrs(self, attrs: dict) -> None:
        attrs = dict(attrs)
        # allow_any_host must follow the host links (set by restore), not precede them.
        attrs.pop("allow_any_host", None)
        self.write_attr_group("attr_", attrs)
