"""Reserved entry point; implemented by the clients-and-operations issue."""

import sys


def main() -> int:
    print("csi: not available in this build yet", file=sys.stderr)
    return 2
