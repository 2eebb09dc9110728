"""Typed nvmet configfs errors: the errno of the failed write/mkdir/symlink plus the kernel's reason."""

from __future__ import annotations

import errno

from mayastor.kernel.errors import KernelError, NotSupportedError


class CFSError(KernelError):
    """A configfs operation failed; see ``errno``, ``reason`` (from /dev/kmsg) and ``target`` (path)."""


class CFSPermissionError(CFSError):
    """EACCES: e.g. a port attribute written while the port is enabled."""


class CFSBusyError(CFSError):
    """EBUSY: e.g. a namespace device attribute written while the namespace is enabled."""


class CFSInvalidError(CFSError):
    """EINVAL: a value, name or combination the kernel rejects."""


class CFSExistsError(CFSError):
    """EEXIST: the object or link is already there."""


class CFSNotFoundError(CFSError):
    """ENOENT: the object (or the device it points at) does not exist."""


class CFSNotSupportedError(NotSupportedError):
    """The running kernel has no such nvmet object or attribute."""


_BY_ERRNO = {
    errno.EACCES: CFSPermissionError,
    errno.EBUSY: CFSBusyError,
    errno.EINVAL: CFSInvalidError,
    errno.EEXIST: CFSExistsError,
    errno.ENOENT: CFSNotFoundError,
}


def cfs_error(err: int, operation: str, reason: str = "", target: str = "") -> CFSError:
    cls = _BY_ERRNO.get(err, CFSError)
    return cls(err, operation, reason, target)
