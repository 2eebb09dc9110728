"""The node's NVMe host identity: the host NQN it registers with the control plane and connects
to remote replicas with (the control plane lists exactly that NQN in a replica's allowed hosts),
and the host id of those connects.

As io-engine: ``$HOSTNQN``, else ``nqn.2019-05.io.openebs:node-name:<node>``; the host id is
``$MAYASTOR_NVMF_HOSTID``, else a UUID derived from the NQN (stable across restarts, which nvmet
reservations key registrants by).
"""

from __future__ import annotations

import os
import uuid as _uuid

from configfs.validate import is_valid_nqn

from .kernel import nvme_fabrics


def host_identity(node: str, env=os.environ) -> nvme_fabrics.HostIdentity:
    """ValueError when the environment names an invalid NQN or host id."""
    nqn = env.get("HOSTNQN") or f"nqn.2019-05.io.openebs:node-name:{node}"
    if not is_valid_nqn(nqn):
        raise ValueError(f"HOSTNQN={nqn!r} is not a valid NQN")
    raw = env.get("MAYASTOR_NVMF_HOSTID")
    if raw:
        try:
            hostid = str(_uuid.UUID(raw))
        except ValueError:
            raise ValueError(f"MAYASTOR_NVMF_HOSTID={raw!r} is not a UUID") from None
    else:
        hostid = str(_uuid.uuid5(_uuid.NAMESPACE_URL, nqn))
    return nvme_fabrics.HostIdentity(nqn, hostid)
