"""Domain errors raised by the storage core and identity layer.

No HTTP in here: ``lampi.swift.errors`` and ``lampi.identity.errors`` map each
class to their protocol's status code and body.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error the core raises on purpose."""

    def __init__(self, message: str = "", **detail: object) -> None:
        super().__init__(message or self.__class__.__doc__ or self.__class__.__name__)
        self.message = message or (self.__class__.__doc__ or "").strip()
        self.detail = detail


class NotFound(DomainError):
    """The resource could not be found."""


class AccountNotFound(NotFound):
    """The account could not be found."""


class ContainerNotFound(NotFound):
    """The container could not be found."""


class ObjectNotFound(NotFound):
    """The object could not be found."""


class ContainerExists(DomainError):
    """The container already exists in this account."""


class ContainerNameTaken(DomainError):
    """The container name is in use by another project."""


class ContainerNotEmpty(DomainError):
    """There was a conflict when trying to complete your request."""


class InvalidName(DomainError):
    """The name is not valid."""


class InvalidMetadata(DomainError):
    """The metadata is not valid."""


class InvalidArgument(DomainError):
    """A request parameter is not valid."""


class EntityTooLarge(DomainError):
    """Your request is too large."""


class ChecksumMismatch(DomainError):
    """The given ETag does not match the MD5 of the received bytes."""


class IncompleteBody(DomainError):
    """The request body ended before its declared length."""


class PreconditionFailed(DomainError):
    """A precondition header did not match."""


class NotModified(DomainError):
    """The object was not modified since the given time / matches the given ETag."""


class NotAcceptable(DomainError):
    """None of the representations offered is acceptable to the client."""


class RangeNotSatisfiable(DomainError):
    """The requested range is not satisfiable."""


class Unauthorized(DomainError):
    """The request could not be authenticated."""


class Forbidden(DomainError):
    """Access was denied to this resource."""


class Conflict(DomainError):
    """The request conflicts with the current state."""


class QuotaExceeded(EntityTooLarge):
    """Upload exceeds quota."""


class TooManyContainers(Forbidden):
    """The project has reached its container limit."""


class SegmentError(Conflict):
    """A segment of a large object is missing or no longer matches its manifest."""


class DataUnavailable(DomainError):
    """The object's data is not available (its blob is missing: see ``lampi fsck``)."""


class InsufficientStorage(DomainError):
    """There is not enough free space on the server's disk to store the data."""


# -- server-side encryption (lampi/core/sse.py) ----------------------------------------


class EncryptionKeyRequired(DomainError):
    """The object is encrypted with a customer-provided key (S3 SSE-C): that key is needed to read it."""


class EncryptionKeyMismatch(DomainError):
    """The provided encryption key is not the one the object was encrypted with."""


class EncryptionNotApplicable(DomainError):
    """The encryption parameters are not applicable to this object."""


class NoSuchEncryptionKey(DomainError):
    """The named KMS key does not exist."""


class EncryptionKeyUnavailable(DataUnavailable):
    """The server-managed key that encrypted this object's data is not available (see docs/operations.md)."""


class ObjectLocked(Forbidden):
    """The object version is protected by object lock (retention or legal hold)."""
