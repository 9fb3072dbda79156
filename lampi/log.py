"""Structured logging: JSON lines (or console lines on a TTY) with the transaction id.

Secrets never reach the log: query parameters that carry signatures or tokens are
redacted, no header value is logged except a short allow-list (the host), and every
other line — error messages and tracebacks of any logger, aiohttp's and asyncio's
included — is scrubbed of credential headers and parameters before it is written
(``scrub``). Lines about hostile or broken clients go through a ``Throttle`` so a
flood of them cannot flood the log.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

import orjson

if TYPE_CHECKING:  # types only: `lampi serve` sets logging up before aiohttp is loaded (lampi.gateway.startup)
    from aiohttp import web

REDACT_PARAMS = {
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "signature",
    "awsaccesskeyid",
    "temp_url_sig",
    "token",
    "password",
    "secret",
    "x-auth-token",
    "x-storage-token",
    "x-subject-token",
    "x-auth-key",
    "authorization",
    "access_token",
}

# Headers whose values are credentials (requests and responses), and the query or JSON
# keys above: what ``scrub`` removes from free text (messages, exception texts).
SECRET_HEADERS = (
    "authorization", "proxy-authorization", "cookie", "set-cookie",
    "x-auth-token", "x-storage-token", "x-subject-token", "x-service-token", "x-auth-key",
    "x-storage-pass", "x-amz-security-token", "x-amz-signature", "x-amz-credential",
    "x-account-meta-temp-url-key", "x-account-meta-temp-url-key-2",
    "x-container-meta-temp-url-key", "x-container-meta-temp-url-key-2",
    "x-amz-server-side-encryption-customer-key",
)
_HEADER_RE = re.compile(
    r"(?i)\b(" + "|".join(re.escape(h) for h in sorted(SECRET_HEADERS, key=len, reverse=True))
    + r")(['\"]?\s*:\s*['\"]?)[^\r\n'\"\\]*")
_PARAM_RE = re.compile(
    r"(?i)((?:^|[?&;\s,(])(?:" + "|".join(re.escape(p) for p in sorted(REDACT_PARAMS, key=len, reverse=True))
    + r")=)[^&;\s'\"\\]*")
_JSON_RE = re.compile(r"(?i)(['\"](?:password|secret|token|key)['\"]\s*:\s*['\"])[^'\"]*")
# a Fernet token (lampi's Keystone tokens) quoted anywhere, e.g. in an exception message
_FERNET_RE = re.compile(r"gAAAAA[A-Za-z0-9_=-]{20,}")

access = logging.getLogger("lampi.access")
# the transaction id of the request being served, in every log line (set by the app's
# outer middleware)
trans_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("trans_id", default="-")


def redact_query(qs: str) -> str:
    if not qs:
        return ""
    try:
        pairs = parse_qsl(qs, keep_blank_values=True)
    except ValueError:
        return "<unparseable>"
    return urlencode([(k, "REDACTED" if k.lower() in REDACT_PARAMS else v) for k, v in pairs])


def scrub(text: str) -> str:
    """``text`` with the values of credential headers and parameters replaced by REDACTED.

    For free text only (messages, exception texts, reprs of raw request bytes); the
    access line is built from fields that never hold a credential."""
    if not text:
        return text
    text = _HEADER_RE.sub(r"\1\2REDACTED", text)
    text = _PARAM_RE.sub(r"\1REDACTED", text)
    text = _JSON_RE.sub(r"\1REDACTED", text)
    return _FERNET_RE.sub("REDACTED", text)


def _message(record: logging.LogRecord) -> str:
    msg = record.getMessage()
    # the access line is built from redacted fields (and is the one line per request:
    # no regex on the hot path); anything else may quote what a client sent
    return msg if record.name == "lampi.access" else scrub(msg)


class Throttle:
    """At most ``burst`` lines per ``window`` seconds for one kind of event.

    ``allow()`` returns None when the line is to be dropped, else the number of
    lines dropped since the last one that was let through (to report with it)."""

    def __init__(self, burst: int = 10, window: float = 10.0) -> None:
        self.burst = burst
        self.window = window
        self._start = -window
        self._count = 0
        self._dropped = 0

    def allow(self) -> int | None:
        now = time.monotonic()
        if now - self._start >= self.window:
            self._start, self._count = now, 0
        if self._count >= self.burst:
            self._dropped += 1
            return None
        self._count += 1
        dropped, self._dropped = self._dropped, 0
        return dropped


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": _message(record),
            "trans_id": getattr(record, "trans_id", None) or trans_id_var.get(),
            "pid": record.process,  # tells the worker processes apart
        }
        fields = getattr(record, "fields", None)
        if fields:
            out.update(fields)
        if record.exc_info:
            out["exc"] = scrub(self.formatException(record.exc_info))
        return _dumps(out)


def _dumps(out: dict[str, Any]) -> str:
    """One JSON log line (the formatter's and the access line's direct path)."""
    try:  # orjson: a fifth of json.dumps's time, one line per request adds up
        return orjson.dumps(out, default=str).decode()
    except (TypeError, orjson.JSONEncodeError):  # e.g. an int beyond 64 bits
        return json.dumps(out, default=str)


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        t = time.strftime("%H:%M:%S", time.localtime(record.created))
        fields = getattr(record, "fields", None) or {}
        extra = " ".join(f"{k}={v}" for k, v in fields.items())
        tid = getattr(record, "trans_id", None) or trans_id_var.get()
        line = f"{t} {record.levelname:<7} [{tid}] {_message(record)} {extra}".rstrip()
        if record.exc_info:
            line += "\n" + scrub(self.formatException(record.exc_info))
        return line


def setup_logging(level: str = "info", fmt: str = "auto") -> None:
    global _json_handler
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    handler.setFormatter(JSONFormatter() if fmt == "json" else ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").disabled = True
    _json_handler = handler if fmt == "json" else None


# The JSON handler ``setup_logging`` installed, for the access line's direct path
# (``_write_access``); None when the lines are console lines or logging was set up
# otherwise.
_json_handler: logging.StreamHandler | None = None  # type: ignore[type-arg]
_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def _direct(handler: logging.StreamHandler) -> bool:  # type: ignore[type-arg]
    """Whether an access line would go to ``handler`` alone, formatted by JSONFormatter
    and nothing else: the logger tree as ``setup_logging`` left it."""
    root = logging.root
    return (root.handlers == [handler] and not access.handlers and access.propagate and not access.filters
            and not root.filters and not handler.filters and type(handler.formatter) is JSONFormatter
            and handler.level <= logging.INFO and access.parent is root and not access.disabled)


def _write_access(handler: logging.StreamHandler, fields: dict[str, Any]) -> None:  # type: ignore[type-arg]
    """The access line JSONFormatter would write for ``access.info`` with these fields,
    written as it would be (the handler's stream, under its lock, flushed).

    Speed: through ``logging`` (a LogRecord, findCaller's stack walk, the handler's
    dispatch, the formatter) the line cost ~8% of a gateway's CPU in a small GET over
    PostgreSQL + RADOS (py-spy, docs/benchmarks.md session 9); the same line built here
    costs a third of that."""
    out = {
        "ts": round(time.time(), 6),
        "level": "info",
        "logger": "lampi.access",
        "msg": f"{fields['method']} {fields['path']} {fields['status']}",
        "trans_id": trans_id_var.get(),
        "pid": _pid,
    }
    out.update(fields)
    line = _dumps(out) + handler.terminator
    handler.acquire()
    try:
        handler.stream.write(line)
        handler.stream.flush()
    except Exception:  # noqa: BLE001 - as Handler.emit: a log line never fails the request
        handler.handleError(logging.makeLogRecord({"msg": line.rstrip(), "name": "lampi.access"}))
    finally:
        handler.release()


def _body_bytes(request: web.Request, status: int, resp: web.StreamResponse | None) -> int | None:
    """Body bytes sent. A plain ``web.Response`` is sent by aiohttp after this line is
    logged: its Content-Length is what goes out. A streamed response was sent already;
    aiohttp's ``body_length`` then counts the status line and headers too, so with a
    Content-Length the body is at most that (less when the client went away)."""
    if resp is None:
        return None
    if request.method == "HEAD" or status in (204, 304):
        return 0
    length = resp.content_length
    if not resp.prepared:
        return length
    sent = getattr(resp, "body_length", None)
    if length is not None and sent is not None:
        return min(length, sent)
    return sent


body_bytes = _body_bytes  # also for lampi.metrics' byte counts


def access_log(
    request: web.Request, status: int, duration: float, resp: web.StreamResponse | None,
    bucket: str | None = None, project: str | None = None,
) -> None:
    """One line per request. ``bucket``: the bucket of a virtual-hosted S3 request (its
    path holds only the key); ``project``: the project the request was for; the host
    the client used is logged with every request."""
    if not access.isEnabledFor(logging.INFO):
        return
    body_out = _body_bytes(request, status, resp)
    fields = {
        "method": request.method,
        "path": request.path,
        "query": redact_query(request.query_string),
        "status": status,
        "bytes_in": request.content_length or 0,
        "bytes_out": body_out,
        "duration_ms": round(duration * 1000, 2),
        "project": project,
        "remote": request.remote,
        "host": request.headers.get("Host"),
    }
    if bucket is not None:
        fields["bucket"] = bucket
    handler = _json_handler
    if handler is not None and _direct(handler):
        _write_access(handler, fields)
    else:
        access.info("%s %s %s", request.method, request.path, status, extra={"fields": fields})
