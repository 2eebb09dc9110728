"""lvm2's command-line tools, the one supported interface to LVM metadata.

Every call runs with a fixed configuration: no udev synchronisation (nodes come from lvm itself;
the test VM and some hosts run no udev), no dmeventd monitoring, no devices file, no lvmlockd.
Reports are read as JSON with byte units. A failing command raises `LvmError` with lvm's own
message; nothing here decides what an error means for a pool (lvm_pool.py does).

Tags carry replica properties (io-engine's keys: ``mayastor``, ``mayastor.lv.name=`` ...). lvm
accepts only ``[A-Za-z0-9_+.-/=!:&#]`` in a tag, so values are escaped: any other character and
``#`` itself become ``#xx`` (hex of the UTF-8 byte).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

CONFIG = (
    "activation{udev_sync=0 udev_rules=0 monitoring=0} "
    "devices{obtain_device_list_from_udev=0 use_devicesfile=0} global{use_lvmlockd=0}"
)
TIMEOUT = 600  # a loaded TCG VM runs one lvm command in seconds; never cut one short in the middle
TAG_MAX = 1024
_TAG_SAFE = re.compile(r"[A-Za-z0-9_+.\-/=!:&]")
VG_NAME = re.compile(r"[A-Za-z0-9_+.][A-Za-z0-9_+.-]{0,126}")


class LvmError(RuntimeError):
    def __init__(self, argv: list[str], code: int, stderr: str):
        self.argv, self.code, self.stderr = argv, code, stderr
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
        super().__init__(f"{argv[0]} failed ({code}): {'; '.join(lines) or 'no message'}")


def available() -> bool:
    """Whether lvm2's tools are installed (features.logicalVolumeManager)."""
    return shutil.which("lvm") is not None or os.path.exists("/usr/sbin/lvm") or os.path.exists("/sbin/lvm")


def _lvm_binary() -> str:
    for p in (shutil.which("lvm"), "/usr/sbin/lvm", "/sbin/lvm"):
        if p and os.path.exists(p):
            return p
    raise LvmError(["lvm"], 127, "lvm2 is not installed")


def run(command: str, *args: str) -> str:
    """``lvm <command> --config=... args``; stdout, or LvmError."""
    argv = [_lvm_binary(), command, f"--config={CONFIG}", *args]
    env = dict(os.environ, LVM_SUPPRESS_FD_WARNINGS="1", LC_ALL="C")
    r = subprocess.run(
        argv, capture_output=True, text=True, timeout=TIMEOUT, env=env, stdin=subprocess.DEVNULL, check=False
    )
    if r.returncode != 0:
        raise LvmError([command, *args], r.returncode, r.stderr)
    return r.stdout


def report(command: str, section: str, fields: str, *args: str) -> list[dict]:
    """Rows of a vgs/lvs/pvs JSON report."""
    out = run(command, "--units=b", "--nosuffix", "--report-format=json", f"--options={fields}", *args)
    rows: list[dict] = []
    for part in json.loads(out or '{"report": []}').get("report", []):
        rows.extend(part.get(section, []))
    return rows


def escape(value: str) -> str:
    out = []
    for ch in value:
        if _TAG_SAFE.fullmatch(ch):
            out.append(ch)
        else:
            out.extend(f"#{b:02x}" for b in ch.encode())
    return "".join(out)


def unescape(value: str) -> str:
    raw = bytearray()
    i = 0
    while i < len(value):
        if value[i] == "#" and i + 2 < len(value) and re.fullmatch(r"[0-9a-f]{2}", value[i + 1 : i + 3]):
            raw.append(int(value[i + 1 : i + 3], 16))
            i += 3
        else:
            raw.extend(value[i].encode())
            i += 1
    return raw.decode(errors="replace")


def tag(key: str, value: str | None = None) -> str:
    """One tag; the value escaped (it must fit one tag: see tags_for for values of any length)."""
    text = key if value is None else f"{key}={escape(value)}"
    if len(text) > TAG_MAX:
        raise ValueError(f"tag {key} is longer than lvm's {TAG_MAX} characters")
    return text


def tags_for(key: str, value: str) -> list[str]:
    """A value of any length as tags: ``key=<part>``, then ``key.1=``, ``key.2=`` ... (an entity id
    of 255 characters, escaped, can be three times lvm's tag limit)."""
    text = escape(value)
    room = TAG_MAX - len(key) - 5  # "=" and ".NNN"
    parts = [text[i : i + room] for i in range(0, len(text), room)] or [""]
    return [f"{key}={parts[0]}"] + [f"{key}.{n}={p}" for n, p in enumerate(parts[1:], 1)]


def parse_tags(text: str) -> list[tuple[str, str | None]]:
    """(key, escaped value) pairs of a report's comma-separated tag list."""
    out: list[tuple[str, str | None]] = []
    for t in filter(None, text.split(",")):
        key, sep, value = t.partition("=")
        out.append((key, value if sep else None))
    return out


def joined(pairs: list[tuple[str, str | None]], key: str) -> str | None:
    """The value tags_for split over ``key``, ``key.1`` ...; None when there is no ``key``."""
    found = dict(pairs)
    text = found.get(key)
    if text is None:
        return None
    n = 1
    while (part := found.get(f"{key}.{n}")) is not None:
        text += part
        n += 1
    return unescape(text)


def dm_name(vg: str, lv: str) -> str:
    """The device-mapper name lvm gives an active LV: '-' doubled in each part, joined by '-'."""
    return f"{vg.replace('-', '--')}-{lv.replace('-', '--')}"
