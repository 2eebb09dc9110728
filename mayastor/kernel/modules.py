"""What the running kernel offers, and how to load what is missing.

A capability is present when its module is loaded (or built in) and its interface exists; the
probe never assumes a kernel version. `ensure()` runs modprobe and mounts configfs where allowed.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class Capability:
    name: str
    modules: tuple[str, ...]  # modprobe names that provide it
    required: bool
    present: bool
    detail: str = ""

    @property
    def fix(self) -> str:
        if self.name == "configfs" and self.present is False and _module_present("configfs"):
            return "mount -t configfs none /sys/kernel/config"
        return f"modprobe {' '.join(self.modules)}" if self.modules else ""


def _module_present(name: str) -> bool:
    return os.path.isdir(f"/sys/module/{name.replace('-', '_')}")


def _dm_targets() -> set[str]:
    try:
        from .dm import DeviceMapper

        with DeviceMapper() as dm:
            return set(dm.target_versions())
    except (OSError, ImportError):
        return set()


def _configfs_mounted() -> bool:
    try:
        with open("/proc/mounts") as f:
            return any(line.split()[2] == "configfs" for line in f if len(line.split()) > 2)
    except OSError:
        return False


def _io_uring() -> tuple[bool, str]:
    disabled = "/proc/sys/kernel/io_uring_disabled"
    if os.path.exists(disabled):
        with open(disabled) as f:
            if f.read().strip() == "2":
                return False, "disabled by sysctl kernel.io_uring_disabled=2"
    # io_uring_setup(2) with a tiny ring: the syscall exists when it does not return ENOSYS
    libc = ctypes.CDLL(None, use_errno=True)
    params = ctypes.create_string_buffer(120)
    fd = libc.syscall(425, 1, params)  # __NR_io_uring_setup on x86_64, arm64 and most others
    if fd >= 0:
        os.close(fd)
        return True, ""
    err = ctypes.get_errno()
    return False, os.strerror(err)


def probe() -> list[Capability]:
    targets = _dm_targets()
    caps = [
        Capability(
            "configfs",
            ("configfs",),
            True,
            _configfs_mounted(),
            "" if _configfs_mounted() else "not mounted on /sys/kernel/config",
        ),
        Capability("nvmet", ("nvmet",), True, os.path.isdir("/sys/kernel/config/nvmet")),
        Capability("nvmet-tcp", ("nvmet-tcp",), True, _module_present("nvmet_tcp")),
        Capability(
            "nvme-tcp", ("nvme-tcp",), True, _module_present("nvme_tcp") and os.path.exists("/dev/nvme-fabrics")
        ),
        Capability("device-mapper", ("dm-mod",), True, os.path.exists("/dev/mapper/control")),
        Capability(
            "dm-raid",
            ("dm-raid", "raid1"),
            True,
            "raid" in targets and _module_present("raid1"),
            "raid target " + ("loaded" if "raid" in targets else "missing"),
        ),
        Capability("dm-thin", ("dm-thin-pool",), True, "thin-pool" in targets),
        # the published nexus device: queue I/O while no child is healthy (queue_if_no_path)
        Capability(
            "dm-multipath",
            ("dm-multipath", "dm-round-robin"),
            True,
            "multipath" in targets and _module_present("dm_round_robin"),
        ),
        Capability("dm-era", ("dm-era",), False, "era" in targets),
        Capability("nbd", ("nbd",), False, _module_present("nbd")),
    ]
    ok, why = _io_uring()
    caps.append(Capability("io_uring", (), False, ok, why))
    mp = False
    try:
        with open("/sys/module/nvme_core/parameters/multipath") as f:
            mp = f.read().strip() in ("Y", "1")
    except OSError:
        pass
    caps.append(Capability("nvme-multipath", (), False, mp, "nvme_core.multipath" + ("=Y" if mp else " off/absent")))
    resv = nvmet_has_reservations()
    caps.append(
        Capability(
            "nvmet-resv",
            (),
            False,
            resv,
            "a nexus fences with NVMe reservations"
            if resv
            else "no NVMe reservations in nvmet (Linux 6.13 has them): an old nexus is fenced only by re-sharing",
        )
    )
    return caps


ALL_MODULES = (
    "configfs",
    "nvmet",
    "nvmet-tcp",
    "nvme-tcp",
    "nvme-fabrics",
    "dm-mod",
    "dm-raid",
    "raid1",
    "dm-thin-pool",
    "dm-multipath",
    "dm-round-robin",
    "dm-era",
    "nbd",
)


def ensure(modules: tuple[str, ...] = ALL_MODULES, mount_configfs: bool = True) -> list[str]:
    """modprobe each module (errors collected, not raised) and mount configfs; returns problems."""
    problems = []
    for mod in modules:
        if _module_present(mod):
            continue
        res = subprocess.run(["modprobe", mod], capture_output=True, text=True, check=False)
        if res.returncode != 0:
            problems.append(f"modprobe {mod}: {res.stderr.strip() or res.returncode}")
    if mount_configfs and not _configfs_mounted() and os.path.isdir("/sys/kernel/config"):
        res = subprocess.run(
            ["mount", "-t", "configfs", "none", "/sys/kernel/config"], capture_output=True, text=True, check=False
        )
        if res.returncode != 0:
            problems.append(f"mount configfs: {res.stderr.strip()}")
    return problems


def report(caps: list[Capability]) -> list[str]:
    lines = []
    for c in caps:
        state = "ok" if c.present else ("MISSING" if c.required else "absent")
        line = f"{c.name:15} {state}"
        if c.detail:
            line += f" ({c.detail})"
        if not c.present and c.fix:
            line += f"  -> {c.fix}"
        lines.append(line)
    return lines


PROBE_NQN = "nqn.2019-05.io.openebs.mayastor:feature-probe"


def nvmet_has_reservations() -> bool:
    """Does an nvmet namespace offer ``resv_enable`` (reservations, Linux 6.13+)? Read off a
    namespace of a short-lived subsystem of our own (never linked to a port), removed at once."""
    sub = os.path.join("/sys/kernel/config/nvmet/subsystems", PROBE_NQN)
    if not os.path.isdir(os.path.dirname(sub)):
        return False
    ns = os.path.join(sub, "namespaces", "1")
    try:
        os.makedirs(ns, exist_ok=True)
        return os.path.exists(os.path.join(ns, "resv_enable"))
    except OSError:
        return False
    finally:
        for d in (ns, sub):
            try:
                os.rmdir(d)
            except OSError:
                pass
