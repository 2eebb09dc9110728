"""Domain errors → gRPC status codes (as Mayastor maps them); every handler goes through `rpc`."""

from __future__ import annotations

import functools
import logging

import grpc
from google.protobuf import text_format

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


READ_ONLY = ("List", "Get", "Stat", "Find", "Probe", "NodeGet")  # handlers that change nothing
REQUEST_LOG_CHARS = 600
NEVER_LOGGED = ("secrets",)  # CSI requests carry credentials there


def log_request(name: str, request) -> None:
    """One INFO line per mutating request, with its arguments (what was asked, before any
    outcome is logged); read-only calls, which the control plane repeats, stay out."""
    if name.startswith(READ_ONLY):
        return
    hidden = [f.name for f in request.DESCRIPTOR.fields if f.name in NEVER_LOGGED]
    if hidden:
        shown = type(request)()
        shown.CopyFrom(request)
        for field in hidden:
            shown.ClearField(field)
        request = shown
    text = text_format.MessageToString(request, as_one_line=True)
    log.info("%s {%s}", name, text if len(text) <= REQUEST_LOG_CHARS else text[:REQUEST_LOG_CHARS] + "...")


def rpc(fn):
    """Every unary handler: lock waits follow the caller's deadline; errors map to statuses."""

    @functools.wraps(fn)
    def handler(self, request, context):
        log_request(fn.__name__, request)
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
        log_request(fn.__name__, request)
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
