"""Replica shares over NVMe-oF TCP through the kernel target (nvmet).

One subsystem per replica, ``nqn.2019-05.io.openebs:<replica name>``, namespace 1 backed by the
replica's dm device with device_uuid = the replica uuid (stable across restarts and nodes), linked
to one TCP port on the target address (8420 by default). An empty allowed-hosts list means any host.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import threading

import configfs
from configfs.errors import CFSError

from ..validate import NQN_PREFIX

PORT_IDS = range(8420, 8500)  # nvmet port ids this daemon creates; owned by the mayastor family
MODEL = "Mayastor NVMe controller"


def nqn_for(name: str) -> str:
    return NQN_PREFIX + name


def nguid_for(uuid: str) -> str:
    return uuid  # nvmet accepts the hyphenated form for device_nguid as well


class NvmfTarget:
    def __init__(self, address: str, port: int = 8420):
        self.address = address
        self.port = port
        self.adrfam = "ipv6" if ipaddress.ip_address(address).version == 6 else "ipv4"
        self._lock = threading.Lock()  # port and host objects are shared by every share
        self.root = configfs.Root()

    def uri(self, name: str, uuid: str) -> str:
        host = f"[{self.address}]" if self.adrfam == "ipv6" else self.address
        return f"nvmf://{host}:{self.port}/{nqn_for(name)}?uuid={uuid}"

    # port ---------------------------------------------------------------------------------------
    def _find_port(self, trsvcid: int | None = None) -> configfs.Port | None:
        want = str(trsvcid or self.port)
        for p in self.root.ports:
            a = p.address
            if a.get("trtype") == "tcp" and a.get("traddr") == self.address and a.get("trsvcid") == want:
                return p
        return None

    def _ensure_port(self, trsvcid: int | None = None) -> configfs.Port:
        """Our port on (address, trsvcid); created with a free id from our range when missing."""
        port = self._find_port(trsvcid)
        if port is not None:
            return port
        used = {p.portid for p in self.root.ports}
        free = next((i for i in PORT_IDS if i not in used), None)
        if free is None:
            raise CFSError(errno.ENOSPC, "create nvmet port", "no free port id in our range", "ports")
        port = configfs.Port(free, "create")
        port.set_address("tcp", self.adrfam, self.address, trsvcid or self.port)
        return port

    # share / unshare ----------------------------------------------------------------------------
    def share(self, name: str, uuid: str, device: str, allowed_hosts: list[str]) -> None:
        """Create or update the share; idempotent. Rolls back a subsystem it created on failure."""
        nqn = nqn_for(name)
        sub_path = os.path.join(self.root.path, "subsystems", nqn)
        created = not os.path.isdir(sub_path)
        sub = configfs.Subsystem(nqn, "any")
        try:
            if created:
                if sub.has_attr("attr_model"):
                    sub.model = MODEL
            ns = sub.namespace(1, "any")
            if not ns.enabled or ns.device_path != device:
                ns.disable()
                ns.set_device(device, uuid=uuid, nguid=nguid_for(uuid))
                ns.enable()
            with self._lock:
                sub.set_allowed_hosts(allowed_hosts)
                port = self._ensure_port()
                if nqn not in port.subsystems:
                    port.add_subsystem(nqn)
            self._gc_hosts()
        except Exception:
            if created:
                self.unshare(name)
            raise

    def set_allowed_hosts(self, name: str, hosts: list[str]) -> None:
        """Change who may connect. Hosts no longer allowed are cut off: the port link is cycled,
        which drops their controllers (new connects are checked against the list)."""
        sub = configfs.Subsystem(nqn_for(name), "lookup")
        removed = [h for h in sub.allowed_hosts if h not in hosts] or (hosts and sub.allow_any_host)
        with self._lock:
            sub.set_allowed_hosts(hosts)
            if removed:
                for port in self.root.ports:
                    if sub.nqn in port.subsystems:
                        port.remove_subsystem(sub.nqn)
                        port.add_subsystem(sub.nqn)
        self._gc_hosts()

    def unshare(self, name: str) -> None:
        nqn = nqn_for(name)
        if not os.path.isdir(os.path.join(self.root.path, "subsystems", nqn)):
            return
        sub = configfs.Subsystem(nqn, "lookup")
        with self._lock:
            ours = self._find_port()
            portids = sub.ports() + ([ours.portid] if ours is not None else [])
            sub.delete()  # unlinks ports and hosts, disables and removes namespaces
            self._drop_unused_ports(portids)
        self._gc_hosts()

    def _drop_unused_ports(self, portids: list[int]) -> None:
        for port in self.root.ports:
            if port.portid in portids and port.portid in PORT_IDS and not port.subsystems:
                port.delete()

    def is_shared(self, name: str) -> bool:
        return os.path.isdir(os.path.join(self.root.path, "subsystems", nqn_for(name)))

    def shared_device(self, name: str) -> str | None:
        try:
            return configfs.Subsystem(nqn_for(name), "lookup").namespace(1, "lookup").device_path
        except CFSError:
            return None

    def revalidate(self, name: str) -> None:
        configfs.Subsystem(nqn_for(name), "lookup").namespace(1, "lookup").revalidate_size()

    def _gc_hosts(self) -> None:
        """Host entries nobody links to any more are removed (they grant nothing by themselves)."""
        with self._lock:
            linked = {h for s in self.root.subsystems for h in s.allowed_hosts}
            for host in self.root.hosts:
                if host.nqn not in linked:
                    try:
                        host.delete()
                    except CFSError:
                        pass  # linked meanwhile by someone else
