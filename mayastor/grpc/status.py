"""Domain errors → gRPC status codes (as Mayastor maps them); every handler goes through `rpc`."""

from __future__ import annotations

import functools
import logging

import grpc

from ..errors import MayastorError
from ..kernel.errors import KernelError

log = logging.getLogger("mayastor.grpc")


def rpc(fn):
    @functools.wraps(fn)
    def handler(self, request, context):
        try:
            return fn(self, request, context)
        except MayastorError as exc:
            if exc.metadata:
                context.set_trailing_metadata(exc.metadata)
            log.info("%s: %s %s", fn.__name__, exc.code, exc)
            context.abort(getattr(grpc.StatusCode, exc.code), str(exc))
        except KernelError as exc:
            log.error("%s: kernel error: %s", fn.__name__, exc)
            context.abort(grpc.StatusCode.INTERNAL, str(exc))
        except Exception as exc:  # a bug: report it rather than hang the caller
            log.exception("%s failed", fn.__name__)
            context.abort(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")
    return handler


def rpc_stream(fn):
    """`rpc` for server-streaming handlers: errors raised while the stream runs end it with the
    mapped status too."""
    @functools.wraps(fn)
    def handler(self, request, context):
        try:
            yield from fn(self, request, context)
        except MayastorError as exc:
            log.info("%s: %s %s", fn.__name__, exc.code, exc)
            context.abort(getattr(grpc.StatusCode, exc.code), str(exc))
        except KernelError as exc:
            log.error("%s: kernel error: %s", fn.__name__, exc)
            context.abort(grpc.StatusCode.INTERNAL, str(exc))
        except Exception as exc:
            log.exception("%s failed", fn.__name__)
            context.abort(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")
    return handler


def opt(msg, field: str):
    """The value of an optional field (proto3 ``optional`` or a wrapper such as StringValue), or None."""
    if not msg.HasField(field):
        return None
    value = getattr(msg, field)
    return value.value if hasattr(value, "value") and not isinstance(value, (str, bytes)) else value
