"""What the Keystone API (lampi.identity.keystone) and its EC2 credentials
(lampi.identity.ec2) share: Keystone's JSON errors, the public base URL, request body
readers, the caller's token, collection responses."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from lampi.core import errors, jsonbody
from lampi.core.tokens import TokenData
from lampi.http.context import IDENTITY, SETTINGS

MAX_AUTH_BODY = 64 * 1024

_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 409: "Conflict", 413: "Request Entity Too Large",
           503: "Service Unavailable"}


def error(status: int, message: str, request: web.Request | None = None) -> web.Response:
    body = {"error": {"code": status, "title": _TITLES.get(status, "Error"), "message": message}}
    resp = web.json_response(body, status=status)
    if status == 401 and request is not None:
        resp.headers["WWW-Authenticate"] = f'Keystone uri="{base_url(request)}/v3"'
    resp.headers["Vary"] = "X-Auth-Token"
    return resp


def base_url(request: web.Request) -> str:
    s = request.app[SETTINGS]
    if s.public_url:
        return s.public_url.rstrip("/")
    return f"{request.scheme}://{request.host}"


def required_object(d: Any, key: str, where: str) -> dict[str, Any]:
    v = d.get(key) if isinstance(d, dict) else None
    if not isinstance(v, dict):
        raise errors.InvalidArgument(f"'{key}' is a required property of {where}")
    return v


def optional_str(d: dict[str, Any], key: str) -> str | None:
    v = d.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise errors.InvalidArgument(f"'{key}' must be a string")
    return v


async def read_json(request: web.Request) -> Any:
    if request.content_length is not None and request.content_length > MAX_AUTH_BODY:
        raise errors.InvalidArgument("request body too large")
    raw = await request.content.read(MAX_AUTH_BODY + 1)
    if len(raw) > MAX_AUTH_BODY:
        raise errors.InvalidArgument("request body too large")
    try:
        return jsonbody.loads(raw)  # ValueError also for deep nesting and lone surrogates
    except ValueError:
        raise errors.InvalidArgument("Expecting to find valid JSON in request body.") from None


async def caller(request: web.Request) -> TokenData:
    token = request.headers.get("X-Auth-Token")
    if not token:
        raise errors.Unauthorized("The request you have made requires authentication.")
    return await request.app[IDENTITY].validate(token)


def collection(request: web.Request, key: str, items: list[dict[str, Any]]) -> web.Response:
    return web.json_response(
        {key: items, "links": {"self": str(request.url), "previous": None, "next": None}}
    )
