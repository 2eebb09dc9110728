"""mayastor-shell entry point: `mayastor-shell` for the REPL, `mayastor-shell "ls /pools"` (or
several commands separated by ';' / one per line on stdin with -) to run and exit."""

from __future__ import annotations

import argparse
import os
import sys
import warnings

# configshell-fb's grammar uses pyparsing names that pyparsing 3.3 deprecates, loudly
warnings.filterwarnings("ignore", module="configshell_fb")

import grpc  # noqa: E402

from ..client.context import Context, endpoint  # noqa: E402


def build(bind: str, out=None):
    """A ConfigShell with our tree, talking to the daemon at ``bind``; ``out``: a file for all its
    output (tests), else the terminal."""
    from configshell_fb import ConfigShell, ExecutionError
    from configshell_fb.console import Console

    from .nodes import Nexuses, Node, Nvmet, Pools

    class Shell(ConfigShell):
        def run_cmdline(self, cmdline):
            """Each command line sees the daemon's state of now (paths resolve against it); ls and
            cd within it do not read it again."""
            if cmdline and cmdline.strip():
                root.fresh = False
                try:
                    root.refresh_all()
                except grpc.RpcError as exc:
                    detail = (exc.details() or "").replace("\n", " ")
                    raise ExecutionError(f"gRPC status {exc.code().name}: {detail}") from None
            return super().run_cmdline(cmdline)

    shell = Shell(None)  # no preferences or history files: nothing written to $HOME
    shell.prefs["color_mode"] = False
    if out is not None:
        # configshell's Console is a Borg (all instances share state): make it after the shell's own
        Console(stdout=out, stderr=out)

    class Root(Node):
        def __init__(self):
            super().__init__("/", shell=shell)
            self._api = Context(bind, quiet=True)
            Pools(self)
            Nexuses(self)
            Nvmet(self)

        def summary(self):
            return (f"mayastor at {self._api.target}", None)

    root = Root()
    return shell, root


def run(shell, root, commands: list[str]) -> int:
    """Run each command; the first failure ends the run with status 1 (gRPC errors as one line)."""
    for cmd in commands:
        cmd = cmd.strip()
        if not cmd:
            continue
        try:
            shell.run_cmdline(cmd)
        except grpc.RpcError as exc:
            detail = (exc.details() or "").replace("\n", " ")
            shell.log.error(f"gRPC status {exc.code().name}: {detail}")
            return 1
        except Exception as exc:  # noqa: BLE001  configshell's ExecutionError and parse errors
            shell.log.error(str(exc))
            return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="mayastor-shell", description="interactive shell for a mayastor node")
    ap.add_argument("-b", "--bind", default=os.environ.get("MY_POD_IP", "http://127.0.0.1:10124"))
    ap.add_argument("command", nargs="*", help="commands to run (';'-separated), '-' to read them from stdin")
    args = ap.parse_args(argv)
    endpoint(args.bind)
    shell, root = build(args.bind)
    if args.command:
        text = sys.stdin.read() if args.command == ["-"] else " ".join(args.command)
        return run(shell, root, [c for line in text.splitlines() for c in line.split(";")])
    while True:  # configshell's loop ends at the first error: report it and carry on, as targetcli does
        try:
            shell.run_interactive()
            return 0
        except Exception as exc:  # noqa: BLE001
            shell.log.error(str(exc))
