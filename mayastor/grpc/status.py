"""Domain errors → gRPC status codes (as Mayastor maps them); every handler goes through `rpc`."""

from __future__ import annotations

import functools
import logging

import grpc

from ..errors import MayastorError
from ..kernel.errors import KernelError
from ..locks import deadline

log = logging.getLogger("mayastor.grpc")


def _abort(name: str, context, exc: Exception):
    """End the call with the status Mayastor gives for ``exc`` (and its trailing metadata)."""
    if isinstance(exc, MayastorError):
        if exc.metadata:
            context.set_trailing_metadata(exc.metadata)
        log.info("%s: %s %s", name, exc.code, exc)
        context.abort(getattr(grpc.StatusCode, exc.code), str(exc))
    elif isinstance(exc, KernelError):
        log.error("%s: kernel error: %s", name, exc)
        context.abort(grpc.StatusCode.INTERNAL, str(exc))
    else:  # a bug: report it rather than hang the caller
        log.error("%s failed", name, exc_info=exc)
        context.abort(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")


def _time_left(context) -> float | None:
    try:
        return context.time_remaining()
    except (AttributeError, TypeError):  # a test double without deadlines
        return None


def rpc(fn):
    """Every unary handler: lock waits follow the caller's deadline; errors map to statuses."""
    @functools.wraps(fn)
    def handler(self, request, context):
        try:
            with deadline(_time_left(context)):
                return fn(self, request, context)
        except Exception as exc:  # noqa: BLE001 (mapped, never swallowed)
            _abort(fn.__name__, context, exc)
    return handler


def rpc_stream(fn):
    """`rpc` for server-streaming handlers: errors raised while the stream runs end it with the
    mapped status too."""
    @functools.wraps(fn)
    def handler(self, request, context):
        try:
            with deadline(_time_left(context)):
                yield from fn(self, request, context)
        except Exception as exc:  # noqa: BLE001
            _abort(fn.__name__, context, exc)
    return handler


def opt(msg, field: str):
    """The value of an optional field (proto3 ``optional`` or a wrapper such as StringValue), or None."""
    if not msg.HasField(field):
        return None
    value = getattr(msg, field)
    return value.value if hasattr(value, "value") and not isinstance(value, (str, bytes)) else value
