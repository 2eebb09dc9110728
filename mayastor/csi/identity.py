"""CSI Identity: who we are, what the plugin offers, whether it can work on this node."""

from __future__ import annotations

import os

from .. import __version__
from ..grpc.status import rpc
from ..kernel.nvme_fabrics import FABRICS
from .protos import csi, csi_grpc

DRIVER = "io.openebs.csi-mayastor"


class Identity(csi_grpc.IdentityServicer):
    @rpc
    def GetPluginInfo(self, request, context):
        return csi.GetPluginInfoResponse(name=DRIVER, vendor_version=__version__)

    @rpc
    def GetPluginCapabilities(self, request, context):
        cap = csi.PluginCapability
        return csi.GetPluginCapabilitiesResponse(
            capabilities=[
                cap(service=cap.Service(type=cap.Service.VOLUME_ACCESSIBILITY_CONSTRAINTS)),
                cap(volume_expansion=cap.VolumeExpansion(type=cap.VolumeExpansion.ONLINE)),
            ]
        )

    @rpc
    def Probe(self, request, context):
        # staging needs the kernel NVMe-oF host (nvme-tcp loaded)
        return csi.ProbeResponse(ready={"value": os.path.exists(FABRICS)})
