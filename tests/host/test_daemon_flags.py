from mayastor.daemon import build_parser


def test_mayastor_flags_and_spdk_flags_are_accepted():
    args = build_parser().parse_args(["-g", "0.0.0.0:10124", "-N", "node-1", "-T", "127.0.0.2", "-R",
                                      "https://cp:50051", "--api-versions", "v1", "--state-db", "/tmp/s.db",
                                      "-m", "0x3", "-s", "1024", "-l", "all", "--huge-dir", "/h",
                                      "--env-context=--iova-mode=pa", "-r", "/var/tmp/mayastor.sock"])
    assert args.node_name == "node-1" and args.tgt_ip == "127.0.0.2" and args.state_db == "/tmp/s.db"
    assert args.spdk_reactor_mask == "0x3" and args.spdk_huge_dir == "/h"


def test_chart_flags_without_an_effect_here_are_accepted():
    # the helm chart's io-engine args (contract section 7), '=' forms included
    args = build_parser().parse_args(["--grpc-ip=10.0.0.5", "-Nnode-2", "--api-versions=v1", "--tgt-crdt=30",
                                      "--ptpl-dir=/var/local/ms/io-engine/ptpl/", "--reactor-freeze-detection",
                                      "--events-url=nats://ms-nats:4222", "-l1,2"])
    assert args.node_name == "node-2" and args.grpc_ip == "10.0.0.5"
    assert args.noeffect_tgt_crdt == "30" and args.noeffect_ptpl_dir.endswith("/ptpl/")
    assert args.spdk_reactor_freeze_detection == "on" and args.noeffect_events_url.startswith("nats://")
    assert build_parser().parse_args([]).spdk_reactor_freeze_detection is None
