"""Generate the Python modules of proto/v1 and proto/csi into mayastor/grpc/_gen (run by scripts/setup):

python -m mayastor.grpc.genprotos
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_PROTO_ROOT = Path(__file__).resolve().parents[2] / "proto"
PROTO_DIR = Path(os.environ.get("MAYASTOR_PROTO_DIR") or _PROTO_ROOT / "v1")
CSI_PROTO_DIR = _PROTO_ROOT / "csi"
GEN_DIR = Path(__file__).resolve().parent / "_gen"


def generate() -> None:
    import grpc_tools
    from grpc_tools import protoc

    GEN_DIR.mkdir(exist_ok=True)
    include = str(Path(grpc_tools.__file__).parent / "_proto")
    for proto_dir in (PROTO_DIR, CSI_PROTO_DIR):
        files = sorted(str(p) for p in proto_dir.glob("*.proto"))
        rc = protoc.main(
            [
                "protoc",
                f"-I{proto_dir}",
                f"-I{include}",
                f"--python_out={GEN_DIR}",
                f"--grpc_python_out={GEN_DIR}",
                *files,
            ]
        )
        if rc != 0:
            raise RuntimeError(f"protoc failed ({rc}) on {proto_dir}")


if __name__ == "__main__":
    generate()
    sys.exit(0)
