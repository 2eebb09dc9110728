"""io-engine-client entry point: global flags, the command tree, errors as one line and a non-zero exit."""

from __future__ import annotations

import argparse
import os
import sys

import grpc

from . import misc, nexus, pool, rebuild, replica, snapshot
from .context import Context, UsageError

EXIT_RPC, EXIT_USAGE = 1, 2


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="io-engine-client", description="CLI for the io-engine gRPC API (v1)")
    ap.add_argument(
        "-b",
        "--bind",
        default=os.environ.get("MY_POD_IP", "http://127.0.0.1:10124"),
        help="the daemon's gRPC address (default http://127.0.0.1:10124; env MY_POD_IP)",
    )
    q = ap.add_mutually_exclusive_group()
    q.add_argument("-q", "--quiet", action="store_true", help="records only: no headers, no messages")
    q.add_argument("-v", "--verbose", action="count", default=0, help="more output (repeatable)")
    ap.add_argument(
        "-u",
        "--units",
        choices=("i", "d", "b"),
        default="b",
        help="sizes in binary (i) or decimal (d) units; raw bytes by default",
    )
    ap.add_argument("-o", "--output", choices=("default", "json"), default="default")
    sub = ap.add_subparsers(dest="command", required=True, metavar="<command>")
    for module in (pool, replica, nexus, rebuild, snapshot, misc):
        module.register(sub)
    return ap


def main(argv: list[str] | None = None, out=None) -> int:
    ap = build_parser()
    try:
        import argcomplete  # shell completion: eval "$(register-python-argcomplete io-engine-client)"

        argcomplete.autocomplete(ap)
    except ImportError:
        pass
    args = ap.parse_args(argv)
    api = os.environ.get("API_VERSION", "v1") or "v1"
    if api != "v1":
        print(f"io-engine-client: API_VERSION={api} is not served here (v1 only)", file=sys.stderr)
        return EXIT_USAGE
    try:
        ctx = Context(args.bind, args.quiet, args.verbose, args.units, args.output, out=out)
    except UsageError as exc:
        print(f"io-engine-client: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        args.func(ctx, args)
        return 0
    except UsageError as exc:
        print(f"io-engine-client: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except grpc.RpcError as exc:
        detail = (exc.details() or "").replace("\n", " ")
        print(f"io-engine-client: gRPC status {exc.code().name}: {detail}", file=sys.stderr)
        return EXIT_RPC
    finally:
        ctx.close()
