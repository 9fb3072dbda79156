"""Every core DomainError maps to a deliberate Swift status, never a 500."""

from __future__ import annotations

import pytest

from lampi.core import errors
from lampi.swift.errors import to_response


def all_subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(all_subclasses(sub))
    return out


# the errors of lampi.core.errors: the subclasses other modules define exist only once
# those are imported (S3 multipart's, lampi.core.multipart, are S3's to map), which
# would make this list depend on what the tests collected before
DOMAIN_ERRORS = sorted({errors.DomainError, *(c for c in all_subclasses(errors.DomainError)
                                              if c.__module__ == errors.__name__)}, key=lambda c: c.__name__)

EXPECTED = {
    "NotFound": 404,
    "AccountNotFound": 404,
    "ContainerNotFound": 404,
    "ObjectNotFound": 404,
    "ContainerExists": 409,
    "ContainerNameTaken": 409,
    "ContainerNotEmpty": 409,
    "Conflict": 409,
    "SegmentError": 409,
    "InvalidName": 400,
    "InvalidMetadata": 400,
    "InvalidArgument": 400,
    "EntityTooLarge": 413,
    "QuotaExceeded": 413,
    "TooManyContainers": 403,
    "ChecksumMismatch": 422,
    "IncompleteBody": 499,
    "PreconditionFailed": 412,
    "NotModified": 304,
    "DataUnavailable": 503,
    "InsufficientStorage": 507,
    "RangeNotSatisfiable": 416,
    "Unauthorized": 401,
    "Forbidden": 403,
    "ObjectLocked": 403,
    "NotAcceptable": 406,
    "EncryptionKeyRequired": 400,
    "EncryptionKeyMismatch": 400,
    "EncryptionNotApplicable": 400,
    "NoSuchEncryptionKey": 400,
    "EncryptionKeyUnavailable": 503,
}


@pytest.mark.parametrize("cls", [c for c in DOMAIN_ERRORS if c is not errors.DomainError], ids=lambda c: c.__name__)
@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT"])
def test_every_domain_error_maps_to_a_client_status(cls, method):
    resp = to_response(cls(), method)
    if issubclass(cls, errors.DataUnavailable):  # the server's trouble (a missing blob or key), never a 500
        assert resp.status == 503
        return
    if cls is errors.InsufficientStorage:  # a full disk: Swift's answer for a full device
        assert resp.status == 507
        return
    assert 300 <= resp.status < 500, f"{cls.__name__} → {resp.status}"
    # subclasses of NotFound are 404 even if not listed by name
    if issubclass(cls, errors.NotFound):
        assert resp.status == 404


def test_every_domain_error_has_an_expected_status():
    """A new DomainError must be added to EXPECTED (and to to_response) on purpose."""
    missing = sorted(c.__name__ for c in DOMAIN_ERRORS if c is not errors.DomainError and c.__name__ not in EXPECTED)
    assert not missing, f"add these to EXPECTED: {missing}"


@pytest.mark.parametrize("name,status", sorted(EXPECTED.items()))
def test_expected_table(name, status):
    cls = getattr(errors, name, None)
    if cls is None:
        pytest.skip(f"{name} is not defined (any more)")
    assert to_response(cls(), "GET").status == status


def test_bodies_are_swift_shaped():
    resp = to_response(errors.ContainerNotEmpty(), "DELETE")
    assert resp.content_type == "text/html"
    assert resp.text == "<html><h1>Conflict</h1><p>There was a conflict when trying to complete your request.</p></html>"
    resp = to_response(errors.EntityTooLarge(), "PUT")
    assert (resp.content_type, resp.text) == ("text/plain", "Your request is too large.")
    resp = to_response(errors.InvalidMetadata("Metadata name cannot be empty"), "POST")
    assert (resp.status, resp.content_type, resp.text) == (400, "text/plain", "Metadata name cannot be empty")
    resp = to_response(errors.NotFound(), "GET")
    assert resp.text == "<html><h1>Not Found</h1><p>The resource could not be found.</p></html>"
    assert to_response(errors.NotModified(), "GET").body in (None, b"")
    resp = to_response(errors.PreconditionFailed("Bad delimiter"), "GET")
    assert (resp.status, resp.text) == (412, "Bad delimiter")
    resp = to_response(errors.PreconditionFailed(), "GET")
    assert "A precondition for this request was not met." in resp.text


def test_a_full_disk_is_swifts_507_and_an_s3_error():
    """Swift: the object server's 507 with swob's HTML body naming the drive; S3: 507
    InsufficientStorage in S3's XML error (not RGW's 500 UnknownError)."""
    from lampi.s3.errors import from_domain

    resp = to_response(errors.InsufficientStorage(drive="lampi-data"), "PUT")
    assert (resp.status, resp.content_type, resp.charset) == (507, "text/html", "UTF-8")
    assert resp.text == ("<html><h1>Insufficient Storage</h1><p>There was not enough space to save the "
                         "resource. Drive: lampi-data</p></html>")
    assert "Drive: unknown" in to_response(errors.InsufficientStorage(), "PUT").text
    err = from_domain(errors.InsufficientStorage(drive="lampi-data"), "b", "k")
    assert (err.status, err.code) == (507, "InsufficientStorage")


def test_an_unmapped_error_is_a_500_not_a_crash():
    class Surprise(errors.DomainError):
        pass

    assert to_response(Surprise(), "GET").status == 500
