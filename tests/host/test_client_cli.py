"""io-engine-client without a daemon: flags, sizes, units, table layout, the command tree, and
the one-line error with a non-zero exit when the daemon cannot be reached."""

import io

import pytest

from mayastor.client.context import Context, UsageError, endpoint, human, parse_size
from mayastor.client.main import build_parser, main


def test_bind_addresses():
    assert endpoint("http://127.0.0.1:10124") == "127.0.0.1:10124"
    assert endpoint("10.0.0.5") == "10.0.0.5:10124"
    assert endpoint("node-1:999/") == "node-1:999"
    assert endpoint("::1") == "[::1]:10124"
    assert endpoint("https://[fe80::1]:5") == "[fe80::1]:5"
    with pytest.raises(UsageError):
        endpoint("http://")


def test_sizes_and_units():
    assert parse_size("4096") == 4096
    assert parse_size("64MiB") == 64 << 20
    assert parse_size("1G") == 1 << 30
    assert parse_size("1GB") == 10 ** 9
    assert parse_size("1.5KiB") == 1536
    for bad in ("", "1X", "-1", "0.3B", "MiB"):
        with pytest.raises(UsageError):
            parse_size(bad)
    assert human(1 << 30, "i") == "1.00 GiB"
    assert human(1500, "d") == "1.50 KB"
    assert human(512, "i") == "512 B"
    assert human(1 << 30, "b") == str(1 << 30)


def test_table_alignment_and_quiet():
    out = io.StringIO()
    ctx = Context("127.0.0.1:1", out=out)
    ctx.print_list(["NAME", ">SIZE", "STATE"], [["a", "1", "online"], ["longer", "12345", "x"]])
    assert out.getvalue().splitlines() == ["NAME    SIZE STATE", "a          1 online", "longer 12345 x"]
    quiet = io.StringIO()
    Context("127.0.0.1:1", quiet=True, out=quiet).print_list(["NAME", ">SIZE"], [["a", "1"]])
    assert quiet.getvalue() == "a 1\n"


@pytest.mark.parametrize("argv", [
    ["pool", "create", "p", "/dev/sdb", "--cluster-size", "4MiB"], ["pool", "import", "p", "/dev/sdb", "-u", "x"],
    ["pool", "list"], ["replica", "create", "r", "u", "p", "-s", "1G", "-t", "-p", "nvmf"], ["replica", "list"],
    ["nexus", "create", "", "64MiB", "malloc:///m?size_mb=64"], ["nexus", "add", "u", "uri", "true"],
    ["nexus", "child", "retire", "u", "uri"], ["nexus", "list", "-c"], ["nexus", "ana_state", "u", "optimized"],
    ["rebuild", "stats", "u", "uri"], ["rebuild", "history", "u"], ["snapshot", "list"],
    ["stats", "replica"], ["device", "list", "--all"], ["controller", "stats"], ["perf", "resource"],
    ["jsonrpc", "nexus_info", '{"key": "k"}'], ["test", "wipe", "replica", "u", "--method", "Checksum"],
])
def test_command_tree_parses(argv):
    args = build_parser().parse_args(["-u", "i", *argv])
    assert callable(args.func)


def test_unreachable_daemon_is_one_line_and_exit_1(capsys):
    rc = main(["-b", "127.0.0.1:1", "pool", "list"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "UNAVAILABLE" in err[0]


def test_bad_size_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["replica", "create", "r", "u", "p", "-s", "lots"])
    assert e.value.code == 2
