"""Domain errors. Each names the gRPC status Mayastor returns for it; mayastor/grpc maps them."""

from __future__ import annotations


class MayastorError(Exception):
    code = "INTERNAL"

    def __init__(self, message: str, metadata: tuple[tuple[str, str], ...] = ()):
        super().__init__(message)
        self.metadata = metadata


class InvalidArgument(MayastorError):
    code = "INVALID_ARGUMENT"


class NotFound(MayastorError):
    code = "NOT_FOUND"


class AlreadyExists(MayastorError):
    code = "ALREADY_EXISTS"


class ResourceExhausted(MayastorError):
    code = "RESOURCE_EXHAUSTED"


class FailedPrecondition(MayastorError):
    code = "FAILED_PRECONDITION"


class Aborted(MayastorError):
    code = "ABORTED"


class PermissionDenied(MayastorError):
    code = "PERMISSION_DENIED"


class DeadlineExceeded(MayastorError):
    code = "DEADLINE_EXCEEDED"


class Internal(MayastorError):
    code = "INTERNAL"


class ReplicaNotFound(NotFound):
    """DestroyReplica of a missing replica: the control plane reads metadata gtm-602 as 'already gone'."""

    def __init__(self, uuid: str):
        super().__init__(f"replica {uuid} not found", metadata=(("gtm-602", "0"),))


class DataLoss(MayastorError):
    code = "DATA_LOSS"


class Unimplemented(MayastorError):
    code = "UNIMPLEMENTED"
