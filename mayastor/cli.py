"""Reserved entry point; implemented by the clients-and-operations issue."""

import sys


def main() -> int:
    print("cli: not available in this build yet", file=sys.stderr)
    return 2
