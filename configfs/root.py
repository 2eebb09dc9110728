"""The nvmet configfs root: lists every object, saves the tree to JSON and restores it.

`restore()` is all-or-nothing: it records each object it creates and, when a later step fails,
deletes them again in reverse order before re-raising (nvmetcli leaves half a tree behind).
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from typing import Any

from .errors import CFSNotSupportedError
from .host import Host
from .node import NVMET_ROOT, CFSNode
from .port import Port
from .subsystem import Subsystem

CONFIGFS_MOUNT = "/sys/kernel/config"


class Root:
    def __init__(self, path: str = NVMET_ROOT):
        self.path = path
        if not os.path.isdir(path):
            mount = os.path.dirname(path)
            if not os.path.isdir(mount) or not os.listdir(mount):
                hint = f"mount -t configfs none {mount}"
            else:
                hint = "modprobe nvmet nvmet-tcp"
            raise CFSNotSupportedError("open nvmet configfs", f"{path} is missing; run: {hint}", path)

    # listing ------------------------------------------------------------------
    def _names(self, sub: str) -> list[str]:
        base = os.path.join(self.path, sub)
        return sorted(e.name for e in os.scandir(base) if e.is_dir(follow_symlinks=False))

    @property
    def subsystems(self) -> list[Subsystem]:
        return [Subsystem(n, "lookup", self.path) for n in self._names("subsystems")]

    @property
    def ports(self) -> list[Port]:
        return [Port(int(p), "lookup", self.path) for p in sorted(self._names("ports"), key=int)]

    @property
    def hosts(self) -> list[Host]:
        return [Host(n, "lookup", self.path) for n in self._names("hosts")]

    def subsystem(self, nqn: str, mode: str = "any") -> Subsystem:
        return Subsystem(nqn, mode, self.path)

    def port(self, portid: int, mode: str = "any") -> Port:
        return Port(portid, mode, self.path)

    def host(self, nqn: str, mode: str = "any") -> Host:
        return Host(nqn, mode, self.path)

    # whole tree ----------------------------------------------------------------
    def dump(self) -> dict[str, Any]:
        return {
            "hosts": [h.dump() for h in self.hosts],
            "ports": [p.dump() for p in self.ports],
            "subsystems": [s.dump() for s in self.subsystems],
        }

    def save(self, path: str) -> None:
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.dump(), f, indent=2, sort_keys=True)
        os.replace(tmp, path)

    def clear(self, only: Callable[[Any], bool] | None = None) -> None:
        """Delete ports, subsystems and hosts (all, or those for which ``only(obj)`` is true)."""
        keep = only or (lambda obj: True)
        for port in self.ports:
            if keep(port):
                port.delete()
        for subsys in self.subsystems:
            if keep(subsys):
                subsys.delete()
        for host in self.hosts:
            if keep(host):
                try:
                    host.delete()
                except OSError as exc:  # still linked from a subsystem we keep
                    if exc.errno != errno.EBUSY:
                        raise

    def restore(self, config: dict[str, Any]) -> None:
        created: list[CFSNode] = []

        def make(factory: type, key: Any) -> Any:
            obj = factory(key, "create", self.path)
            created.append(obj)
            return obj

        try:
            for h in config.get("hosts", []):
                if not os.path.isdir(os.path.join(self.path, "hosts", h["nqn"])):
                    make(Host, h["nqn"])
            ports = [(make(Port, int(p["portid"])), p) for p in config.get("ports", [])]
            for port, data in ports:
                port.write_attr_group("addr_", data.get("addr", {}))
                port.write_attr_group("param_", data.get("param", {}))
                for grp in data.get("ana_groups", []):
                    gid = int(grp["grpid"])
                    obj = port.ana_group(gid, "any")
                    if gid != 1:
                        created.append(obj)
                for ref in data.get("referrals", []):
                    obj = port.referral(ref["name"], "create")
                    created.append(obj)
                    obj.restore(ref)
            for data in config.get("subsystems", []):
                subsys = make(Subsystem, data["nqn"])
                subsys.restore_attrs(data.get("attr", {}))
                for nqn in data.get("allowed_hosts", []):
                    subsys.add_allowed_host(nqn)
                any_host = data.get("attr", {}).get("allow_any_host")
                if any_host is not None and bool(int(any_host)) != subsys.allow_any_host:
                    subsys.allow_any_host = bool(int(any_host))
                for ns_data in data.get("namespaces", []):
                    subsys.namespace(int(ns_data["nsid"]), "create").restore(ns_data)
            # Links last: the first link enables a port and binds its listener.
            for port, data in ports:
                for grp in data.get("ana_groups", []):
                    obj = port.ana_group(int(grp["grpid"]), "lookup")
                    state = grp.get("ana", {}).get("state")
                    if state and obj.state != state:
                        obj.state = state
                for nqn in data.get("subsystems", []):
                    port.add_subsystem(nqn)
        except BaseException:
            for obj in reversed(created):
                try:
                    obj.delete()
                except OSError:
                    pass  # best effort; the original error matters more
            raise

    def load(self, path: str) -> None:
        with open(path) as f:
            self.restore(json.load(f))
