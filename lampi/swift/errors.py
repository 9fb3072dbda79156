"""Swift's error responses: status codes and the small HTML bodies swob sends.

``to_response`` is the single mapping from core domain errors to Swift responses.
"""

from __future__ import annotations

from aiohttp import web

from lampi.core import errors

# swift/common/swob.py RESPONSE_REASONS
REASONS: dict[int, tuple[str, str]] = {
    400: ("Bad Request", "The server could not comply with the request since it is either malformed or otherwise incorrect."),
    401: ("Unauthorized", "This server could not verify that you are authorized to access the document you requested."),
    403: ("Forbidden", "Access was denied to this resource."),
    404: ("Not Found", "The resource could not be found."),
    405: ("Method Not Allowed", "The method is not allowed for this resource."),
    408: ("Request Timeout", "The server has waited too long for the request to be sent by the client."),
    409: ("Conflict", "There was a conflict when trying to complete your request."),
    406: ("Not Acceptable", "The resource is not available in a format acceptable to your browser."),
    411: ("Length Required", "Content-Length header required."),
    412: ("Precondition Failed", "A precondition for this request was not met."),
    413: ("Request Entity Too Large", "The body of your request was too large for this server."),
    416: ("Requested Range Not Satisfiable", "The Range requested is not available."),
    422: ("Unprocessable Entity", "Unable to process the contained instructions"),
    499: ("Client Disconnect", "The client was disconnected during request."),
    500: ("Internal Error", "The server has either erred or is incapable of performing the requested operation."),
    501: ("Not Implemented", "The requested method is not implemented by this server."),
    503: ("Service Unavailable", "The server is currently unavailable. Please try again at a later time."),
    507: ("Insufficient Storage", "There was not enough space to save the resource. Drive: %(drive)s"),
}


def swift_error(status: int, body: str | None = None, method: str = "GET", drive: str = "unknown") -> web.Response:
    """A Swift error: the given plain-text body, or swob's default HTML body (507's names
    the ``drive``, "unknown" as swob says when none is given).

    For HEAD, aiohttp sends the headers (with the body's length) and no body.
    """
    reason = REASONS.get(status, ("Error", ""))
    if body is None:
        explanation = reason[1].replace("%(drive)s", drive)
        text = f"<html><h1>{reason[0]}</h1><p>{explanation}</p></html>" if explanation else ""
        ctype = "text/html"
    else:
        text = body
        ctype = "text/plain"
    return web.Response(status=status, text=text, content_type=ctype, charset="UTF-8")


def to_response(exc: errors.DomainError, method: str) -> web.Response:
    """Map a core domain error to Swift's response."""
    match exc:
        case errors.Unauthorized():
            return swift_error(401, method=method)
        case errors.EncryptionKeyRequired():
            return swift_error(400, "The object is encrypted with a customer-provided key (S3 SSE-C): read it "
                               "through the S3 API with that key.", method=method)
        case (errors.EncryptionKeyMismatch() | errors.EncryptionNotApplicable()
              | errors.NoSuchEncryptionKey()):
            return swift_error(400, exc.message, method=method)
        case errors.TooManyContainers():
            return swift_error(403, exc.message, method=method)  # proxy: "Reached container limit of N"
        case errors.ObjectLocked():  # S3 object lock holds for Swift requests too
            return swift_error(403, exc.message, method=method)
        case errors.Forbidden():
            return swift_error(403, method=method)
        case errors.NotFound():
            return swift_error(404, method=method)
        case errors.ContainerNotEmpty() | errors.ContainerNameTaken() | errors.ContainerExists() | errors.Conflict():
            return swift_error(409, method=method)
        case errors.InvalidName() | errors.InvalidMetadata() | errors.InvalidArgument():
            return swift_error(400, exc.message, method=method)
        case errors.QuotaExceeded():
            return swift_error(413, "Upload exceeds quota.", method=method)  # container/account_quotas
        case errors.EntityTooLarge():
            return swift_error(413, "Your request is too large.", method=method)
        case errors.ChecksumMismatch():
            return swift_error(422, method=method)
        case errors.IncompleteBody():
            return swift_error(499, method=method)
        case errors.PreconditionFailed():
            default = (errors.PreconditionFailed.__doc__ or "").strip()
            return swift_error(412, None if exc.message == default else exc.message, method=method)
        case errors.NotModified():
            return web.Response(status=304)
        case errors.NotAcceptable():
            return swift_error(406, method=method)
        case errors.RangeNotSatisfiable():
            return swift_error(416, method=method)
        case errors.DataUnavailable():
            return swift_error(503, method=method)
        case errors.InsufficientStorage():
            # the object server's answer for a full device: swob's body naming the drive
            return swift_error(507, method=method, drive=str(exc.detail.get("drive") or "unknown"))
    return swift_error(500, method=method)
