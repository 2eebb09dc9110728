from mayastor.daemon import build_parser


def test_mayastor_flags_and_spdk_flags_are_accepted():
    args = build_parser().parse_args(["-g", "0.0.0.0:10124", "-N", "node-1", "-T", "127.0.0.2", "-R",
                                      "https://cp:50051", "--api-versions", "v1", "--state-db", "/tmp/s.db",
                                      "-m", "0x3", "-s", "1024", "-l", "all", "--huge-dir", "/h",
                                      "--env-context=--iova-mode=pa", "-r", "/var/tmp/mayastor.sock"])
    assert args.node_name == "node-1" and args.tgt_ip == "127.0.0.2" and args.state_db == "/tmp/s.db"
    assert args.spdk_reactor_mask == "0x3" and args.spdk_huge_dir == "/h"
