"""The csi.v1 messages and services of proto/csi/csi.proto."""

from ..grpc.protos import CSI_PROTO_DIR, load

csi, csi_grpc = load(CSI_PROTO_DIR, ("csi",))("csi")
