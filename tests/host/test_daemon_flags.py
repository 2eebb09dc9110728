import pytest

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


def test_the_charts_whole_command_line_parses():
    # io-engine-daemonset.yaml's args, in its spelling (contract section 7)
    argv = ["--grpc-ip=10.1.0.5", "-Nworker-1", "-Rhttps://ms-agent-core:50051",
            "-y/var/local/ms/io-engine/config.yaml", "-l1", "-p=ms-etcd:2379",
            "--ptpl-dir=/var/local/ms/io-engine/ptpl/", "--api-versions=v1", "--tgt-crdt=30",
            "--env-context=--iova-mode=pa", "--reactor-freeze-detection", "--events-url=nats://ms-nats:4222",
            "-T=eth0"]
    args = build_parser().parse_args(argv)
    assert args.ps_endpoint == "ms-etcd:2379" and args.config == "/var/local/ms/io-engine/config.yaml"
    assert args.registration_endpoint == "https://ms-agent-core:50051" and args.node_name == "worker-1"
    assert args.ps_timeout == "10s" and args.ps_retries == "30"
    # the deployer's spelling
    args = build_parser().parse_args(["-N", "io-engine-1", "-g", "10.1.0.6:10124", "-R", "https://core:50051",
                                      "--api-versions", "v1", "-r", "/host/tmp/io-engine-1.sock",
                                      "--ptpl-dir", "/host/tmp/ptpl", "-p", "etcd.cluster:2379",
                                      "--ps-timeout", "5s", "--ps-retries", "3"])
    assert args.ps_endpoint == "etcd.cluster:2379" and args.grpc_endpoint == "10.1.0.6:10124"


def test_bad_persistent_store_flags_and_host_identity_stop_the_daemon_with_exit_2(monkeypatch):
    from mayastor import daemon
    monkeypatch.setattr(daemon.modules, "probe", lambda: [])
    from mayastor import instance_lock

    class Reached(Exception):
        pass

    def reached(*_):
        raise Reached()
    monkeypatch.setattr(instance_lock, "acquire", reached)
    with pytest.raises(Reached):  # good flags get past the checks (to the instance lock)
        daemon.main(["-N", "n1", "--state-db", "/nonexistent/s.db", "-p", "etcd:2379", "--ps-retries", "0"])
    for argv in (["-p", "etcd:99999"], ["-p", "etcd", "--ps-timeout", "soon"], ["--ps-retries", "300"],
                 ["--enable-rdma"]):
        assert daemon.main(["-N", "n1", "--state-db", "/nonexistent/s.db", *argv]) == 2, argv
    monkeypatch.setenv("HOSTNQN", "not-an-nqn")
    assert daemon.main(["-N", "n1", "--state-db", "/nonexistent/s.db"]) == 2
    monkeypatch.setenv("HOSTNQN", "nqn.2014-08.org.nvmexpress:uuid:0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9")
    monkeypatch.setenv("MAYASTOR_NVMF_HOSTID", "xyz")
    assert daemon.main(["-N", "n1", "--state-db", "/nonexistent/s.db"]) == 2


def test_host_identity_from_the_environment():
    from mayastor.host_identity import host_identity
    ident = host_identity("n1", {})
    assert ident.hostnqn == "nqn.2019-05.io.openebs:node-name:n1"
    assert host_identity("n1", {}).hostid == ident.hostid  # stable
    nqn = "nqn.2014-08.org.nvmexpress:uuid:0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
    hid = "0F1E2D3C-4B5A-4978-8695-A4B3C2D1E0F9"
    ident = host_identity("n1", {"HOSTNQN": nqn, "MAYASTOR_NVMF_HOSTID": hid})
    assert (ident.hostnqn, ident.hostid) == (nqn, hid.lower())


def test_every_io_engine_flag_is_accepted():
    # io-engine's MayastorCliArgs (core/env.rs), hidden ones included: none may stop the daemon
    argv = ["-u", "--bdev-pool-size", "65535", "--nvme-ctl-pool-size", "65535", "-L", "nexus", "-F", "json,nocolor",
            "-d", "42", "--enable-snapshot-rebuild", "--skip-sig-handler", "--enable-io-all-thrd-nexus-channels",
            "--enable-channel-dbg", "--bs-cluster-unmap", "--reactor-freeze-timeout", "10", "--enable-lvm",
            "--tgt-iface", "10.0.0.9"]
    args = build_parser().parse_args(argv)
    assert args.enable_lvm and args.tgt_ip == "10.0.0.9" and args.noeffect_enable_snapshot_rebuild == "on"
    assert args.spdk_no_pci == "on" and args.spdk_diagnose_stack == "42" and args.spdk_log_format == "json,nocolor"


def test_enable_lvm_follows_io_engines_environment(monkeypatch):
    monkeypatch.setenv("ENABLE_LVM", "true")
    assert build_parser().parse_args([]).enable_lvm
    monkeypatch.setenv("ENABLE_LVM", "false")
    assert not build_parser().parse_args([]).enable_lvm
    monkeypatch.delenv("ENABLE_LVM")
    assert not build_parser().parse_args([]).enable_lvm
