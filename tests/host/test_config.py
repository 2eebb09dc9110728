"""-y / -P YAML files: honoured keys, ignored SPDK sections, unknown keys refused."""

import pytest

from mayastor.config import ConfigError, load_config, load_pools


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return str(p)


def test_defaults_without_a_file():
    c = load_config(None)
    assert (c.nvmf_replica_port, c.nvmf_nexus_port) == (8420, 4421)
    assert load_pools(None) == []


def test_nexus_ports_and_ignored_sections(tmp_path):
    c = load_config(write(tmp_path, "source: x\nnexus_opts:\n  nvmf_replica_port: 9000\n  nvmf_nexus_port: 9001\n"
                                    "eal_opts:\n  reactor_mask: '0x3'\n"))
    assert (c.nvmf_replica_port, c.nvmf_nexus_port, c.ignored) == (9000, 9001, ["eal_opts"])


@pytest.mark.parametrize("text", ["nope: 1\n", "nexus_opts:\n  bogus: 1\n", "nexus_opts:\n  nvmf_replica_port: 0\n",
                                  "nexus_opts:\n  nvmf_replica_port: x\n", "- a\n", "a: [\n", "nexus_opts: 3\n"])
def test_bad_config(tmp_path, text):
    with pytest.raises(ConfigError):
        load_config(write(tmp_path, text))


def test_pool_yaml(tmp_path):
    specs = load_pools(write(tmp_path, "pools:\n  - name: p1\n    disks: [/dev/vdb]\n"))
    assert [(s.name, s.disks) for s in specs] == [("p1", ["/dev/vdb"])]
    for text in ("pool: []\n", "pools:\n  - name: p\n", "pools:\n  - disks: [x]\n", "pools:\n  - name: p\n    disks: x\n"):
        with pytest.raises(ConfigError):
            load_pools(write(tmp_path, text))
