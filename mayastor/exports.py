"""NVMe-oF exports through the kernel target (nvmet): the one module that builds subsystems.

Replica shares and nexus publishing both come here (``expose``/``withdraw``), and this module
alone decides who owns a subsystem, so one object can never take over another's export:

* every subsystem we create carries io-engine's serial for its owner — ``DCS`` + the first 17
  upper-case hex digits of SHA-256 of the owner's uuid — and exports that owner's device as
  namespace 1 (namespace uuid/nguid = ``Export.uuid``);
* an existing subsystem is ours to update only when its namespace 1 is the very device we export
  (same device number), or, when it has no namespace yet (a create cut short), when it carries the
  owner's serial or is linked nowhere; anything else is refused with ALREADY_EXISTS and left as it
  is — an export is never re-pointed to another device;
* ``withdraw`` deletes a subsystem only under the same rule.

Ports are keyed by (address, trsvcid); ones we create take ids from ``PORT_IDS``. An empty host
list means any host may connect.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

import configfs
from configfs.errors import CFSError

from .errors import AlreadyExists
from .naming import nqn_for, serial_for
from .netaddr import host_port
from .validate import NQN_PREFIX

log = logging.getLogger(__name__)

PORT_IDS = range(8420, 8500)  # nvmet port ids this daemon creates; owned by the mayastor family
MODEL = "Mayastor NVMe controller"
ANA_GROUPS = range(2, 129)


class Share(IntEnum):
    """A replica's, bdev's or nexus's share protocol (v1 ShareProtocol wire values; rows keep the int)."""

    NONE = 0
    NVMF = 1
    ISCSI = 2  # io-engine refuses it too


# NvmeAnaState wire value <-> nvmet ana_state
ANA_WIRE_TO_STATE = {1: "optimized", 2: "non-optimized", 3: "inaccessible", 4: "persistent-loss", 15: "change"}
ANA_STATE_TO_WIRE = {v: k for k, v in ANA_WIRE_TO_STATE.items()}


@dataclass(frozen=True)
class Export:
    """What one object exports: its name (the NQN's tail), its uuid (serial seed and namespace
    uuid/nguid), the block device, who may connect, on which TCP ports, and for a nexus its
    controller id range and ANA group (0 = no ANA group)."""

    name: str
    uuid: str
    device: str
    hosts: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    cntlid: tuple[int, int] | None = None
    ana_group: int = 0
    ana_state: int = 1
    ns_uuid: str | None = None  # namespace uuid/nguid when not ``uuid`` (a nexus: its volume's)
    reservations: bool = False  # NVMe reservations where nvmet has them (replicas: the nexus fences with them)

    @property
    def nqn(self) -> str:
        return nqn_for(self.name)

    @property
    def namespace_uuid(self) -> str:
        return self.ns_uuid or self.uuid


def _same_device(a: str, b: str) -> bool:
    try:
        return os.stat(a).st_rdev == os.stat(b).st_rdev
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


class NvmfTarget:
    def __init__(self, address: str, port: int = 8420):
        self.address = address
        self.port = port
        self.adrfam = "ipv6" if ipaddress.ip_address(address).version == 6 else "ipv4"
        self._lock = threading.Lock()  # port and host objects are shared by every export
        self.root = configfs.Root()
        self._local: dict[str, tuple[str, bool]] = {}  # name -> (this node's host, added by admit_local)

    def uri(self, name: str, uuid: str, port: int | None = None) -> str:
        return f"nvmf://{host_port(self.address, port or self.port)}/{nqn_for(name)}?uuid={uuid}"

    # ownership ----------------------------------------------------------------------------------
    def owner_check(self, name: str, uuid: str, device: str | None) -> configfs.Subsystem | None:
        """The existing subsystem of ``name`` when it is ours, None when there is none; ALREADY_EXISTS
        when it belongs to something else."""
        sub = self._lookup(nqn_for(name))
        if sub is not None and not self._ours(sub, uuid, device):
            raise AlreadyExists(f"NVMe-oF subsystem {sub.nqn} exists and exports another device; it is left untouched")
        return sub

    def _ours(self, sub: configfs.Subsystem, uuid: str, device: str | None) -> bool:
        ns = next((n for n in sub.namespaces if n.nsid == 1), None)
        exported = ns.device_path if ns is not None else ""
        if exported:
            if device is not None:
                return _same_device(exported, device)
            return sub.serial == serial_for(uuid)
        return sub.serial == serial_for(uuid) or (not sub.ports() and not sub.allowed_hosts)

    def _lookup(self, nqn: str) -> configfs.Subsystem | None:
        if not os.path.isdir(os.path.join(self.root.path, "subsystems", nqn)):
            return None
        try:
            return configfs.Subsystem(nqn, "lookup")
        except CFSError:
            return None

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

    # expose / withdraw --------------------------------------------------------------------------
    def expose(self, ex: Export) -> None:
        """Create or update the export (idempotent). Refused with ALREADY_EXISTS, changing nothing,
        when the subsystem belongs to another object; a subsystem this call created is removed
        again when a later step fails."""
        existing = self.owner_check(ex.name, ex.uuid, ex.device)
        created = existing is None
        sub = existing or configfs.Subsystem(ex.nqn, "create")
        try:
            if created:
                self._identify(sub, ex)
            ns = sub.namespace(1, "any")
            grpid = ex.ana_group or 1
            if not ns.enabled or not ns.device_path or ns.ana_grpid != grpid:
                ns.disable()
                ns.set_device(ex.device, uuid=ex.namespace_uuid, nguid=ex.namespace_uuid)
                ns.ana_grpid = grpid
                if ns.has_attr("resv_enable"):  # a feature probe: nvmet has reservations since 6.13
                    ns.resv_enable = ex.reservations
                ns.enable()
            with self._lock:
                sub.set_allowed_hosts(self._with_local(ex.name, list(ex.hosts)))
                for p in ex.ports or (self.port,):
                    port = self._ensure_port(p)
                    if ex.ana_group:
                        port.ana_group(ex.ana_group, "any").state = ANA_WIRE_TO_STATE.get(ex.ana_state, "optimized")
                    if ex.nqn not in port.subsystems:
                        port.add_subsystem(ex.nqn)
            self.gc_hosts()
        except Exception:
            if created:
                self.withdraw(ex.name, ex.uuid, ex.device, ex.ana_group)
            raise

    @staticmethod
    def _identify(sub: configfs.Subsystem, ex: Export) -> None:
        """Identity before any host connects (the kernel refuses it after discovery)."""
        if sub.has_attr("attr_model"):
            sub.model = MODEL
        sub.serial = serial_for(ex.uuid)
        if ex.cntlid is not None:
            sub.set_cntlid_range(*ex.cntlid)

    def set_allowed_hosts(self, name: str, hosts: list[str]) -> None:
        """Change who may connect. Hosts no longer allowed are cut off: the port link is cycled,
        which drops their controllers (new connects are checked against the list)."""
        sub = configfs.Subsystem(nqn_for(name), "lookup")
        hosts = self._with_local(name, hosts)
        removed = [h for h in sub.allowed_hosts if h not in hosts] or (hosts and sub.allow_any_host)
        with self._lock:
            sub.set_allowed_hosts(hosts)
            if removed:
                for port in self.root.ports:
                    if sub.nqn in port.subsystems:
                        port.remove_subsystem(sub.nqn)
                        port.add_subsystem(sub.nqn)
        self.gc_hosts()

    # this node's own host on a share ------------------------------------------------------------
    def admit_local(self, name: str, hostnqn: str) -> None:
        """Keep ``hostnqn`` (this node's own host) allowed on the export of ``name`` while a
        nexus here uses the replica through its share (so the share's reservation fences it too):
        added without cycling the ports, and kept when the share's host list is changed."""
        sub = configfs.Subsystem(nqn_for(name), "lookup")
        with self._lock:
            added = not sub.allow_any_host and hostnqn not in sub.allowed_hosts
            if added:
                sub.set_allowed_hosts([*sub.allowed_hosts, hostnqn])
            earlier = self._local.get(name)
            self._local[name] = (hostnqn, added or (earlier is not None and earlier[1]))

    def release_local(self, name: str) -> None:
        """The nexus no longer uses the share: this node's host goes again if only it added it."""
        hostnqn, added = self._local.pop(name, ("", False))
        if not added or not self.is_shared(name):
            return
        sub = configfs.Subsystem(nqn_for(name), "lookup")
        with self._lock:
            if hostnqn in sub.allowed_hosts:
                sub.set_allowed_hosts([h for h in sub.allowed_hosts if h != hostnqn])
        self.gc_hosts()

    def _with_local(self, name: str, hosts: list[str]) -> list[str]:
        """A restricted host list plus this node's own host where a local nexus uses the share."""
        local = self._local.get(name)
        if not hosts or local is None or local[0] in hosts:
            return hosts
        return [*hosts, local[0]]

    def set_ana_state(self, ports: list[int], grpid: int, ana_state: int) -> None:
        for p in ports:
            port = self._find_port(p)
            if port is not None:
                port.ana_group(grpid, "any").state = ANA_WIRE_TO_STATE[ana_state]

    def withdraw(self, name: str, uuid: str, device: str | None, ana_group: int = 0) -> None:
        """Remove the export of ``name`` if it is ours (idempotent); someone else's is left alone."""
        sub = self._lookup(nqn_for(name))
        if sub is None:
            return
        if not self._ours(sub, uuid, device):
            log.warning("not removing NVMe-oF subsystem %s: it exports another device", sub.nqn)
            return
        with self._lock:
            ours = self._find_port()
            portids = sub.ports() + ([ours.portid] if ours is not None else [])
            sub.delete()  # unlinks ports and hosts, disables and removes namespaces
            if ana_group in ANA_GROUPS:
                for port in self.root.ports:
                    if port.portid in portids:
                        try:
                            port.ana_group(ana_group, "lookup").delete()
                        except CFSError:
                            pass
            self._drop_unused_ports(portids)
        self.gc_hosts()

    def _drop_unused_ports(self, portids: list[int]) -> None:
        for port in self.root.ports:
            if port.portid in portids and port.portid in PORT_IDS and not port.subsystems:
                port.delete()

    # queries ------------------------------------------------------------------------------------
    def remove_subsystems_if(self, unwanted: Callable[[list[str]], bool]) -> list[str]:
        """Delete the subsystems of our NQN family whose namespaces' devices ``unwanted`` rejects
        (reconcile's orphans); their NQNs."""
        gone = []
        with self._lock:
            for sub in self.root.subsystems:
                if not sub.nqn.startswith(NQN_PREFIX):
                    continue
                devices = []
                for ns in sub.namespaces:
                    try:
                        devices.append(ns.device_path)
                    except CFSError:
                        pass
                if unwanted(devices):
                    sub.delete()
                    gone.append(sub.nqn)
        return gone

    def is_shared(self, name: str) -> bool:
        return os.path.isdir(os.path.join(self.root.path, "subsystems", nqn_for(name)))

    def shared_device(self, name: str) -> str | None:
        try:
            return configfs.Subsystem(nqn_for(name), "lookup").namespace(1, "lookup").device_path
        except CFSError:
            return None

    def reservations_on(self, name: str) -> bool:
        """Whether the export of ``name`` has NVMe reservations enabled (nvmet 6.13+)."""
        try:
            ns = configfs.Subsystem(nqn_for(name), "lookup").namespace(1, "lookup")
            return ns.has_attr("resv_enable") and bool(ns.resv_enable)
        except CFSError:
            return False

    def revalidate(self, name: str) -> None:
        configfs.Subsystem(nqn_for(name), "lookup").namespace(1, "lookup").revalidate_size()

    def gc_ports(self) -> None:
        """Ports of our id range that export nothing any more are removed."""
        with self._lock:
            for port in self.root.ports:
                if port.portid in PORT_IDS and not port.subsystems:
                    port.delete()

    def gc_hosts(self) -> None:
        """Host entries nobody links to any more are removed (they grant nothing by themselves)."""
        with self._lock:
            linked = {h for s in self.root.subsystems for h in s.allowed_hosts}
            for host in self.root.hosts:
                if host.nqn not in linked:
                    try:
                        host.delete()
                    except CFSError:
                        pass  # linked meanwhile by someone else
