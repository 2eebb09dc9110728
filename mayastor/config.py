"""The daemon's YAML files: ``-y`` (io-engine config) and ``-P`` (pools to import at start).

Like io-engine (serde ``deny_unknown_fields``), an unknown key is an error, not a silent default.
Of the io-engine config, the sections that mean something here are honoured (`nexus_opts` ports);
the SPDK-only ones (`bdev_opts`, `iobuf_opts`, `eal_opts`, ...) are accepted and ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

KNOWN_SECTIONS = (
    "source",
    "nvmf_tgt_conf",
    "nvme_bdev_opts",
    "bdev_opts",
    "nexus_opts",
    "socket_opts",
    "iobuf_opts",
    "eal_opts",
)
NEXUS_OPTS = ("nvmf_enable", "nvmf_discovery_enable", "nvmf_nexus_port", "nvmf_replica_port")


class ConfigError(ValueError):
    pass


@dataclass
class Config:
    nvmf_replica_port: int = 8420
    nvmf_nexus_port: int = 4421
    ignored: list[str] = field(default_factory=list)


def _load(path: str) -> dict:
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _port(value, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise ConfigError(f"{key}: expected a TCP port, got {value!r}")
    return value


def load_config(path: str | None) -> Config:
    cfg = Config()
    if not path:
        return cfg
    data = _load(path)
    for key in data:
        if key not in KNOWN_SECTIONS:
            raise ConfigError(f"{path}: unknown key {key!r} (known: {', '.join(KNOWN_SECTIONS)})")
    nexus = data.get("nexus_opts") or {}
    if not isinstance(nexus, dict):
        raise ConfigError(f"{path}: nexus_opts must be a mapping")
    for key, value in nexus.items():
        if key not in NEXUS_OPTS:
            raise ConfigError(f"{path}: unknown key nexus_opts.{key}")
        if key == "nvmf_replica_port":
            cfg.nvmf_replica_port = _port(value, key)
        elif key == "nvmf_nexus_port":
            cfg.nvmf_nexus_port = _port(value, key)
    cfg.ignored = [k for k in data if k not in ("nexus_opts", "source")]
    return cfg


@dataclass
class PoolSpec:
    name: str
    disks: list[str]


def load_pools(path: str | None) -> list[PoolSpec]:
    """``pools: [{name: p, disks: [/dev/x]}]`` (extra per-pool keys upstream writes are allowed)."""
    if not path:
        return []
    data = _load(path)
    for key in data:
        if key != "pools":
            raise ConfigError(f"{path}: unknown key {key!r} (expected 'pools')")
    out = []
    for i, p in enumerate(data.get("pools") or []):
        if (
            not isinstance(p, dict)
            or not isinstance(p.get("name"), str)
            or not isinstance(p.get("disks"), list)
            or not all(isinstance(d, str) for d in p["disks"])
        ):
            raise ConfigError(f"{path}: pools[{i}] needs a name and a list of disks")
        out.append(PoolSpec(p["name"], list(p["disks"])))
    return out
