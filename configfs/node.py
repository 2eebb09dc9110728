"""Base class of every nvmet configfs object: a directory with attribute files.

Modes (as in rtslib): ``create`` makes the directory and fails if it exists, ``lookup`` fails if it
does not, ``any`` does whichever is needed. Every kernel-touching step goes through `_kernel_op`,
which turns an OSError into a typed `CFSError` carrying the reason the kernel logged.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from typing import Any

from mayastor.kernel.kmsg import KmsgCursor

from .errors import CFSNotFoundError, CFSNotSupportedError, cfs_error

NVMET_ROOT = "/sys/kernel/config/nvmet"

MODES = ("create", "lookup", "any")


def kernel_op(operation: str, target: str, func: Callable[[], Any], keywords: tuple[str, ...] = ()) -> Any:
    cursor = KmsgCursor()
    try:
        return func()
    except OSError as exc:
        reason = cursor.reason(*keywords)
        raise cfs_error(exc.errno or errno.EIO, operation, reason, target) from None
    finally:
        cursor.close()


class Attr:
    """A typed attribute file. ``kind`` is str, int or bool; reading a missing file raises
    CFSNotSupportedError (the attribute set differs between kernel versions)."""

    def __init__(self, fname: str, kind: type = str, doc: str = ""):
        self.fname = fname
        self.kind = kind
        self.__doc__ = doc or fname

    def __get__(self, obj: CFSNode | None, owner: type) -> Any:
        if obj is None:
            return self
        raw = obj.read_attr(self.fname)
        if self.kind is bool:
            return raw.strip() in ("1", "Y", "y")
        if self.kind is int:
            return int(raw.strip(), 0)
        return raw.strip()

    def __set__(self, obj: CFSNode, value: Any) -> None:
        if self.kind is bool:
            text = "1" if value else "0"
        else:
            text = str(value)
        obj.write_attr(self.fname, text)


class CFSNode:
    """A configfs directory. Subclasses set their path in __init__ and call `_setup(mode)`."""

    path: str

    def delete(self) -> None:
        """Remove the directory (each kind knows what must go before it)."""
        raise NotImplementedError

    def _setup(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        present = os.path.isdir(self.path)
        if mode == "lookup" and not present:
            raise CFSNotFoundError(errno.ENOENT, f"lookup {self.kind_name}", "", self.path)
        if mode == "create" and present:
            raise cfs_error(errno.EEXIST, f"create {self.kind_name}", "", self.path)
        if not present:
            kernel_op(f"create {self.kind_name}", self.path, lambda: os.mkdir(self.path))

    @property
    def kind_name(self) -> str:
        return type(self).__name__.lower()

    @property
    def exists(self) -> bool:
        return os.path.isdir(self.path)

    # attribute files -----------------------------------------------------
    def attr_path(self, name: str) -> str:
        if "/" in name or name in (".", ".."):
            raise ValueError(f"invalid attribute name {name!r}")
        return os.path.join(self.path, name)

    def has_attr(self, name: str) -> bool:
        return os.path.isfile(self.attr_path(name))

    def list_attrs(self, prefix: str = "", readable_only: bool = True) -> list[str]:
        names = []
        for entry in os.scandir(self.path):
            if not entry.is_file(follow_symlinks=False) or not entry.name.startswith(prefix):
                continue
            if readable_only and not entry.stat().st_mode & stat.S_IRUSR:
                continue
            names.append(entry.name)
        return sorted(names)

    def read_attr(self, name: str) -> str:
        path = self.attr_path(name)
        if not os.path.isfile(path):
            raise CFSNotSupportedError(f"read {name}", "attribute not offered by this kernel", path)

        def read() -> str:
            with open(path) as f:
                return f.read()

        return kernel_op(f"read {name}", path, read)

    def write_attr(self, name: str, value: str) -> None:
        path = self.attr_path(name)
        if not os.path.isfile(path):
            raise CFSNotSupportedError(f"write {name}", "attribute not offered by this kernel", path)

        def write() -> None:
            # One write() call: configfs store handlers see the whole value at once.
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, (value + "\n").encode())
            finally:
                os.close(fd)

        kernel_op(f"write {name}={value!r}", path, write)

    def read_attr_group(self, prefix: str) -> dict[str, str]:
        """All readable attributes with a prefix, keyed without it (``attr_serial`` -> ``serial``)."""
        out = {}
        for name in self.list_attrs(prefix):
            out[name[len(prefix) :]] = self.read_attr(name).strip()
        return out

    def write_attr_group(self, prefix: str, values: dict[str, Any]) -> None:
        """Write the values that differ from what the kernel has (defaults and write-once attributes stay)."""
        for key, value in values.items():
            name = prefix + key
            text = str(value)
            if self.has_attr(name) and self.read_attr(name).strip() == text:
                continue
            self.write_attr(name, text)

    # children and teardown -------------------------------------------------
    def _list_dirs(self, sub: str) -> Iterator[str]:
        base = os.path.join(self.path, sub)
        if not os.path.isdir(base):
            return iter(())
        return iter(sorted(e.name for e in os.scandir(base) if e.is_dir(follow_symlinks=False)))

    def _list_links(self, sub: str) -> list[str]:
        base = os.path.join(self.path, sub)
        if not os.path.isdir(base):
            return []
        return sorted(e.name for e in os.scandir(base) if e.is_symlink())

    def _rmdir(self) -> None:
        if os.path.isdir(self.path):
            kernel_op(f"delete {self.kind_name}", self.path, lambda: os.rmdir(self.path))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CFSNode) and type(other) is type(self) and other.path == self.path

    def __hash__(self) -> int:
        return hash((type(self), self.path))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path}>"
