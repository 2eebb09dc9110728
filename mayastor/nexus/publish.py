"""Publishing a nexus over NVMe-oF TCP through nvmet, with ANA.

One subsystem ``nqn.2019-05.io.openebs:<nexus name>``: serial "DCS" + 17 hex digits of the
SHA-256 of the nexus uuid, model "Mayastor NVMe controller", the create call's cntlid range,
namespace 1 = the nexus device with uuid/nguid = nexus uuid in the nexus's own ANA group, linked to
the nexus port (4421) and the replica port (8420) of the target address. The ANA group exists on
both ports with the nexus's ANA state.
"""

from __future__ import annotations

import hashlib

import configfs
from configfs.errors import CFSError

from ..replica.share import MODEL, NvmfTarget, nqn_for

ANA_GROUPS = range(2, 129)
# NvmeAnaState wire value <-> nvmet ana_state
ANA_WIRE_TO_STATE = {1: "optimized", 2: "non-optimized", 3: "inaccessible", 4: "persistent-loss", 15: "change"}
ANA_STATE_TO_WIRE = {v: k for k, v in ANA_WIRE_TO_STATE.items()}


def serial_for(uuid: str) -> str:
    return "DCS" + hashlib.sha256(uuid.encode()).hexdigest()[:17].upper()


def publish(target: NvmfTarget, ports: list[int], name: str, uuid: str, device: str, grpid: int,
            allowed_hosts: list[str], cntlid: tuple[int, int], ana_state: int) -> None:
    """Create or update the nexus subsystem (idempotent); a subsystem this call created is removed
    again when a later step fails."""
    nqn = nqn_for(name)
    sub = configfs.Subsystem(nqn, "any")
    created = not sub.namespaces
    try:
        if created:
            if sub.has_attr("attr_model"):
                sub.model = MODEL
            sub.serial = serial_for(uuid)
            sub.cntlid_min, sub.cntlid_max = cntlid
        ns = sub.namespace(1, "any")
        if not ns.enabled or ns.device_path != device or ns.ana_grpid != grpid:
            ns.disable()
            ns.set_device(device, uuid=uuid, nguid=uuid)
            ns.ana_grpid = grpid
            ns.enable()
        with target._lock:
            sub.set_allowed_hosts(allowed_hosts)
            for p in ports:
                port = target._ensure_port(p)
                port.ana_group(grpid, "any").state = ANA_WIRE_TO_STATE.get(ana_state, "optimized")
                if nqn not in port.subsystems:
                    port.add_subsystem(nqn)
        target._gc_hosts()
    except Exception:
        if created:
            unpublish(target, name, grpid)
        raise


def set_ana_state(target: NvmfTarget, ports: list[int], grpid: int, ana_state: int) -> None:
    for p in ports:
        port = target._find_port(p)
        if port is not None:
            port.ana_group(grpid, "any").state = ANA_WIRE_TO_STATE[ana_state]


def unpublish(target: NvmfTarget, name: str, grpid: int) -> None:
    nqn = nqn_for(name)
    sub = configfs.Subsystem(nqn, "any") if target.is_shared(name) else None
    with target._lock:
        portids = sub.ports() if sub else []
        if sub is not None:
            sub.delete()
        for port in target.root.ports:
            if port.portid in portids:
                try:
                    if grpid in ANA_GROUPS:
                        port.ana_group(grpid, "lookup").delete()
                except CFSError:
                    pass
        target._drop_unused_ports(portids)
    target._gc_hosts()
