"""FormPost: browser form uploads, as OpenStack Swift's formpost middleware.

A ``multipart/form-data`` POST to ``/v1/AUTH_<p>/<container>[/<prefix>]`` whose
fields (before the files) are ``redirect``, ``max_file_size``, ``max_file_count``,
``expires``, ``signature`` (and optionally ``x_delete_at`` / ``x_delete_after``);
each file part becomes the object ``<prefix><filename>``. The signature is an HMAC
of ``<path>\\n<redirect>\\n<max_file_size>\\n<max_file_count>\\n<expires>`` with an
account or container Temp-URL key (SHA1/SHA256/SHA512, hex or ``<alg>:<base64>``).

File parts are streamed from the shared form reader (``lampi.http.forms``) into the
storage core in chunks; a part over ``max_file_size`` is aborted (nothing of it is stored).
Responses are Swift's: ``201 Created`` text (or ``400``/``401`` ``FormPost: ...``),
or a ``303`` to ``redirect?status=<code>&message=<msg>`` when a redirect was given.
"""

from __future__ import annotations

import hmac
import mimetypes
import time
from urllib.parse import quote

from aiohttp import web

from lampi.core import errors
from lampi.http import forms
from lampi.http.context import SETTINGS, STORAGE
from lampi.swift.http_util import normalize_delete_at
from lampi.swift.tempurl import ALLOWED_DIGESTS, Invalid, decode_signature, keys_from_meta

MAX_VALUE_LENGTH = 4096  # Swift's cap on a form field's value


class FormInvalid(Exception):
    """400 FormPost: <message>."""


class FormUnauthorized(Exception):
    """401 FormPost: <Message Titled>."""


def applies(request: web.Request, container: str | None) -> bool:
    if request.method != "POST" or container is None:
        return False
    return forms.is_form(request.headers.get("Content-Type", ""))


def info() -> dict[str, object]:
    return {"allowed_digests": list(ALLOWED_DIGESTS)}


async def handle(request: web.Request, account: str, project_id: str, container: str,
                 prefix: str | None) -> web.StreamResponse:
    try:
        status, message, redirect = await _translate_form(request, account, project_id, container, prefix or "")
    except FormInvalid as exc:
        return web.Response(status=400, text=f"FormPost: {exc}", content_type="text/plain")
    except FormUnauthorized as exc:
        return web.Response(status=401, text=f"FormPost: {str(exc).title()}", content_type="text/plain")
    if not redirect:
        body = status + ("\r\nFormPost: " + message.title() if message else "")
        return web.Response(status=int(status.split()[0]), text=body, content_type="text/plain")
    code = status.split(" ", 1)[0]
    location = redirect + ("&" if "?" in redirect else "?") + f"status={quote(code)}&message={quote(message)}"
    body = f'<html><body><p><a href="{location}">Click to continue...</a></p></body></html>'
    return web.Response(status=303, text=body, headers={"Location": location}, content_type="text/html")


async def _translate_form(request: web.Request, account: str, project_id: str, container: str,
                          prefix: str) -> tuple[str, str, str | None]:
    storage = request.app[STORAGE]
    attributes: dict[str, str] = {}
    status = message = ""
    file_count = 0
    keys: list[str] | None = None
    try:
        form = await forms.Form.open(request)
        while True:
            part = await form.next()
            if part is None:
                break
            if part.filename:  # a file
                file_count += 1
                try:
                    max_count = int(attributes.get("max_file_count") or 0)
                except ValueError:
                    raise FormInvalid("max_file_count not an integer") from None
                if file_count > max_count:
                    status, message = "400 Bad Request", "max file count exceeded"
                    break
                if keys is None:
                    keys = await _keys(request, project_id, container)
                _check(request, attributes, keys)
                c = await storage.meta.get_container(container)
                if c is None or c.project_id != project_id:
                    status, message = "404 Not Found", ""
                    break
                status, message = await _store(request, storage, container, prefix, part, attributes)
                if not status.startswith("2"):
                    break
            else:
                data, _ = await part.value(MAX_VALUE_LENGTH)  # an over-long value: cut, as Swift
                if part.name:
                    attributes[part.name.lower()] = data.decode("utf-8", "replace").rstrip("\r\n--")
    except forms.MalformedForm as exc:
        raise FormInvalid(str(exc)) from None
    if not status:
        status, message = "400 Bad Request", "no files to process"
    return status, message, attributes.get("redirect") or None


async def _keys(request: web.Request, project_id: str, container: str) -> list[str]:
    storage = request.app[STORAGE]
    acct = await storage.account(project_id)
    keys = keys_from_meta(acct.meta)
    c = await storage.meta.get_container(container)
    if c is not None and c.project_id == project_id:
        keys += keys_from_meta(c.meta)
    return keys


def _check(request: web.Request, attributes: dict[str, str], keys: list[str]) -> None:
    import hashlib

    if not keys:
        raise FormUnauthorized("invalid signature (no temp URL key configured)")
    try:
        max_file_size = int(attributes.get("max_file_size") or 0)
    except ValueError:
        raise FormInvalid("max_file_size not an integer") from None
    del max_file_size
    try:
        if int(attributes.get("expires") or 0) < time.time():
            raise FormUnauthorized("form expired")
    except ValueError:
        raise FormInvalid("expired not an integer") from None
    path = request.path
    if path.startswith("/swift/"):
        path = path[len("/swift"):]
    hmac_body = "%s\n%s\n%s\n%s\n%s" % (
        path, attributes.get("redirect") or "", attributes.get("max_file_size") or "0",
        attributes.get("max_file_count") or "0", attributes.get("expires") or "0")
    try:
        alg, sig_hex = decode_signature(attributes.get("signature") or "invalid")
    except Invalid:
        raise FormUnauthorized("invalid signature") from None
    if alg not in ALLOWED_DIGESTS:
        raise FormUnauthorized("invalid signature")
    for key in keys:
        if hmac.compare_digest(hmac.new(key.encode(), hmac_body.encode(), getattr(hashlib, alg)).hexdigest(), sig_hex):
            return
    raise FormUnauthorized("invalid signature")


async def _store(request: web.Request, storage, container: str, prefix: str,  # noqa: ANN001
                 part: forms.Part, attributes: dict[str, str]) -> tuple[str, str]:
    max_size = int(attributes.get("max_file_size") or 0)
    name = prefix + (part.filename or "filename")
    delete_at = None
    if "x_delete_at" in attributes:
        try:
            delete_at = normalize_delete_at(int(attributes["x_delete_at"]))
        except ValueError:
            raise FormInvalid("x_delete_at not an integer: Unix timestamp required.") from None
    if "x_delete_after" in attributes:
        try:
            delete_at = normalize_delete_at(int(time.time()) + int(attributes["x_delete_after"]))
        except ValueError:
            raise FormInvalid("x_delete_after not an integer: Number of seconds required.") from None
    if delete_at is not None and delete_at <= time.time():
        return "400 Bad Request", "X-Delete-At in past"
    ctype = attributes.get("content-type") or part.headers.get("Content-Type")
    if not ctype:
        ctype = mimetypes.guess_type(name, strict=False)[0] or "application/octet-stream"
    if len(name.encode()) > 1024:
        return "400 Bad Request", "Object name too long"

    try:
        await storage.put_object(
            container, name, part.chunks(), content_type=ctype, meta={}, sysmeta={}, delete_at=delete_at,
            max_size=min(max_size, request.app[SETTINGS].max_object_size),
        )
    except errors.EntityTooLarge:
        raise FormInvalid("max_file_size exceeded") from None
    return "201 Created", ""
