"""S3 error responses: ``<Error><Code/><Message/><Resource/><RequestId/></Error>``.

``S3Error`` is raised anywhere in the S3 adapter; ``from_domain`` maps the storage
core's errors to the code and status AWS answers with.
"""

from __future__ import annotations

import binascii
import hashlib

from aiohttp import web

from lampi.core import errors
from lampi.core import multipart as mp
from lampi.s3.xml import element, xml_doc


class S3Error(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra  # extra child elements, e.g. CanonicalRequest, StringToSign
        self.headers: dict[str, str] = {}  # response headers, e.g. x-amz-delete-marker on a 404


ERROR_CODE = "lampi.s3.error_code"  # request key: the code of the S3 error answered (lampi.gateway.app)


def access_denied(message: str = "Access Denied") -> S3Error:
    return S3Error(403, "AccessDenied", message)


def no_such_bucket(bucket: str) -> S3Error:
    return S3Error(404, "NoSuchBucket", "The specified bucket does not exist", BucketName=bucket)


def no_such_key(key: str) -> S3Error:
    return S3Error(404, "NoSuchKey", "The specified key does not exist.", Key=key)


def invalid_argument(message: str, name: str = "", value: str = "") -> S3Error:
    extra = {"ArgumentName": name, "ArgumentValue": value} if name else {}
    return S3Error(400, "InvalidArgument", message, **extra)


def malformed_xml() -> S3Error:
    """A request body that is not the XML document the operation takes."""
    return S3Error(400, "MalformedXML", "The XML you provided was not well-formed or did not validate against "
                   "our published schema")


def invalid_request(message: str) -> S3Error:
    return S3Error(400, "InvalidRequest", message)


def not_implemented(operation: str) -> S3Error:
    return S3Error(501, "NotImplemented", f"{operation} is not implemented by this server.")


def from_domain(exc: errors.DomainError, bucket: str = "", key: str = "") -> S3Error:
    match exc:
        case errors.ContainerNotFound():
            return no_such_bucket(bucket)
        case errors.EncryptionKeyRequired():
            return invalid_request("The object was stored using a form of Server Side Encryption. The correct "
                                   "parameters must be provided to retrieve the object.")
        case errors.EncryptionKeyMismatch():
            # AWS answers 403 AccessDenied; Ceph RGW (Allas), MinIO and Ceph's s3-tests 400
            return invalid_argument("The provided encryption parameters did not match the ones used originally.")
        case errors.EncryptionNotApplicable():
            return invalid_request("The encryption parameters are not applicable to this object.")
        case errors.NoSuchEncryptionKey():
            return S3Error(400, "KMS.NotFoundException", exc.message)
        case errors.EncryptionKeyUnavailable():
            return S3Error(503, "ServiceUnavailable", exc.message)
        case errors.ObjectNotFound():
            return no_such_key(key)
        case errors.ContainerNotEmpty():
            return S3Error(409, "BucketNotEmpty", "The bucket you tried to delete is not empty", BucketName=bucket)
        case errors.ContainerNameTaken():
            return S3Error(409, "BucketAlreadyExists", "The requested bucket name is not available. The bucket "
                           "namespace is shared by all users of the system. Please select a different name "
                           "and try again.", BucketName=bucket)
        case errors.ObjectLocked():
            return access_denied(exc.message)
        case errors.Unauthorized() | errors.Forbidden():
            return access_denied()
        case errors.QuotaExceeded():
            return S3Error(403, "QuotaExceeded", "The quota of this project or bucket would be exceeded.")
        case errors.DomainError() if (mapped := _multipart(exc)) is not None:
            return mapped
        case errors.EntityTooLarge():
            return S3Error(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed object size.")
        case errors.ChecksumMismatch():
            return S3Error(400, "BadDigest", "The Content-MD5 you specified did not match what we received.")
        case errors.IncompleteBody():
            return S3Error(400, "IncompleteBody", "You did not provide the number of bytes specified by the "
                           "Content-Length HTTP header.")
        case errors.PreconditionFailed():
            cond = {"Condition": str(exc.detail["condition"])} if "condition" in exc.detail else {}
            return S3Error(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold",
                           **cond)
        case errors.RangeNotSatisfiable():
            return S3Error(416, "InvalidRange", "The requested range is not satisfiable")
        case errors.DataUnavailable():
            return S3Error(503, "ServiceUnavailable", "The object's data is not available. Please try again later.")
        case errors.InsufficientStorage():
            # AWS has no such error; Ceph RGW answers an unmapped ENOSPC with 500
            # UnknownError. 507 with the status's own name, as MinIO (XMinioStorageFull) and
            # VersityGW do: not retried by SDKs, and clear to operators.
            return S3Error(507, "InsufficientStorage", "There is not enough free space on the server to store "
                           "this data. Delete objects or ask the operator to add space.")
        case errors.InvalidName():
            return S3Error(400, "KeyTooLongError" if "longer" in exc.message else "InvalidArgument", exc.message)
        case errors.InvalidMetadata() | errors.InvalidArgument():
            return invalid_argument(exc.message)
        case errors.NotFound():
            return S3Error(404, "NoSuchKey", exc.message)
    return S3Error(500, "InternalError", "We encountered an internal error. Please try again.")


def _multipart(exc: errors.DomainError) -> S3Error | None:
    """The multipart errors of ``lampi.core.multipart``, as S3 words them."""
    d = {k: str(v) for k, v in exc.detail.items()}
    match exc:
        case mp.NoSuchUpload():
            return S3Error(404, "NoSuchUpload", "The specified upload does not exist. The upload ID may be invalid, "
                           "or the upload may have been aborted or completed.")
        case mp.InvalidPart():
            extra = {"PartNumber": d["part_number"], "ETag": d["etag"]} if "part_number" in d else {}
            return S3Error(400, "InvalidPart", "One or more of the specified parts could not be found.  The part "
                           "may not have been uploaded, or the specified entity tag may not match the part's "
                           "entity tag.", **extra)
        case mp.InvalidPartOrder():
            return S3Error(400, "InvalidPartOrder", "The list of parts was not in ascending order. Parts must be "
                           "ordered by part number.")
        case mp.EntityTooSmall():
            return S3Error(400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed object "
                           "size.", ProposedSize=d.get("size", ""), MinSizeAllowed=d.get("min_size", ""),
                           PartNumber=d.get("part_number", ""))
    return None


def error_response(request: web.Request, err: S3Error, resource: str, request_id: str) -> web.Response:
    """The XML error; HEAD responses carry the status and headers only (as AWS)."""
    children = [element("Code", err.code), element("Message", err.message)]
    children += [element(k, v) for k, v in err.extra.items()]
    children += [element("Resource", resource), element("RequestId", request_id),
                 element("HostId", request_id)]
    body = b"" if request.method == "HEAD" else xml_doc("Error", children, namespace=False)
    resp = web.Response(status=err.status, body=body, content_type="application/xml")
    resp.headers.update(err.headers)
    if err.code in ("NoSuchBucket", "NoSuchKey", "AccessDenied") and request.method == "HEAD":
        resp.headers["x-amz-error-code"] = err.code
    return resp


def internal_error(request: web.Request, request_id: str) -> web.Response:
    """The 500 for an unexpected exception in S3 code (built by the outer middleware)."""
    err = S3Error(500, "InternalError", "We encountered an internal error. Please try again.")
    resp = error_response(request, err, request.path, request_id)
    stamp(resp, request_id)
    return resp


def stamp(resp: web.StreamResponse, request_id: str) -> None:
    resp.headers["x-amz-request-id"] = request_id
    resp.headers["x-amz-id-2"] = binascii.b2a_base64(hashlib.sha256(request_id.encode()).digest(), newline=False).decode()
