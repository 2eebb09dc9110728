"""An rtslib-style object model of the Linux NVMe-oF target (nvmet) in configfs.

One class per configfs object; each wraps its directory with typed attributes, ``create`` /
``lookup`` / ``any`` modes, ``delete()`` and ``dump()``; `Root` saves and restores the whole tree.
Knows nothing about pools, replicas or nexuses.
"""

from .ana import ANA_STATES, AnaGroup
from .errors import (
    CFSBusyError,
    CFSError,
    CFSExistsError,
    CFSInvalidError,
    CFSNotFoundError,
    CFSNotSupportedError,
    CFSPermissionError,
)
from .host import Host
from .namespace import Namespace
from .node import NVMET_ROOT, CFSNode
from .port import Port
from .referral import Referral
from .root import Root
from .subsystem import Subsystem

__all__ = [
    "ANA_STATES",
    "NVMET_ROOT",
    "AnaGroup",
    "CFSBusyError",
    "CFSError",
    "CFSExistsError",
    "CFSInvalidError",
    "CFSNode",
    "CFSNotFoundError",
    "CFSNotSupportedError",
    "CFSPermissionError",
    "Host",
    "Namespace",
    "Port",
    "Referral",
    "Root",
    "Subsystem",
]
