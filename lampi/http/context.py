"""Typed keys for application and request state."""

from __future__ import annotations

from aiohttp import web

from lampi.config import Settings
from lampi.core.authz import Principal
from lampi.core.identity import IdentityService
from lampi.core.storage import Storage

SETTINGS = web.AppKey("settings", Settings)
STORAGE = web.AppKey("storage", Storage)
IDENTITY = web.AppKey("identity", IdentityService)
# what other front-ends add to Swift's ``GET /info`` (the S3 API's ``s3api`` section):
# set when the app is assembled, so Swift need not import them
INFO = web.AppKey("info", dict)

TRANS_ID = "lampi.trans_id"
PRINCIPAL = "lampi.principal"
PROJECT = "lampi.project"  # project id of the request, for the access log
# callables(response) run just before a response's headers are sent (streamed ones
# too): middleware-like response headers (CORS, TempURL's Content-Disposition)
ON_PREPARE = "lampi.on_prepare"
# set when the request's body stalled past ``body_timeout`` (lampi.gateway.guard): the
# outer middleware answers 408 in the request's protocol, whatever the handler made of it
BODY_TIMEOUT = "lampi.body_timeout"
OPERATION = "lampi.operation"  # the API's name for what a request does (S3: GetObject, ...), for metrics
AUTH_FAILED = "lampi.auth_failed"  # the request's credentials were refused (an S3 403), for metrics
# set by a valid temp URL (lampi.swift.tempurl): ("account" | "container", container) of
# the key used, the scope of the sub-requests it allows (lampi.http.authz.check_subrequest)
TEMPURL_SCOPE = "lampi.tempurl_scope"

__all__ = ["SETTINGS", "STORAGE", "IDENTITY", "INFO", "TRANS_ID", "PRINCIPAL", "PROJECT", "ON_PREPARE", "BODY_TIMEOUT", "OPERATION", "AUTH_FAILED", "TEMPURL_SCOPE", "Principal"]
